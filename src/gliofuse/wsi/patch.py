"""``patch_slide_``: segment one slide, tile it, and write coords h5, GeoJSON, QC images and status JSON."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import openslide

from gliofuse.config import WsiConfig
from gliofuse.errors import SlideReadError
from gliofuse.io import file_hash, provenance
from gliofuse.wsi.contours import TissuePolygon, mask_to_polygons, polygons_to_geojson, write_geojson_
from gliofuse.wsi.coords import write_coords_h5_
from gliofuse.wsi.grid import PatchGeometry, patch_geometry, tissue_patches
from gliofuse.wsi.overrides import read_overrides, slide_config
from gliofuse.wsi.qc import render_contours, render_qc, write_jpeg_, write_qc_png_
from gliofuse.wsi.reader import magnification, open_slide, read_downsampled, slide_mpp
from gliofuse.wsi.segment import TissueMask, segment_tissue
from gliofuse.wsi.status import SlideRecord, SlideStatus, write_status_

log = logging.getLogger(__name__)

QC_MAX_SIDE_PX = 1024
REASON_MISSING_MPP = ("missing_mpp: the slide has no usable openslide.mpp-x, aperio.MPP, tiff.XResolution or "
                      "objective power; set wsi.default_mpp, or the slide's 'mpp' column in wsi.overrides_csv")
REASON_NO_TISSUE = "no_tissue"
#: prefix of the reason of a slide that cannot be opened or read (status ``failed``)
REASON_UNREADABLE = "unreadable"
#: errors that make a slide ``failed`` instead of stopping the job: OpenSlide cannot open or decode it
SLIDE_READ_ERRORS = (SlideReadError, openslide.OpenSlideError, OSError)


def slide_id_of(path: str | Path) -> str:
    """Slide id: the file name without its extension (``<slide_id>.svs``)."""
    return Path(path).stem


def _qc_text(slide_id: str, record: SlideRecord, geom: PatchGeometry | None) -> str:
    lines = [slide_id, f"status: {record.status}" + (f" ({record.reason})" if record.reason else "")]
    if record.mpp_level0 is not None:
        lines.append(f"level 0: {record.mpp_level0:.4g} um/px ({record.mpp_source}), "
                     f"{magnification(record.mpp_level0):.3g}x")
    if geom is not None:
        lines.append(f"{record.n_patches} patches of {geom.patch_size} px @ {geom.target_mpp:g} um/px "
                     f"({geom.patch_size_level0} level-0 px, read level {geom.read_level} at {geom.read_size} px)")
    if record.tissue_fraction is not None:
        lines.append(f"tissue fraction {record.tissue_fraction:.3f}")
    return "\n".join(lines)


def _contour_text(slide_id: str, record: SlideRecord, cfg: WsiConfig) -> str:
    lines = [slide_id, f"{record.n_tissue_regions} tissue region(s), {record.n_holes} hole(s)"]
    if record.seg_threshold is not None:
        lines.append(f"saturation > {record.seg_threshold} ({cfg.saturation_threshold}), preset {cfg.preset}")
    if record.overrides:
        lines.append("overrides: " + ", ".join(record.overrides))
    return "\n".join(lines)


def _coords_dataset_attrs(slide: openslide.AbstractSlide, geom: PatchGeometry | None, *, slide_id: str,
                          out_dir: Path) -> dict[str, Any]:
    """TRIDENT/CLAM-compatible attributes of the ``coords`` dataset (see gliofuse.wsi.coords)."""
    w0, h0 = slide.dimensions
    attrs: dict[str, Any] = {"name": slide_id, "savetodir": str(out_dir), "overlap": np.int64(0),
                             "level0_width": np.int64(w0), "level0_height": np.int64(h0),
                             "level_dim": np.array([w0, h0], np.int64)}
    if geom is not None:
        ds = float(slide.level_downsamples[geom.read_level])
        attrs.update(patch_size=np.int64(geom.patch_size), patch_size_level0=np.int64(geom.patch_size_level0),
                     level0_magnification=np.float64(geom.level0_magnification),
                     target_magnification=np.float64(geom.target_magnification),
                     patch_level=np.int64(geom.read_level), downsample=np.array([ds, ds], np.float64),
                     downsampled_level_dim=np.array(slide.level_dimensions[geom.read_level], np.int64))
    return attrs


def failure_reason(slide_path: Path, exc: BaseException) -> str:
    """``unreadable: ...`` reason of a slide that OpenSlide cannot open or read (names the file and the fix)."""
    msg = str(exc) if isinstance(exc, SlideReadError) else (
        f"cannot read slide {slide_path} ({type(exc).__name__}: {exc}). The file may be truncated or corrupt; "
        "re-download it")
    size = slide_path.stat().st_size if slide_path.is_file() else None
    if size == 0:
        msg = f"slide file {slide_path} is empty (0 bytes); re-download it"
    return f"{REASON_UNREADABLE}: {msg.rstrip('.')}"


def _write_failed_(slide_path: Path, cfg: WsiConfig, exc: BaseException, *, slide_id: str, out_coords: Path,
                   out_qc: Path, out_status: Path, out_geojson: Path | None, out_thumbnail: Path | None,
                   out_contours: Path | None, preset: str | None, overrides: list[str]) -> dict[str, Any]:
    """Write the outputs of a slide that cannot be read: no patches, a grey QC image, status ``failed``."""
    record = SlideRecord(slide_id=slide_id, status=SlideStatus.failed, reason=failure_reason(slide_path, exc),
                         preset=preset, overrides=overrides)
    params = cfg.model_dump(mode="json")
    attrs: dict[str, Any] = {
        "patch_size": cfg.patch_px, "patch_size_level0": -1, "read_level": -1, "read_size": -1,
        "level0_width": -1, "level0_height": -1, "level0_magnification": math.nan,
        "target_magnification": magnification(cfg.target_mpp), "mpp_level0": math.nan, "target_mpp": cfg.target_mpp,
        "mpp_source": "missing", "slide_id": slide_id,
        "slide_hash": file_hash(slide_path) if slide_path.is_file() else "",
        "status": str(record.status), "reason": record.reason,
        "parameters": json.dumps({**params, "overrides": overrides}, sort_keys=True),
        "provenance": json.dumps(provenance(config=params, inputs={"slide": slide_path},
                                            extra={"stage": "wsi_patch", "overrides": overrides}), sort_keys=True),
    }
    write_coords_h5_(out_coords, np.zeros((0, 2), np.int64), np.zeros(0, np.float32), attrs,
                     {"name": slide_id, "savetodir": str(Path(out_coords).parent), "overlap": np.int64(0)})
    grey = np.full((256, 256, 3), 200, np.uint8)
    text = f"{slide_id}\nstatus: failed\n{record.reason[:80]}"
    write_qc_png_(out_qc, render_qc(grey, thumb_downsample=(1.0, 1.0), text=text))
    if out_geojson is not None:
        write_geojson_(out_geojson, polygons_to_geojson([], mpp_level0=None, properties={
            "slide_id": slide_id, "mpp_level0": None, "status": str(record.status), "seg_mpp": cfg.seg_mpp}))
    if out_thumbnail is not None:
        write_jpeg_(out_thumbnail, grey)
    if out_contours is not None:
        write_jpeg_(out_contours, render_contours(grey, thumb_downsample=(1.0, 1.0), polygons=[], text=text))
    log.error("wsi_patch %s: failed, %s", slide_id, record.reason)
    return write_status_(out_status, record)


def patch_slide_(*, slide_path: Path, cfg: WsiConfig, out_coords: Path, out_qc: Path, out_status: Path,
                 mpp_override: float | None = None, out_geojson: Path | None = None,
                 out_thumbnail: Path | None = None, out_contours: Path | None = None,
                 slide_id: str | None = None) -> dict[str, Any]:
    """Segment tissue and compute the patch grid of one slide; write its outputs atomically.

    Parameters
    ----------
    slide_path : the slide (any OpenSlide format; DICOM WSI: any one file of the series, the others in the
        same folder).
    cfg : the ``wsi`` config section; per-slide rows of ``cfg.overrides_csv`` are applied on top.
    out_coords : coords h5 (docs/data-contracts.md §4): ``coords`` (N, 2) int64 level-0 (x, y),
        ``tissue_fraction`` (N,) float32 and the geometry/provenance attributes.
    out_qc : PNG grid overlay: thumbnail with the tissue outline and the kept patch grid.
    out_status : status JSON (:class:`~gliofuse.wsi.status.SlideRecord`).
    mpp_override : µm per level-0 px to use instead of the slide metadata (beats an ``mpp`` CSV cell).
    out_geojson : tissue polygons with holes in level-0 px (GeoJSON FeatureCollection); None: not written.
    out_thumbnail : JPEG thumbnail (long side ``QC_MAX_SIDE_PX``); None: not written.
    out_contours : JPEG contour overlay (exteriors green, holes blue); None: not written.
    slide_id : id written to the outputs and matched in ``wsi.overrides_csv``; None: the file name without
        its extension (DICOM files are named by UID, so give the cohort's slide id there).

    Returns
    -------
    The status record as a dict. A slide without usable mpp (and no default) or without tissue is
    ``skipped`` with a reason and N = 0. A slide that cannot be opened or read (truncated, empty, not a
    WSI, unsupported compression, a read error mid-slide) is ``failed`` with the reason
    (``unreadable: <error naming the file and the fix>``): every output is still written (no patches,
    a grey QC image), so the workflow goes on without it (``data.max_failed_slide_fraction`` bounds
    how many may fail).
    """
    t0 = time.perf_counter()
    slide_path = Path(slide_path)
    slide_id = slide_id or slide_id_of(slide_path)
    overrides = read_overrides(cfg.overrides_csv) if cfg.overrides_csv else None
    cfg, csv_mpp, overridden = slide_config(cfg, slide_id, overrides)
    if mpp_override is None:
        mpp_override = csv_mpp
    try:
        slide = open_slide(slide_path)
    except SLIDE_READ_ERRORS as exc:
        return _write_failed_(slide_path, cfg, exc, slide_id=slide_id, out_coords=out_coords, out_qc=out_qc,
                              out_status=out_status,
                              out_geojson=out_geojson, out_thumbnail=out_thumbnail, out_contours=out_contours,
                              preset=cfg.preset, overrides=overridden)
    try:
        slide_hash = file_hash(slide_path)
        mpp0, mpp_source = slide_mpp(slide, override=mpp_override, default_mpp=cfg.default_mpp)
        record = SlideRecord(slide_id=slide_id, status=SlideStatus.ok, mpp_level0=mpp0, mpp_source=mpp_source,
                             preset=cfg.preset, overrides=overridden)
        geom: PatchGeometry | None = None
        tissue: TissueMask | None = None
        polygons: list[TissuePolygon] = []
        coords = np.zeros((0, 2), np.int64)
        frac = np.zeros(0, np.float32)
        if mpp0 is None:
            record.status, record.reason = SlideStatus.skipped, REASON_MISSING_MPP
        else:
            tissue = segment_tissue(slide, mpp_level0=mpp0, cfg=cfg, path=slide_path)
            polygons = mask_to_polygons(tissue.mask, tissue.downsample)
            record.tissue_fraction = round(tissue.tissue_fraction, 6)
            record.seg_threshold = tissue.threshold
            record.n_tissue_regions, record.n_holes = len(polygons), sum(len(p.holes) for p in polygons)
            geom = patch_geometry(slide, mpp_level0=mpp0, target_mpp=cfg.target_mpp, patch_px=cfg.patch_px)
            if not tissue.mask.any():
                record.status, record.reason = SlideStatus.skipped, REASON_NO_TISSUE
            else:
                coords, frac = tissue_patches(slide, tissue, geom, min_tissue_fraction=cfg.min_tissue_fraction)
                if len(coords) == 0:
                    w0, h0 = slide.dimensions
                    if min(w0, h0) < geom.patch_size_level0:
                        record.reason = (f"no_patches: slide ({w0}x{h0} level-0 px) is smaller than one patch "
                                         f"({geom.patch_size_level0} level-0 px)")
                    else:
                        record.reason = (f"no_tissue_patches: no patch reaches wsi.min_tissue_fraction="
                                         f"{cfg.min_tissue_fraction:g}")
                    record.status = SlideStatus.skipped
        record.n_patches = len(coords)

        params = cfg.model_dump(mode="json")
        prov = provenance(config=params, inputs={"slide": slide_path},
                          extra={"stage": "wsi_patch", "seg_threshold": tissue.threshold if tissue else None,
                                 "seg_mpp_actual": tissue.mpp if tissue else None, "overrides": overridden})
        w0, h0 = slide.dimensions
        attrs = {
            "patch_size": cfg.patch_px,
            "patch_size_level0": geom.patch_size_level0 if geom else -1,
            "read_level": geom.read_level if geom else -1,
            "read_size": geom.read_size if geom else -1,
            "level0_width": w0,
            "level0_height": h0,
            "level0_magnification": magnification(mpp0) if mpp0 else math.nan,
            "target_magnification": magnification(cfg.target_mpp),
            "mpp_level0": mpp0 if mpp0 else math.nan,
            "target_mpp": cfg.target_mpp,
            "mpp_source": mpp_source,
            "slide_id": slide_id,
            "slide_hash": slide_hash,
            "status": str(record.status),
            "reason": record.reason,
            "parameters": json.dumps({**params, "mpp_override": mpp_override, "overrides": overridden},
                                     sort_keys=True),
            "provenance": json.dumps(prov, sort_keys=True),
        }
        coords_attrs = _coords_dataset_attrs(slide, geom, slide_id=slide_id, out_dir=Path(out_coords).parent)
        thumb, thumb_ds = read_downsampled(slide, max(1.0, max(w0, h0) / QC_MAX_SIDE_PX), path=slide_path)
    except SLIDE_READ_ERRORS as exc:  # a read error mid-slide (e.g. a truncated tile)
        return _write_failed_(slide_path, cfg, exc, slide_id=slide_id, out_coords=out_coords, out_qc=out_qc,
                              out_status=out_status,
                              out_geojson=out_geojson, out_thumbnail=out_thumbnail, out_contours=out_contours,
                              preset=cfg.preset, overrides=overridden)
    finally:
        slide.close()

    qc = render_qc(thumb, thumb_downsample=thumb_ds, mask=tissue.mask if tissue else None, coords=coords,
                   patch_size_level0=geom.patch_size_level0 if geom else 0, text=_qc_text(slide_id, record, geom))
    write_coords_h5_(out_coords, coords, frac, attrs, coords_attrs)
    write_qc_png_(out_qc, qc)
    if out_geojson is not None:
        write_geojson_(out_geojson, polygons_to_geojson(
            polygons, mpp_level0=mpp0, properties={"slide_id": slide_id, "mpp_level0": mpp0,
                                                   "status": str(record.status), "seg_mpp": cfg.seg_mpp}))
    if out_thumbnail is not None:
        write_jpeg_(out_thumbnail, thumb)
    if out_contours is not None:
        write_jpeg_(out_contours, render_contours(thumb, thumb_downsample=thumb_ds, polygons=polygons,
                                                  text=_contour_text(slide_id, record, cfg)))
    result = write_status_(out_status, record)
    log.info("wsi_patch %s: %s %s, %d patches, mpp %s (%s), %d region(s), %.2f s", slide_id, record.status,
             record.reason, record.n_patches, mpp0, mpp_source, record.n_tissue_regions, time.perf_counter() - t0)
    return result


__all__ = ["REASON_MISSING_MPP", "REASON_NO_TISSUE", "REASON_UNREADABLE", "failure_reason", "patch_slide_",
           "slide_id_of"]
