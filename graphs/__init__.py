"""Assembly: the StateGraph, the model factory, the CLI entry points and the Studio entry."""
