"""Parse GDC ``augmented_star_gene_counts.tsv`` files and assemble the expression matrix (contract §6).

The matrix file itself is written and read by :mod:`gliofuse.omics.matrix`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from gliofuse.errors import InputDataError
from gliofuse.io import provenance, read_json_, write_table_
from gliofuse.omics.matrix import write_omics_h5_

log = logging.getLogger(__name__)

STAR_COLUMNS: tuple[str, ...] = (
    "gene_id", "gene_name", "gene_type", "unstranded", "stranded_first", "stranded_second",
    "tpm_unstranded", "fpkm_unstranded", "fpkm_uq_unstranded",
)
PRIMARY = "Primary Tumor"


def read_star_counts(path: Path, *, value_column: str) -> pd.DataFrame:
    """One STAR - Counts file → DataFrame indexed by unversioned Ensembl id with gene_name, gene_type, value.

    The ``N_*`` summary rows are dropped; a file that lacks a column or has a duplicate gene raises
    InputDataError naming it.
    """
    try:
        df = pd.read_csv(path, sep="\t", comment="#", dtype={"gene_id": str, "gene_name": str, "gene_type": str})
    except (OSError, pd.errors.ParserError) as exc:
        raise InputDataError(f"cannot parse STAR counts file {path}: {exc}. Re-download it.") from None
    missing = [c for c in STAR_COLUMNS if c not in df.columns]
    if missing:
        raise InputDataError(
            f"STAR counts file {path} lacks column(s) {missing}; expected the GDC augmented_star_gene_counts header "
            f"{list(STAR_COLUMNS)}."
        )
    df = df[~df["gene_id"].str.startswith("N_")]
    df = df.assign(gene=df["gene_id"].str.split(".", n=1).str[0])
    if df["gene"].duplicated().any():
        # PAR_Y genes share the unversioned id with their X copy in GENCODE; keep the first occurrence
        df = df[~df["gene"].duplicated()]
    values = pd.to_numeric(df[value_column], errors="coerce")
    if values.isna().any():
        raise InputDataError(f"STAR counts file {path}: column {value_column!r} has non-numeric values.")
    return pd.DataFrame(
        {"gene_name": df["gene_name"].to_numpy(), "gene_type": df["gene_type"].to_numpy(), "value": values.to_numpy()},
        index=pd.Index(df["gene"].to_numpy(), name="gene"),
    )


def _sample_rank(sample_id: str) -> tuple[int, str]:
    # TCGA sample barcode TCGA-XX-XXXX-01A: sample type code then vial letter
    code = sample_id[13:15] if len(sample_id) >= 15 else "99"
    return (int(code) if code.isdigit() else 99, sample_id)


def choose_samples(hits: list[dict[str, Any]], *, source: str) -> pd.DataFrame:
    """Pick one STAR file per patient from GDC ``/files`` hits.

    Rule: only ``Primary Tumor`` samples; the lowest sample barcode (type code, then vial), then the file name.
    Returns columns patient_id, sample_id, sample_type, file_id, file_name.
    """
    rows = []
    for i, hit in enumerate(hits):
        try:
            case = hit["cases"][0]
            sample = case["samples"][0]
            rows.append({
                "patient_id": case["submitter_id"], "sample_id": sample["submitter_id"],
                "sample_type": sample["sample_type"], "file_id": hit["file_id"], "file_name": hit["file_name"],
            })
        except (KeyError, IndexError, TypeError):
            raise InputDataError(
                f"{source}: hit {i} lacks file_id, file_name or cases[0].samples[0].{{submitter_id, sample_type}}; "
                "request these fields in the GDC /files query."
            ) from None
    df = pd.DataFrame(rows, columns=["patient_id", "sample_id", "sample_type", "file_id", "file_name"])
    n_other = int((df["sample_type"] != PRIMARY).sum())
    if n_other:
        log.info("dropping %d non-primary RNA-seq files (%s)", n_other, sorted(set(df["sample_type"]) - {PRIMARY}))
    df = df[df["sample_type"] == PRIMARY].copy()
    df["_rank"] = [_sample_rank(s) for s in df["sample_id"]]
    df = df.sort_values(["patient_id", "_rank", "file_name"]).drop_duplicates("patient_id").drop(columns="_rank")
    return df.reset_index(drop=True)


def build_expression_matrix_(*, files_json: Path, rnaseq_dir: Path, value_column: str, gene_types: list[str], log_transform: bool,
                             out_h5: Path, out_samples: Path, config: dict) -> tuple[int, int]:
    """Assemble ``results/omics/expression.h5`` (P × G float32) from STAR files ``rnaseq_dir/<file_id>/<file_name>``.

    Returns (n_patients, n_genes). All files must share the same gene set; a file that does not is named.
    """
    meta = files_json
    payload = read_json_(meta, what="GDC RNA-seq file metadata")
    try:
        hits = payload["data"]["hits"] if isinstance(payload, dict) else payload
    except (KeyError, TypeError):
        raise InputDataError(f"{meta} is not a GDC /files response ({{'data': {{'hits': [...]}}}}).") from None
    samples = choose_samples(hits, source=str(meta))
    if samples.empty:
        raise InputDataError(f"{meta} lists no Primary Tumor STAR - Counts file; nothing to build.")
    paths = [rnaseq_dir / fid / fname for fid, fname in zip(samples["file_id"], samples["file_name"], strict=True)]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise InputDataError(
            f"{len(missing)} STAR counts file(s) listed in {meta} are missing, e.g. {missing[:3]}. Rerun the download."
        )
    ref: pd.DataFrame | None = None
    first_index: pd.Index | None = None
    columns = []
    for path in tqdm(paths, desc="STAR files", unit="file", mininterval=2):
        tab = read_star_counts(path, value_column=value_column)
        if ref is None:
            first_index = tab.index
            ref = tab[tab["gene_type"].isin(gene_types)]
            if ref.empty:
                raise InputDataError(f"no gene of type {gene_types} in {path}; check omics.gene_types.")
        elif not tab.index.equals(first_index):
            raise InputDataError(f"STAR counts file {path} has a different gene set than {paths[0]} (mixed GENCODE versions?).")
        columns.append(tab.loc[ref.index, "value"].to_numpy(dtype=np.float64))
    assert ref is not None
    values = np.stack(columns).astype(np.float64)
    if log_transform:
        values = np.log2(values + 1.0)
    order = np.argsort(ref.index.to_numpy())
    genes = ref.index.to_numpy()[order]
    names = ref["gene_name"].fillna("").to_numpy()[order]
    values = values[:, order].astype(np.float32)
    prov = provenance(config=config, inputs={"files_rnaseq": meta, **{f"star:{p.parent.name}": p for p in paths}})

    write_omics_h5_(out_h5, values=values, patients=samples["patient_id"].to_numpy(), genes=genes, gene_names=names,
                    value_column=value_column, log_transform=log_transform, prov=prov)
    write_table_(out_samples, samples, prov=prov)
    log.info("expression matrix: %d patients x %d genes -> %s", values.shape[0], values.shape[1], out_h5)
    return values.shape

