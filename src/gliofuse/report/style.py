"""One matplotlib style and one save function, so that every figure is reproducible byte for byte.

Every figure is written as PNG (for the HTML report) and as SVG (vector, for papers). Two runs
on the same tables give identical files: the Agg backend, a fixed font (DejaVu Sans, shipped with
matplotlib), text drawn as paths in SVG, a fixed ``svg.hashsalt`` for the SVG element ids, and no
software or date metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from gliofuse.io import atomic_path

logger = logging.getLogger(__name__)

DEFAULT_DPI = 110
RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "gliofuse",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "path.simplify": True,
    "image.interpolation": "nearest",
    "savefig.dpi": DEFAULT_DPI,
}
#: metadata keys set to None are left out of the file (no timestamps, no version strings)
METADATA: dict[str, dict[str, Any]] = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None, "Format": None, "Type": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None},
}


@contextmanager
def figure_style() -> Iterator[None]:
    """Context in which figures are built with the gliofuse style."""
    with plt.rc_context(RC):
        yield


def vector_path(out_png: Path, suffix: str = ".svg") -> Path:
    """The vector twin of a PNG path (same name, ``.svg``)."""
    return Path(out_png).with_suffix(suffix)


def save_figure(fig: Figure, out_png: Path, *, out_vector: Path | None = None, dpi: int = DEFAULT_DPI) -> None:
    """Write ``fig`` as PNG and as its vector twin (default: ``out_png`` with ``.svg``), then close it.

    The vector format follows the twin's suffix (``.svg`` or ``.pdf``). Files are written
    atomically and carry no date or software metadata.
    """
    out_png = Path(out_png)
    out_vector = vector_path(out_png) if out_vector is None else Path(out_vector)
    fmt = out_vector.suffix.lstrip(".").lower()
    if fmt not in ("svg", "pdf"):
        raise ValueError(f"vector figure {out_vector}: expected a .svg or .pdf file name.")
    with plt.rc_context(RC):
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, metadata=METADATA["png"])
        with atomic_path(out_vector) as tmp:
            fig.savefig(tmp, format=fmt, metadata=METADATA[fmt])
    plt.close(fig)
    logger.info("wrote %s and %s", out_png, out_vector)
