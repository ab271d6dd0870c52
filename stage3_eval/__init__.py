"""Stage 3: evaluation — GLUE fine-tuning, zero-shot STS, kNN probes, search, reports."""
