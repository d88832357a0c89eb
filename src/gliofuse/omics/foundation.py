"""Frozen RNA foundation embeddings: gene-embedding tables from local checkpoints, and a fallback.

Path-GPTOmic (Wang et al., ISBI 2024) encodes bulk RNA with a frozen single-cell foundation model
(scGPT) followed by a small MLP ("MLP-A") that was first "smoothed" on single-cell data by mixup
regression of cell-type targets. gliofuse exposes that as an interface with two implementations:

* **gene-embedding table** (``rna_encoder: <path>``): a table of per-gene vectors read from a local
  file (never downloaded), keyed by gene symbol or Ensembl id; a profile (B, G) is encoded as the
  expression-weighted sum of its genes' vectors, ``x @ E / sqrt(n_matched)``. Formats:

  - ``.pt`` / ``.pth``: ``{"genes": [...], "embeddings": Tensor (V, E)}``, ``{gene: Tensor (E,)}``, or a
    scGPT-style state dict whose ``*encoder.embedding.weight`` (V, E) rows are named by a ``vocab.json``
    (``{gene: row}``) next to the file;
  - ``.safetensors``: tensor ``embeddings`` (or the only 2-D tensor), genes from the metadata key ``genes``
    (JSON list) or a sidecar;
  - ``.npy``: matrix (V, E) with a sidecar; ``.npz``: arrays ``genes`` and ``embeddings``.

  Sidecars, tried in order: ``<file>.genes.txt`` (one gene per line), ``<stem>.genes.txt``, ``vocab.json``.
* **fallback** (``rna_encoder: fallback``): no weights; a frozen Gaussian random projection of the
  (train-fold z-scored) input genes, ``x @ R / sqrt(G)`` with ``R ~ N(0, 1)`` drawn from a fixed seed.
  It keeps the architecture and the parameter count of the genomics branch, but carries no prior
  knowledge: results with it are "Path-GPTOmic without a foundation model".

The scGPT transformer itself is not re-implemented; only its gene-token embeddings are used.
Single-cell reference data for the smoothing stage: ``.npz`` or ``.h5`` with ``X`` (cells, genes),
``genes`` (symbols or Ensembl ids) and ``cell_type`` (one label per cell).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gliofuse.errors import ConfigError, InputDataError

logger = logging.getLogger(__name__)

TABLE_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".safetensors", ".npy", ".npz")


def normalise_gene_id(gene: str) -> str:
    """Key used to match genes: stripped; Ensembl ids without their version (``ENSG…12.4`` -> ``ENSG…12``)."""
    g = str(gene).strip()
    if g.upper().startswith("ENS") and "." in g:
        g = g.split(".", 1)[0]
    return g


def file_sha256_(path: Path) -> str:
    """``sha256:<hex>`` of a file (provenance of the weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True)
