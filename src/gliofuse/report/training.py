"""Training diagnostics from the fold directories: loss curves and gradient-coordination dynamics.

Reads ``results/training/<model>/<task>/fold_<k>/history.tsv`` (contract §8: ``epoch``,
``train_loss``, ``val_loss``, possibly more numeric columns, each drawn in its own panel) and,
when a model writes it, ``gc_dynamics.tsv`` beside it (contract §8; one row per optimisation step
and classifier row). The dynamics file is read generically, so its columns may grow: numeric and
boolean columns other than the identifiers (``epoch``, ``step``, ``row``, ...) are averaged per
fold and epoch (per step without an ``epoch`` column) and drawn one panel each, one line per fold.
A header-only file means the model recorded nothing (no coordination) and gives no figure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gliofuse.errors import InputDataError
from gliofuse.io import read_table_
from gliofuse.report.style import DEFAULT_DPI, figure_style, save_figure

logger = logging.getLogger(__name__)

GC_DYNAMICS_NAME = "gc_dynamics.tsv"
X_CANDIDATES = ("epoch", "step", "global_step", "iteration")
#: identifier columns of gc_dynamics.tsv, never plotted as values
GC_ID_COLUMNS = frozenset({"fold", "epoch", "step", "global_step", "iteration", "row", "class", "k"})
MAX_PANELS = 9
N_COLS = 3
LOSS_COLUMNS = ("train_loss", "val_loss")


def fold_of(path: Path) -> int:
    """Fold index from a ``.../fold_<k>/<file>`` path (-1 if the folder is not named so)."""
    m = re.fullmatch(r"fold_(\d+)", Path(path).parent.name)
    return int(m.group(1)) if m else -1


def _title(paths: Sequence[Path]) -> str:
    """``<model> / <task>`` from ``.../<model>/<task>/fold_<k>/file``."""
    p = Path(paths[0])
    return f"{p.parent.parent.parent.name} / {p.parent.parent.name}"


def _fold_colours(folds: Sequence[int]) -> dict[int, tuple[float, float, float, float]]:
    cmap = plt.get_cmap("tab10")
    return {f: cmap(i % 10) for i, f in enumerate(sorted(folds))}


def read_histories_(history_paths: Sequence[Path]) -> pd.DataFrame:
    """The ``history.tsv`` of each fold stacked, with a ``fold`` column from the folder name.

    Raises
    ------
    InputDataError
        A file is missing, lacks ``epoch``, or has no loss column.
    """
    frames = []
    for path in history_paths:
        df = read_table_(path, required=["epoch"], what="training history")
        if not any(c in df.columns for c in LOSS_COLUMNS):
            raise InputDataError(f"training history {path} has neither 'train_loss' nor 'val_loss'.")
        frames.append(df.assign(fold=fold_of(Path(path))))
    if not frames:
        raise InputDataError("training curves: no history.tsv given.")
    return pd.concat(frames, ignore_index=True)


def _grid(n: int, width: float = 4.6, height: float = 3.3) -> tuple[Figure, list[plt.Axes]]:
    ncol = min(N_COLS, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(width * ncol, height * nrow), squeeze=False, layout="constrained")
    flat = [axes[i // ncol][i % ncol] for i in range(nrow * ncol)]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _integer_x(ax: plt.Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _training_figure(hist: pd.DataFrame, title: str) -> Figure:
    extra = [c for c in hist.columns if c not in ("epoch", "fold", *LOSS_COLUMNS)
             and pd.api.types.is_numeric_dtype(hist[c]) and hist[c].notna().any()][: MAX_PANELS - 1]
    fig, axes = _grid(1 + len(extra))
    colours = _fold_colours(hist["fold"].unique().tolist())
    ax = axes[0]
    for fold, g in hist.groupby("fold", sort=True):
        g = g.sort_values("epoch")
        for col, style in (("train_loss", "-"), ("val_loss", "--")):
            if col in g and g[col].notna().any():
                ax.plot(g["epoch"], g[col], style, color=colours[fold], lw=1.3,
                        label=f"fold {fold} {col.removesuffix('_loss')}")
        if "val_loss" in g and g["val_loss"].notna().any():
            best = g.loc[g["val_loss"].idxmin()]
            ax.plot([best["epoch"]], [best["val_loss"]], "o", color=colours[fold], ms=4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("loss (solid: train, dashed: validation;\ndot: lowest validation loss)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    _integer_x(ax)
    for ax, col in zip(axes[1:], extra, strict=True):
        for fold, g in hist.groupby("fold", sort=True):
            g = g.sort_values("epoch")
            ax.plot(g["epoch"], g[col], color=colours[fold], lw=1.3, marker=".", label=f"fold {fold}")
        ax.set_xlabel("epoch")
        ax.set_title(col, fontsize=9)
        _integer_x(ax)
    fig.suptitle(f"training curves — {title}")
    return fig


def plot_training_(*, history_paths: Sequence[Path], out_png: Path, out_vector: Path | None = None,
                   dpi: int = DEFAULT_DPI) -> None:
    """Training and validation loss per epoch for every fold of one model and task (plus one panel
    per extra numeric column of ``history.tsv``).

    Parameters
    ----------
    history_paths : ``results/training/<model>/<task>/fold_<k>/history.tsv`` of each fold.
    out_png : output PNG; ``out_vector`` its SVG/PDF twin (default: ``.svg`` beside it).
    """
    paths = [Path(p) for p in history_paths]
    hist = read_histories_(paths)
    with figure_style():
        fig = _training_figure(hist, _title(paths))
    save_figure(fig, Path(out_png), out_vector=out_vector, dpi=dpi)


def read_gc_dynamics_(paths: Sequence[Path]) -> pd.DataFrame:
    """Stack the ``gc_dynamics.tsv`` files that exist and have rows (others are skipped), with a ``fold`` column.

    Returns an empty frame when there is none.
    """
    frames = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            continue
        df = read_table_(path, required=[], what="gradient-coordination dynamics table")
        if df.empty:
            continue
        if "fold" in df.columns:
            df = df.drop(columns="fold")
        frames.append(df.assign(fold=fold_of(path)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def gc_summary(df: pd.DataFrame) -> tuple[pd.DataFrame, str | None, list[str]]:
    """Per-fold means of the value columns of gradient-coordination records.

    Returns ``(table, x, values)``: one row per fold and ``x`` (``epoch``, else ``step``, else the
    record number; ``x`` None then), with the mean of each value column. Value columns are the
    numeric and boolean (``True``/``False`` text included) columns that are not identifiers.
    """
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object and set(df[c].dropna().astype(str).str.lower()) <= {"true", "false"}:
            df[c] = df[c].astype(str).str.lower().eq("true").where(df[c].notna())
        if df[c].dtype == bool:
            df[c] = df[c].astype(float)
    x = next((c for c in X_CANDIDATES if c in df.columns and pd.api.types.is_numeric_dtype(df[c])), None)
    values = [c for c in df.columns if c not in GC_ID_COLUMNS and pd.api.types.is_numeric_dtype(df[c])
              and df[c].notna().any()][:MAX_PANELS]
    if x is None:
        df["record"] = df.groupby("fold").cumcount()
        key = "record"
    else:
        key = x
    table = df.groupby(["fold", key], sort=True)[values].mean().reset_index()
    return table, x, values


def _gc_figure(df: pd.DataFrame, title: str) -> Figure:
    table, x, values = gc_summary(df)
    if not values:
        raise InputDataError(f"gradient-coordination dynamics ({title}) have no numeric column to plot; "
                             f"columns: {list(df.columns)}.")
    key = x or "record"
    fig, axes = _grid(len(values), height=3.0)
    colours = _fold_colours(table["fold"].unique().tolist())
    for i, (ax, col) in enumerate(zip(axes, values, strict=True)):
        for fold, g in table.groupby("fold", sort=True):
            ax.plot(g[key].to_numpy(), g[col].to_numpy(dtype=np.float64), color=colours[fold], lw=1.2,
                    marker="." if len(g) < 60 else None, label=f"fold {fold}")
        ax.set_title(col, fontsize=9)
        ax.set_xlabel(key)
        if key == "epoch":
            _integer_x(ax)
        if i == 0:
            ax.legend(fontsize=7)
    per = {"epoch": "mean per epoch", "record": "per record"}.get(key, f"mean per {key}")
    fig.suptitle(f"gradient-coordination dynamics — {title} ({per} over steps and classifier rows)")
    return fig


def plot_gc_dynamics_(*, history_paths: Sequence[Path], out_dir: Path, dpi: int = DEFAULT_DPI) -> list[Path]:
    """Gradient-coordination dynamics of one model and task, if its folds recorded them.

    Looks for ``gc_dynamics.tsv`` next to each fold's ``history.tsv``. With at least one, writes
    ``out_dir/gc_dynamics.png`` and ``.svg``; without any, leaves ``out_dir`` empty (the model
    does not coordinate gradients) and returns ``[]``.
    """
    paths = [Path(p) for p in history_paths]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("gc_dynamics.*"):
        old.unlink()
    df = read_gc_dynamics_([p.parent / GC_DYNAMICS_NAME for p in paths])
    if df.empty:
        logger.info("no %s in the fold folders of %s: no dynamics figure", GC_DYNAMICS_NAME, _title(paths))
        return []
    with figure_style():
        fig = _gc_figure(df, _title(paths))
    out = out_dir / "gc_dynamics.png"
    save_figure(fig, out, dpi=dpi)
    return [out, out.with_suffix(".svg")]
