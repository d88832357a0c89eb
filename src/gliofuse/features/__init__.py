"""Patch feature extraction: encoder registry and the ``features_extract`` stage (docs/data-contracts.md §5)."""

from gliofuse.features.encoders import Encoder, create_encoder, list_encoders, load_weights_
from gliofuse.features.extract import DevicePreprocess, encode_patches, extract_slide_
from gliofuse.features.plan import plan_batches
from gliofuse.features.status import FeatureRecord, read_feature_status_, write_feature_status_
from gliofuse.features.store import FeaturesFile, features_complete, read_features_h5, write_features_h5_

__all__ = [
    "DevicePreprocess", "Encoder", "FeatureRecord", "FeaturesFile", "create_encoder", "encode_patches",
    "extract_slide_", "features_complete", "list_encoders", "load_weights_", "plan_batches",
    "read_feature_status_", "read_features_h5", "write_feature_status_", "write_features_h5_",
]
