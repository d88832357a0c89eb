"""Training: pure losses, the per-fold harness and the cross-validation entry point.

Kept import-free so that ``gliofuse.tasks`` stays importable without torch.
"""
