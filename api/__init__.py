"""The HTTP job service around the optimizer (FastAPI)."""
