"""Metrics and statistics computed from prediction tables only (never imports torch or models)."""
