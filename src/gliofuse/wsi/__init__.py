"""Whole-slide images: open, resolve mpp, segment tissue, tile at a target mpp, QC.

Entry point: :func:`patch_slide_` (the ``wsi_patch`` stage). Outputs follow docs/data-contracts.md §4.
Names are imported lazily, so ``gliofuse.wsi.overrides`` (read by the Snakefile) does not load OpenSlide.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "gliofuse.wsi.contours": ("TissuePolygon", "mask_to_polygons", "polygons_to_geojson", "write_geojson_"),
    "gliofuse.wsi.coords": ("CoordsFile", "read_coords_h5", "write_coords_h5_"),
    "gliofuse.wsi.grid": ("PatchGeometry", "grid_coords", "patch_geometry", "tissue_fractions", "tissue_patches"),
    "gliofuse.wsi.overrides": ("read_overrides", "slide_config"),
    "gliofuse.wsi.patch": ("REASON_MISSING_MPP", "REASON_NO_TISSUE", "patch_slide_", "slide_id_of"),
    "gliofuse.wsi.reader": ("magnification", "open_slide", "read_downsampled", "read_region_rgb", "slide_mpp"),
    "gliofuse.wsi.segment": ("TissueMask", "segment_image", "segment_tissue"),
    "gliofuse.wsi.status": ("SlideRecord", "SlideStatus", "read_status_", "write_status_"),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = [
    "REASON_MISSING_MPP",
    "REASON_NO_TISSUE",
    "CoordsFile",
    "PatchGeometry",
    "SlideRecord",
    "SlideStatus",
    "TissueMask",
    "TissuePolygon",
    "grid_coords",
    "magnification",
    "mask_to_polygons",
    "open_slide",
    "patch_geometry",
    "patch_slide_",
    "polygons_to_geojson",
    "read_coords_h5",
    "read_downsampled",
    "read_overrides",
    "read_region_rgb",
    "read_status_",
    "segment_image",
    "segment_tissue",
    "slide_config",
    "slide_id_of",
    "slide_mpp",
    "tissue_fractions",
    "tissue_patches",
    "write_coords_h5_",
    "write_geojson_",
    "write_status_",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'gliofuse.wsi' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
