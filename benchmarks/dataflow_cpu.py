"""OpenDCAI DataFlow's Condor operators (CondorGenerator, then CondorRefiner) on N samples against an
OpenAI-compatible server, for `benchmarks.bench --dataflow PYTHON`. Run by DataFlow's own interpreter (it needs
torch; see the README's benchmark section), it prints one JSON line: the operators' CPU (every thread of the
process, imports excluded), their wall time, and the import's.

Run: PYTHON -m benchmarks.dataflow_cpu N --base-url http://127.0.0.1:PORT/v1 [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("samples", type=int)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    stdout, sys.stdout = sys.stdout, sys.stderr  # DataFlow's logger writes to stdout: only the JSON line goes there
    started = time.perf_counter()
    from dataflow.operators.text_sft import CondorGenerator, CondorRefiner
    from dataflow.prompts.general_text import CondorQuestionPrompt, CondorRefinePrompt
    from dataflow.serving import APILLMServing_request
    from dataflow.utils.storage import FileStorage

    imported = time.perf_counter() - started
    random.seed(0)  # CondorGenerator draws its topics with random.choice
    os.environ.setdefault("DF_API_KEY", "sk-bench")  # APILLMServing_request refuses to start without one
    serving = APILLMServing_request(
        api_url=args.base_url.rstrip("/") + "/chat/completions", model_name="stub", max_workers=args.concurrency
    )
    generator = CondorGenerator(llm_serving=serving, num_samples=args.samples, prompt_template=CondorQuestionPrompt())
    refiner = CondorRefiner(llm_serving=serving, prompt_template=CondorRefinePrompt())
    with tempfile.TemporaryDirectory(prefix="dataflow-bench-") as tmp:
        storage = FileStorage(first_entry_file_name="", cache_path=tmp, file_name_prefix="step", cache_type="jsonl")
        cpu, wall = time.process_time(), time.perf_counter()
        generator.run(storage=storage.step())
        refiner.run(storage=storage.step(), input_instruction_key="instruction", input_output_key="output")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        rows = {name: len(Path(tmp, name).read_text(encoding="utf-8").splitlines()) for name in os.listdir(tmp)}
    serving.cleanup()
    figures = {"samples": args.samples, "rows": rows, "cpu_s": cpu, "wall_s": wall, "import_s": imported}
    print(json.dumps(figures), file=stdout, flush=True)


if __name__ == "__main__":
    main()
