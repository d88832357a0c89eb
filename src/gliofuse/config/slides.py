"""Slide settings: tissue segmentation and patching (section ``wsi``) and patch feature extraction (``features``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from gliofuse.config.base import _Section


class WsiConfig(_Section):
    """Tissue segmentation and patching.

    Segmentation parameters left null take the value of ``preset`` (CLAM's presets converted to
    physical units) or, without a preset, the built-in default named in their description.
    """

    #: CLAM's tcga / bwh_biopsy / bwh_resection presets in physical units: CLAM segments at a 64x
    #: downsample of a 40x (0.25 um/px) scan, i.e. 16 um/px, and counts areas in "512 x 512 level-0
    #: patches" (128 um x 128 um = 16384 um^2); its square closing kernel of k px becomes a disk of
    #: radius k/2 px = 8k um.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tcga": {"seg_mpp": 16.0, "saturation_threshold": 8, "median_blur_px": 7, "close_um": 32.0,
                 "min_tissue_area_um2": 16 * 16384.0, "min_hole_area_um2": 4 * 16384.0, "max_n_holes": 8},
        "biopsy": {"seg_mpp": 16.0, "saturation_threshold": 15, "median_blur_px": 11, "close_um": 16.0,
                   "min_tissue_area_um2": 16384.0, "min_hole_area_um2": 16384.0, "max_n_holes": 2},
        "resection": {"seg_mpp": 16.0, "saturation_threshold": 15, "median_blur_px": 11, "close_um": 32.0,
                      "min_tissue_area_um2": 100 * 16384.0, "min_hole_area_um2": 16 * 16384.0,
                      "max_n_holes": 8},
    }
    #: values of the preset-able parameters when neither the config nor a preset sets them
    BUILTIN: ClassVar[dict[str, Any]] = {
        "seg_mpp": 8.0, "saturation_threshold": "otsu", "median_blur_px": 7, "close_um": 32.0,
        "min_tissue_area_um2": 20000.0, "min_hole_area_um2": 20000.0, "max_n_holes": 8,
    }

    preset: Literal["tcga", "biopsy", "resection"] | None = Field(
        None, description="Named segmentation preset (CLAM's tcga / bwh_biopsy / bwh_resection in physical "
        "units); fills the segmentation parameters left null.")
    overrides_csv: str | None = Field(
        None, description="CSV with a slide_id column plus any wsi parameter (and 'mpp', um per level-0 px) "
        "as columns; a non-empty cell overrides that parameter for that slide.")
    target_mpp: float = Field(0.5, gt=0, le=16, description="Microns per pixel to tile at (0.5 ~ 20x).")
    patch_px: int = Field(256, ge=32, le=4096, description="Patch side in pixels at target_mpp.")
    seg_mpp: float | None = Field(
        None, gt=0, description="Resolution (um/px) at which the tissue mask is computed; null: preset or 8.0.")
    saturation_threshold: Annotated[int, Field(ge=0, le=255)] | Literal["otsu"] | None = Field(
        None, description="HSV saturation threshold (0-255) or 'otsu' (per slide); null: preset or 'otsu'.")
    median_blur_px: int | None = Field(
        None, ge=1, description="Median filter size in mask pixels (made odd); null: preset or 7.")
    close_um: float | None = Field(
        None, ge=0, description="Morphological closing radius in micrometres; null: preset or 32.")
    min_tissue_area_um2: float | None = Field(
        None, ge=0, description="Drop tissue regions whose net area is below this (um^2); null: preset or 20000.")
    min_hole_area_um2: float | None = Field(
        None, ge=0, description="Fill holes smaller than this (um^2); null: preset or 20000.")
    max_n_holes: int | None = Field(
        None, ge=0, description="Keep at most this many (largest) holes per tissue region, fill the rest "
        "(0: holes are tissue); null: preset or 8.")
    min_tissue_fraction: float = Field(0.5, ge=0, le=1, description="Keep patches whose tissue fraction is at least this.")
    default_mpp: float | None = Field(
        None, gt=0, description="mpp for slides with no mpp metadata; None: such slides are skipped with a reason.")

    @model_validator(mode="after")
    def _fill_preset(self) -> WsiConfig:
        source = self.PRESETS[self.preset] if self.preset else self.BUILTIN
        for name, value in source.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        return self


class FeaturesConfig(_Section):
    """Patch feature extraction."""

    encoder: str = Field("test_resnet", description="Encoder name (gliofuse encoder registry or timm:<model name>).")
    weights: str | None = Field(None, description="Local weights file (safetensors/pth); None: random init (tests only).")
    encoder_kwargs: dict[str, Any] = Field(
        {}, description="Architecture overrides passed to timm.create_model (e.g. {depth: 2}); weights must match.")
    batch_size: int = Field(32, ge=1, description="Patches per forward pass.")
    device: str = Field("auto", pattern="^(auto|cpu|cuda(:\\d+)?)$", description="Torch device.")
    precision: str = Field("bf16", pattern="^(fp32|bf16|fp16)$", description="Autocast precision on CUDA.")
    cpu_bf16: bool = Field(
        False, description="On CPU, run bf16 autocast too (several times faster on CPUs with AMX/AVX512-BF16; "
        "features then differ from fp32 by bf16 rounding). false: CPU runs fp32.")
    compile: bool = Field(False, description="torch.compile the encoder (GPU; the last batch is padded to batch_size).")
    num_workers: int | None = Field(
        None, ge=0, description="DataLoader worker processes reading the slide (one slide handle each); "
        "null: 0 on CPU, min(16, cores - 1) on CUDA.")
    prefetch_factor: int = Field(4, ge=1, description="Batches each worker reads ahead.")
    read_strategy: Literal["region", "patch"] = Field(
        "region", description="'region': one read_region per block of contiguous patches, split in memory; "
        "'patch': one read per patch.")
    region_px: int = Field(2048, ge=64, le=16384, description="Largest side (px of the read level) of one region read.")
    read_retries: int = Field(1, ge=0, description="Retries (with a re-opened slide) of a failed read before "
                              "its patches are filled white and counted as failed.")
    max_failed_fraction: float = Field(
        0.1, ge=0, le=1, description="Slide status 'failed' when more than this fraction of patches is unreadable.")
    checkpoint_s: float | None = Field(
        60.0, ge=0, description="Save finished batches every this many seconds under <out>.partial/, so a killed "
        "job resumes (0: after every batch; null: never).")
    max_patches_per_slide: int | None = Field(None, ge=1, description="Random subsample of patches per slide (seeded).")
    shard_size: int = Field(
        16, ge=1, description="Slides per features_extract job (one encoder build per shard; the next slide is "
        "prepared while the current one encodes). Per-slide outputs and resume are unchanged; changing it "
        "reruns the shard jobs, which reuse finished slides.")
    decoder: Literal["auto", "openslide", "raw"] = Field(
        "auto", description="Patch reader: 'raw' decodes the slide's JPEG tiles with torchvision on features.device "
        "(nvJPEG on CUDA); 'openslide' uses OpenSlide; 'auto' uses raw tiles where the level is tiled JPEG and "
        "falls back to OpenSlide for other slides and after any raw-tile error (recorded in the status JSON).")