class GeneEmbeddingTable:
    """Per-gene vectors of a foundation model.

    Attributes
    ----------
    genes : row keys (symbols or Ensembl ids, normalised by :func:`normalise_gene_id`), length V.
    vectors : float32 array, shape = (V, E).
    source : the file it was read from.
    sha256 : checksum of that file.
    """

    genes: tuple[str, ...]
    vectors: np.ndarray
    source: str
    sha256: str

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def lookup(self, genes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows for ``genes`` (G,): ``(vectors (G, E) with zeros for unknown genes, matched bool (G,))``.

        Exact key first, then case-insensitive (symbols), after :func:`normalise_gene_id`.
        """
        exact = {g: i for i, g in enumerate(self.genes)}
        upper: dict[str, int] = {}
        for i, g in enumerate(self.genes):
            upper.setdefault(g.upper(), i)
        out = np.zeros((len(genes), self.dim), dtype=np.float32)
        matched = np.zeros(len(genes), dtype=bool)
        for j, gene in enumerate(genes):
            key = normalise_gene_id(gene)
            i = exact.get(key, upper.get(key.upper()))
            if i is not None:
                out[j], matched[j] = self.vectors[i], True
        return out, matched


def _sidecar_genes(path: Path) -> list[str] | dict[str, int] | None:
    for cand in (path.with_name(path.name + ".genes.txt"), path.with_name(path.stem + ".genes.txt")):
        if cand.exists():
            return [line.strip() for line in cand.read_text().splitlines() if line.strip()]
    vocab = path.with_name("vocab.json")
    if vocab.exists():
        return {str(k): int(v) for k, v in json.loads(vocab.read_text()).items()}
    return None


def _rows_from_vocab(vocab: list[str] | dict[str, int] | None, n_rows: int, path: Path) -> list[str]:
    if vocab is None:
        raise InputDataError(f"gene-embedding file {path} has no gene names: add {path.name}.genes.txt (one gene per "
                             "row, in row order) or a vocab.json ({gene: row}) next to it.")
    if isinstance(vocab, list):
        if len(vocab) != n_rows:
            raise InputDataError(f"gene-embedding file {path}: {n_rows} rows but {len(vocab)} gene names in its sidecar.")
        return vocab
    names = [""] * n_rows
    for gene, row in vocab.items():
        if 0 <= row < n_rows:
            names[row] = gene
    return names


def _load_torch_table(path: Path) -> tuple[list[str], np.ndarray]:
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "embeddings" in obj and "genes" in obj:
        return [str(g) for g in obj["genes"]], np.asarray(obj["embeddings"], dtype=np.float32)
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) and v.ndim == 1 for v in obj.values()):
        genes = [str(k) for k in obj]
        return genes, np.stack([np.asarray(obj[g], dtype=np.float32) for g in obj])
    if isinstance(obj, dict):
        keys = [k for k in obj if str(k).endswith("encoder.embedding.weight")]
        if keys:
            weight = np.asarray(obj[keys[0]], dtype=np.float32)
            return _rows_from_vocab(_sidecar_genes(path), weight.shape[0], path), weight
    raise InputDataError(f"gene-embedding file {path}: expected {{'genes', 'embeddings'}}, {{gene: vector}} or a "
                         "state dict with '*encoder.embedding.weight' (+ vocab.json).")


def _load_safetensors_table(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        from safetensors import safe_open
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(f"reading {path} needs the 'safetensors' package: pip install safetensors.") from exc
    with safe_open(str(path), framework="numpy") as fh:
        meta = fh.metadata() or {}
        names = list(fh.keys())
        key = "embeddings" if "embeddings" in names else next(
            (k for k in names if len(fh.get_slice(k).get_shape()) == 2), None)
        if key is None:
            raise InputDataError(f"gene-embedding file {path} holds no 2-D tensor (expected 'embeddings').")
        weight = np.asarray(fh.get_tensor(key), dtype=np.float32)
    vocab: list[str] | dict[str, int] | None = json.loads(meta["genes"]) if "genes" in meta else _sidecar_genes(path)
    return _rows_from_vocab(vocab, weight.shape[0], path), weight


def load_gene_embeddings_(path: Path) -> GeneEmbeddingTable:
    """Read a gene-embedding table from a local file (formats in the module docstring).

    Raises
    ------
    ConfigError
        The file does not exist or has an unsupported suffix.
    InputDataError
        The file has no gene names, mismatched sizes, or non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"rna_encoder: gene-embedding file {path} does not exist. Give a local .pt/.safetensors/"
                          "/.npy/.npz file, or 'fallback'.")
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth"):
        genes, vectors = _load_torch_table(path)
    elif suffix == ".safetensors":
        genes, vectors = _load_safetensors_table(path)
    elif suffix == ".npy":
        vectors = np.load(path, allow_pickle=False).astype(np.float32)
        genes = _rows_from_vocab(_sidecar_genes(path), vectors.shape[0], path)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "genes" not in z or "embeddings" not in z:
                raise InputDataError(f"gene-embedding file {path} needs arrays 'genes' and 'embeddings'.")
            genes, vectors = [str(g) for g in z["genes"]], z["embeddings"].astype(np.float32)
    else:
        raise ConfigError(f"rna_encoder: unsupported file type {path.suffix!r} ({path}); use one of {TABLE_SUFFIXES}.")
    if vectors.ndim != 2 or vectors.shape[0] != len(genes) or vectors.shape[0] == 0:
        raise InputDataError(f"gene-embedding file {path}: expected (n_genes, dim) vectors for {len(genes)} genes, "
                             f"got shape {vectors.shape}.")
    if not np.isfinite(vectors).all():
        raise InputDataError(f"gene-embedding file {path} has non-finite values.")
    return GeneEmbeddingTable(genes=tuple(normalise_gene_id(g) for g in genes), vectors=vectors,
                              source=str(path), sha256=file_sha256_(path))


