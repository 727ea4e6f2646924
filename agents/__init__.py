"""The graph's nodes, one per file: a function of (state, runtime) returning an update."""
