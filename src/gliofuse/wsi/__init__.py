"""Whole-slide images: open, resolve mpp, segment tissue, tile at a target mpp, QC.

Entry point: :func:`patch_slide_` (the ``wsi_patch`` stage). Outputs follow docs/data-contracts.md §4.
"""

from gliofuse.wsi.coords import CoordsFile, read_coords_h5, write_coords_h5_
from gliofuse.wsi.grid import PatchGeometry, grid_coords, patch_geometry, tissue_fractions, tissue_patches
from gliofuse.wsi.patch import REASON_MISSING_MPP, REASON_NO_TISSUE, patch_slide_, slide_id_of
from gliofuse.wsi.reader import magnification, open_slide, read_downsampled, read_region_rgb, slide_mpp
from gliofuse.wsi.segment import TissueMask, segment_image, segment_tissue
from gliofuse.wsi.state import SlideRecord, SlideStatus, read_status, write_status_

__all__ = [
    "REASON_MISSING_MPP", "REASON_NO_TISSUE", "CoordsFile", "PatchGeometry", "SlideRecord", "SlideStatus",
    "TissueMask", "grid_coords", "magnification", "open_slide", "patch_geometry", "patch_slide_",
    "read_coords_h5", "read_downsampled", "read_region_rgb", "read_status", "segment_image", "segment_tissue",
    "slide_id_of", "slide_mpp", "tissue_fractions", "tissue_patches", "write_coords_h5_", "write_status_",
]
