"""Slide QC for the report: per-slide status table and a thumbnail mosaic."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

from gliofuse.io import atomic_path, provenance, read_json_, write_table_

QC_COLUMNS = ("slide_id", "status", "reason", "n_patches", "mpp_level0", "mpp_source", "tissue_fraction")
#: added when features status JSONs (contract §5) are given: features_<key> for these keys
FEATURE_QC_KEYS = ("status", "reason", "n_patches", "n_failed_reads", "seconds")
STATUS_COLOURS = {"ok": (40, 140, 60), "skipped": (200, 140, 0), "failed": (200, 30, 30)}


def qc_table(status_paths: list[Path], feature_status_paths: list[Path] | None = None) -> pd.DataFrame:
    """One row per slide status JSON (contract §4), columns ``QC_COLUMNS``, sorted by slide id.

    With ``feature_status_paths`` (``results/features/<encoder>/status/<slide>.json``, contract §5) the
    table also has ``features_status``, ``features_reason``, ``features_n_patches``,
    ``features_n_failed_reads`` and ``features_seconds`` (empty for slides without a features status).
    """
    rows = []
    for p in status_paths:
        st = read_json_(p, what="slide status file")
        rows.append({c: st.get(c) for c in QC_COLUMNS})
    columns = list(QC_COLUMNS)
    if feature_status_paths is not None:
        feats = {}
        for p in feature_status_paths:
            st = read_json_(p, what="features status file")
            feats[st.get("slide_id")] = st
        columns += [f"features_{k}" for k in FEATURE_QC_KEYS]
        for row in rows:
            st = feats.get(row["slide_id"], {})
            row.update({f"features_{k}": st.get(k) for k in FEATURE_QC_KEYS})
    return pd.DataFrame(rows, columns=columns).sort_values("slide_id").reset_index(drop=True)


def qc_mosaic(table: pd.DataFrame, qc_pngs: dict[str, Path], *, tile: int = 220, max_cols: int = 8) -> Image.Image:
    """Grid of QC thumbnails (``tile`` px boxes), each captioned with slide, status and patch count."""
    n = max(len(table), 1)
    cols = min(max_cols, n)
    rows = math.ceil(n / cols)
    cap = 30
    sheet = Image.new("RGB", (cols * tile, rows * (tile + cap)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, rec in enumerate(table.itertuples(index=False)):
        x0, y0 = (i % cols) * tile, (i // cols) * (tile + cap)
        png = qc_pngs.get(rec.slide_id)
        if png is not None and png.exists():
            with Image.open(png) as im:
                im = im.convert("RGB")
                im.thumbnail((tile - 8, tile - 8))
                sheet.paste(im, (x0 + (tile - im.width) // 2, y0 + (tile - im.height) // 2))
        colour = STATUS_COLOURS.get(str(rec.status), (0, 0, 0))
        draw.rectangle([x0 + 1, y0 + 1, x0 + tile - 2, y0 + tile - 2], outline=colour, width=3)
        short = str(rec.slide_id)[:23]
        draw.text((x0 + 4, y0 + tile + 2), short, fill=(0, 0, 0))
        draw.text((x0 + 4, y0 + tile + 14), f"{rec.status} n={rec.n_patches}", fill=colour)
    return sheet


def qc_summary_(*, status_paths: list[Path], qc_pngs: list[Path], out_table: Path, out_png: Path,
                feature_status_paths: list[Path] | None = None) -> pd.DataFrame:
    """Write the slide QC table (TSV + provenance) and the thumbnail mosaic PNG (feature columns: see qc_table)."""
    table = qc_table(status_paths, feature_status_paths)
    by_slide = {p.stem: p for p in qc_pngs}
    inputs: list[Path] | dict[str, Path] = status_paths
    if feature_status_paths:  # both are named <slide>.json: prefix the names by stage
        inputs = {**{f"wsi/{p.name}": p for p in status_paths}, **{f"features/{p.name}": p for p in feature_status_paths}}
    write_table_(out_table, table, prov=provenance(config={}, inputs=inputs))
    with atomic_path(out_png) as tmp:
        qc_mosaic(table, by_slide).save(tmp, format="PNG")
    return table
