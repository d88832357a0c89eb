"""Patch feature extraction: encoder registry and the ``features_extract`` stage (docs/data-contracts.md §5)."""
