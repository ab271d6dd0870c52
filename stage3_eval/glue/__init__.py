"""GLUE fine-tuning: the modules of ``pipeline eval glue``."""
