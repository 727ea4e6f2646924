"""Prompt templates as data (English and Chinese), each with the parser of its output format."""
