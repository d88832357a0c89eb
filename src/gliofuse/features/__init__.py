"""Patch feature extraction: encoder registry and the ``features_extract`` stage (docs/data-contracts.md §5)."""

from gliofuse.features.encoders import Encoder, create_encoder, list_encoders, load_weights_
from gliofuse.features.extract import PatchReader, extract_slide_, resolve_device
from gliofuse.features.store import FeaturesFile, features_complete, read_features_h5, write_features_h5_

__all__ = [
    "Encoder", "FeaturesFile", "PatchReader", "create_encoder", "extract_slide_", "features_complete",
    "list_encoders", "load_weights_", "read_features_h5", "resolve_device", "write_features_h5_",
]