def fallback_projection(n_genes: int, dim: int, *, seed: int = 0) -> np.ndarray:
    """The fallback encoder's frozen table: ``N(0, 1)`` (n_genes, dim), float32, from ``seed`` only."""
    return np.random.default_rng(seed).standard_normal((n_genes, dim)).astype(np.float32)


def encode_expression(x: np.ndarray, rows: np.ndarray, matched: np.ndarray | None = None) -> np.ndarray:
    """``x @ rows / sqrt(n_matched)``: expression (n, G) and gene rows (G, E) -> embeddings (n, E)."""
    n = int(matched.sum()) if matched is not None else rows.shape[0]
    return (x @ rows / math.sqrt(max(n, 1))).astype(np.float32)


@dataclass(frozen=True)
class SingleCellReference:
    """Single-cell expression with cell-type labels (the smoothing stage's data).

    Attributes
    ----------
    expression : float32 (C, G), log-normalised and z-scored per gene (see :func:`load_single_cell_`).
    genes : gene keys, length G.
    cell_types : int64 (C,), index into ``type_names``.
    type_names : sorted cell-type names.
    source, sha256 : provenance.
    """

    expression: np.ndarray
    genes: tuple[str, ...]
    cell_types: np.ndarray
    type_names: tuple[str, ...]
    source: str
    sha256: str


def load_single_cell_(path: Path) -> SingleCellReference:
    """Read ``X`` (cells, genes), ``genes`` and ``cell_type`` from a ``.npz`` or ``.h5`` file.

    Counts are normalised to 1e4 per cell and ``log1p``-transformed, then z-scored per gene (the
    bulk inputs are z-scored per gene too).

    Raises
    ------
    ConfigError
        Missing file or unsupported suffix.
    InputDataError
        Missing arrays, mismatched sizes, fewer than 2 cell types.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sc_reference: single-cell file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("X", "genes", "cell_type") if k in z}
    elif suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as fh:
            arrays = {k: fh[k][()] for k in ("X", "genes", "cell_type") if k in fh}
    else:
        raise ConfigError(f"sc_reference: unsupported file type {path.suffix!r} ({path}); use .npz or .h5.")
    missing = [k for k in ("X", "genes", "cell_type") if k not in arrays]
    if missing:
        raise InputDataError(f"single-cell file {path} lacks {missing} (needs X, genes, cell_type).")
    x = np.asarray(arrays["X"], dtype=np.float64)
    genes = [g.decode() if isinstance(g, bytes) else str(g) for g in arrays["genes"]]
    labels = [c.decode() if isinstance(c, bytes) else str(c) for c in arrays["cell_type"]]
    if x.ndim != 2 or x.shape[1] != len(genes) or x.shape[0] != len(labels):
        raise InputDataError(f"single-cell file {path}: X {x.shape} does not match {len(labels)} cells x "
                             f"{len(genes)} genes.")
    names = tuple(sorted(set(labels)))
    if len(names) < 2:
        raise InputDataError(f"single-cell file {path}: needs at least 2 cell types, got {list(names)}.")
    x = np.log1p(1e4 * x / np.clip(x.sum(axis=1, keepdims=True), 1e-12, None))
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)
    index = {n: i for i, n in enumerate(names)}
    return SingleCellReference(expression=x.astype(np.float32), genes=tuple(normalise_gene_id(g) for g in genes),
                               cell_types=np.asarray([index[c] for c in labels], dtype=np.int64),
                               type_names=names, source=str(path), sha256=file_sha256_(path))
