"""Attention heatmaps: per-patch attention scores drawn over the slide thumbnails of a few patients.

Reads the optional per-fold attention file of contract §10 (``attention.h5`` or ``attention.tsv``
in ``results/training/<model>/<task>/fold_<k>/``), the slide thumbnails
(``results/wsi/thumbnails/<slide>.jpg``) and the level-0 size and patch size from the coordinate
files (``results/wsi/coords/<slide>.h5``, contract §4). Models that write no attention file get
no heatmap (the output folder stays empty).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from gliofuse.errors import InputDataError
from gliofuse.evaluation.evaluate import prob_columns
from gliofuse.evaluation.repeats import first_repeat
from gliofuse.io import read_table_
from gliofuse.report.style import DEFAULT_DPI, figure_style, save_figure
from gliofuse.report.training import fold_of
from gliofuse.tasks import task_kind

logger = logging.getLogger(__name__)

ATTENTION_H5 = "attention.h5"
ATTENTION_TSV = "attention.tsv"
ATTENTION_COLUMNS: tuple[str, ...] = ("patient_id", "slide_id", "x", "y", "attention")
MAX_SLIDES_PER_PATIENT = 3


def read_attention_(path: Path) -> pd.DataFrame:
    """One fold's attention scores as a table with columns ``ATTENTION_COLUMNS`` + ``split``.

    ``attention.h5``: one group per slide (named by slide id) with datasets ``coords`` (int64,
    (N, 2), level-0 top-left x, y) and ``attention`` (float, (N,)), and attributes ``patient_id``
    and optionally ``split``. ``attention.tsv``: the columns above (``split`` optional).

    Raises
    ------
    InputDataError
        Missing datasets, attributes or columns, or coords and attention of different lengths.
    """
    path = Path(path)
    if path.suffix == ".tsv":
        df = read_table_(path, required=ATTENTION_COLUMNS, what="attention table",
                         dtype={"patient_id": str, "slide_id": str})
        if "split" not in df.columns:
            df["split"] = ""
        return df[[*ATTENTION_COLUMNS, "split"]]
    import h5py

    frames = []
    with h5py.File(path, "r") as f:
        for slide_id in sorted(f.keys()):
            g = f[slide_id]
            if "coords" not in g or "attention" not in g or "patient_id" not in g.attrs:
                raise InputDataError(f"attention file {path}: group {slide_id!r} needs datasets 'coords' and "
                                     "'attention' and the attribute 'patient_id' (docs/data-contracts.md §10).")
            coords = np.asarray(g["coords"][()], dtype=np.int64).reshape(-1, 2)
            att = np.asarray(g["attention"][()], dtype=np.float64).reshape(-1)
            if len(coords) != len(att):
                raise InputDataError(f"attention file {path}: slide {slide_id} has {len(coords)} coords but "
                                     f"{len(att)} attention scores.")
            split = g.attrs.get("split", "")
            frames.append(pd.DataFrame({"patient_id": str(g.attrs["patient_id"]), "slide_id": slide_id,
                                        "x": coords[:, 0], "y": coords[:, 1], "attention": att,
                                        "split": str(split)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*ATTENTION_COLUMNS, "split"])


def find_attention_files(fold_dirs: Sequence[Path]) -> list[Path]:
    """The attention file of each fold folder that has one (``.h5`` preferred over ``.tsv``)."""
    found = []
    for d in fold_dirs:
        for name in (ATTENTION_H5, ATTENTION_TSV):
            if (Path(d) / name).exists():
                found.append(Path(d) / name)
                break
    return found


def choose_patients(oof: pd.DataFrame, available: set[str], n: int) -> list[str]:
    """Up to ``n`` out-of-fold patients with attention scores, spread over the predictions.

    Survival: evenly spaced ranks of the predicted risk, highest first. Classification: per true
    class the most confident correct patient, then the remaining patients by confidence.
    """
    df = oof[oof["patient_id"].astype(str).isin(available)].copy()
    if df.empty or n <= 0:
        return []
    df["patient_id"] = df["patient_id"].astype(str)
    if "risk" in df.columns:
        df = df.sort_values(["risk", "patient_id"], ascending=[False, True], kind="stable")
        idx = np.unique(np.round(np.linspace(0, len(df) - 1, min(n, len(df)))).astype(int))
        return df["patient_id"].iloc[idx].tolist()
    prob = df[prob_columns(df)].to_numpy(dtype=np.float64)
    df["conf"] = prob[np.arange(len(df)), df["y_true"].to_numpy(dtype=np.int64)]
    df["correct"] = prob.argmax(axis=1) == df["y_true"].to_numpy()
    df = df.sort_values(["correct", "conf", "patient_id"], ascending=[False, False, True], kind="stable")
    chosen = df.groupby("y_true", sort=True).head(1)["patient_id"].tolist()
    chosen += [p for p in df["patient_id"] if p not in chosen]
    return chosen[:n]


def _slide_geometry(coords_h5: Path) -> tuple[int, int, int]:
    import h5py

    with h5py.File(coords_h5, "r") as f:
        try:
            return int(f.attrs["level0_width"]), int(f.attrs["level0_height"]), int(f.attrs["patch_size_level0"])
        except KeyError as exc:
            raise InputDataError(f"coordinate file {coords_h5} lacks the attribute {exc.args[0]!r}; rerun wsi_patch."
                                 ) from None


def attention_map(att: pd.DataFrame, *, thumb_size: tuple[int, int], level0_size: tuple[int, int],
                  patch_size_level0: int) -> np.ndarray:
    """Raster of attention percentiles (0 = lowest, 1 = highest patch of the slide) at thumbnail size.

    Pixels outside every patch are NaN (transparent). Percentiles rather than raw weights make
    slides with many and few patches comparable.
    """
    w, h = thumb_size
    sx, sy = w / level0_size[0], h / level0_size[1]
    heat = np.full((h, w), np.nan)
    scores = att["attention"].to_numpy(dtype=np.float64)
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    pct = (ranks - 1) / max(len(ranks) - 1, 1)
    side_x, side_y = max(1, round(patch_size_level0 * sx)), max(1, round(patch_size_level0 * sy))
    order = np.argsort(pct, kind="stable")  # higher scores drawn last
    xs, ys = att["x"].to_numpy(), att["y"].to_numpy()
    for i in order:
        x0, y0 = int(xs[i] * sx), int(ys[i] * sy)
        heat[max(y0, 0):min(y0 + side_y, h), max(x0, 0):min(x0 + side_x, w)] = pct[i]
    return heat


def spread_label(scores: np.ndarray) -> str:
    """``N patches, max/min weight R``: how far from uniform the weights are (the colours are percentiles,
    so a near-uniform slide looks as contrasted as a peaked one)."""
    s = np.asarray(scores, dtype=np.float64)
    lo = s.min() if s.size else np.nan
    ratio = f"{s.max() / lo:.3f}" if s.size and lo > 0 else "inf" if s.size else "nan"
    return f"{s.size} patches, max/min weight {ratio}"


def _patient_figure(patient: str, slides: list[tuple[str, Image.Image, np.ndarray, str]], subtitle: str) -> Figure:
    n = len(slides)
    fig, axes = plt.subplots(1, n, figsize=(5.4 * n, 4.6), squeeze=False, layout="constrained")
    im = None
    for ax, (slide_id, thumb, heat, label) in zip(axes[0], slides, strict=True):
        ax.imshow(np.asarray(thumb))
        im = ax.imshow(heat, cmap="inferno", alpha=0.55, vmin=0, vmax=1)
        ax.set_title(f"{slide_id[:23]}\n{label}", fontsize=8)
        ax.set_axis_off()
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.7, label="attention (percentile within slide)")
    fig.suptitle(f"{patient}\n{subtitle}", fontsize=10)  # two lines: fits a one-slide figure
    return fig


def plot_attention_(*, oof_path: Path, fold_dirs: Sequence[Path], thumbnails: Sequence[Path],
                    coords: Sequence[Path], out_dir: Path, n_patients: int = 3, dpi: int = DEFAULT_DPI) -> list[Path]:
    """Attention heatmaps of up to ``n_patients`` out-of-fold patients of one model and task.

    Parameters
    ----------
    oof_path : ``predictions_oof.tsv`` (contract §9) of the model and task.
    fold_dirs : the model's fold folders, searched for ``attention.h5`` / ``attention.tsv``.
    thumbnails, coords : slide thumbnails (``<slide>.jpg``) and coordinate files (``<slide>.h5``),
        matched by slide id (the file stem).
    out_dir : receives ``<patient_id>.png`` and ``.svg``; emptied first, left empty without attention.
    n_patients : how many patients (see :func:`choose_patients`).

    Returns
    -------
    The written files.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in [*out_dir.glob("*.png"), *out_dir.glob("*.svg")]:
        old.unlink()
    files = find_attention_files([Path(d) for d in fold_dirs])
    if not files or n_patients <= 0:
        logger.info("no attention file in %d fold folder(s): no heatmap", len(fold_dirs))
        return []
    oof = read_table_(oof_path, required=["patient_id", "fold", "task"], what="out-of-fold prediction table",
                      dtype={"patient_id": str})
    task = str(oof["task"].iloc[0]) if len(oof) else ""
    oof = first_repeat(oof)  # a repeated CV: repeat 0's folds (each patient once)
    test_of = dict(zip(oof["patient_id"].astype(str), oof["fold"].astype(int), strict=True))
    frames = []
    for path in files:
        df = read_attention_(path)
        fold = fold_of(path)
        # only test patients of this fold: the out-of-fold view
        df = df[df["patient_id"].map(test_of).eq(fold) if fold >= 0 else df["patient_id"].isin(test_of)]
        frames.append(df)
    att = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(ATTENTION_COLUMNS))
    thumbs = {Path(p).stem: Path(p) for p in thumbnails}
    geoms = {Path(p).stem: Path(p) for p in coords}
    drawable = {s for s in att["slide_id"].unique() if s in thumbs and s in geoms}
    att = att[att["slide_id"].isin(drawable)]
    patients = choose_patients(oof, set(att["patient_id"]), n_patients)
    written: list[Path] = []
    for patient in patients:
        row = oof[oof["patient_id"] == patient].iloc[0]
        if task_kind(task) == "survival":
            subtitle = f"{task}: risk {float(row['risk']):.2f}, time {float(row['time_days']):.0f} d, event {int(row['event'])}"
        else:
            names = [c.removeprefix("prob_") for c in prob_columns(oof)]
            subtitle = f"{task}: true {names[int(row['y_true'])]}, predicted {names[int(row['y_pred'])]}"
        written += draw_patient_attention_(att, patient, subtitle, thumbnails=thumbs, coords=geoms,
                                           out=out_dir / f"{patient}.png", dpi=dpi)
    logger.info("attention heatmaps of %d patient(s) -> %s", len(patients), out_dir)
    return written


