"""The engine: train, evaluate, infer, run folders and built-in callbacks."""
