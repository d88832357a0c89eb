"""Shipped demo assets (H&E texture crops, gene symbols): location, existence checks and loading.

See ``assets/README.md`` for where the files come from.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from gliofuse.errors import InputDataError

ASSETS_DIR: Path = Path(__file__).resolve().parent / "assets"
"""Folder holding the assets (tests monkeypatch it)."""

TEXTURE_FILES: dict[str, str] = {
    # key: role in the texture mixture; value: file name (TCGA ROI name, see assets/README.md)
    "gbm_a": "TCGA-06-0174-01Z-00-DX3.23b6e12e-dfc1-4c6f-903e-170038a0e055_1.jpg",
    "gbm_b": "TCGA-26-1442-01Z-00-DX1.FD8D4EB7-AD5E-49E8-BD0B-6CDDEA8DDB35_1.jpg",
    "lgg": "TCGA-HT-7470-01Z-00-DX4.204D0CF2-A22E-4428-8E8C-572432B86280_1.jpg",
}
TEXTURE_MPP: float = 0.5
"""Resolution of the texture crops in µm per pixel (native 20x ROIs)."""

GENE_SYMBOLS_FILE = "gene_symbols.tsv"


def asset_path(name: str) -> Path:
    """Path of asset ``name``; raises ``InputDataError`` (naming the file and the fix) if it is missing."""
    p = Path(ASSETS_DIR) / name
    if not p.is_file():
        raise InputDataError(
            f"demo asset missing: {p}. The demo cohort generator needs the files shipped in "
            "src/gliofuse/demo/assets/ (see its README.md). Restore them with "
            "`git checkout src/gliofuse/demo/assets` or reinstall gliofuse."
        )
    return p


def asset_paths() -> list[Path]:
    """All asset files the generator reads (checked to exist), in a fixed order."""
    return [asset_path(n) for n in (*TEXTURE_FILES.values(), GENE_SYMBOLS_FILE)]


@lru_cache(maxsize=4)
def _load_textures_cached(folder: str) -> dict[str, np.ndarray]:
    from PIL import Image

    out: dict[str, np.ndarray] = {}
    for key, name in TEXTURE_FILES.items():
        with Image.open(Path(folder) / name) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
        out[key] = rgb
    # Match the channel means of the crops so that mixing them changes texture, not overall colour;
    # colour/darkness is then driven by the synthetic overlays (nuclei, necrosis, vessels).
    target = np.mean([t.reshape(-1, 3).mean(0) for t in out.values()], axis=0)
    for key, t in out.items():
        t *= (target / t.reshape(-1, 3).mean(0))[None, None, :]
        np.clip(t, 0, 255, out=t)
        t.setflags(write=False)
    return out


def load_textures() -> dict[str, np.ndarray]:
    """The H&E texture crops as float32 (H, W, 3) arrays in [0, 255] at ``TEXTURE_MPP``, keyed by role.

    Raises ``InputDataError`` if a file is missing.
    """
    for name in TEXTURE_FILES.values():
        asset_path(name)
    return _load_textures_cached(str(Path(ASSETS_DIR).resolve()))


def load_gene_symbols() -> list[str]:
    """Gene symbols (HGNC) shipped in ``gene_symbols.tsv``, in file order."""
    p = asset_path(GENE_SYMBOLS_FILE)
    lines = p.read_text().splitlines()
    if not lines or lines[0].split("\t")[0] != "gene_name":
        raise InputDataError(f"demo asset {p} lacks the 'gene_name' header. Restore it with "
                             "`git checkout src/gliofuse/demo/assets`.")
    return [ln.split("\t")[0] for ln in lines[1:] if ln.strip()]