def draw_patient_attention_(att: pd.DataFrame, patient: str, subtitle: str, *, thumbnails: dict[str, Path],
                            coords: dict[str, Path], out: Path, dpi: int = DEFAULT_DPI) -> list[Path]:
    """One patient's heatmap figure (``out`` PNG + SVG twin) from attention rows (:data:`ATTENTION_COLUMNS`) of
    slides that have a thumbnail and a coordinate file (``{slide_id: path}``); up to
    :data:`MAX_SLIDES_PER_PATIENT` slides. Returns the written files (none without a drawable slide)."""
    slides = []
    for slide_id in sorted(att.loc[att["patient_id"] == patient, "slide_id"].unique())[:MAX_SLIDES_PER_PATIENT]:
        if slide_id not in thumbnails or slide_id not in coords:
            continue
        with Image.open(thumbnails[slide_id]) as im:
            thumb = im.convert("RGB")
        w0, h0, ps = _slide_geometry(coords[slide_id])
        rows = att[att["slide_id"] == slide_id]
        heat = attention_map(rows, thumb_size=thumb.size, level0_size=(w0, h0), patch_size_level0=ps)
        slides.append((slide_id, thumb, heat, spread_label(rows["attention"].to_numpy())))
    if not slides:
        return []
    with figure_style():
        fig = _patient_figure(patient, slides, subtitle)
    save_figure(fig, out, dpi=dpi)
    return [out, out.with_suffix(".svg")]
