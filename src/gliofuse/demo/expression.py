"""Synthetic RNA-seq in the exact GDC "STAR - Counts" file format (augmented_star_gene_counts.tsv).

The gene model (ids, symbols, types, lengths, baselines, gene sets) is fixed for a given ``n_genes``
(like a GENCODE release) and does not depend on the cohort seed. Per sample, log expression is a
gene-specific baseline plus

* ``tumour`` set (proliferation / oncogenes): ``+loading * z_tumour``;
* ``micro`` set (myeloid, vascular, mesenchymal): ``+loading * z_micro``;
* ``idh`` set (proneural / oligodendroglial lineage): ``+loading`` if IDH-mutant, ``-loading`` if wild-type;
* copy-number genes: EGFR/MET/CDK6 up with chr7 gain, PTEN down with chr10 loss, CDKN2A ~absent when
  deleted, CIC/FUBP1 down when 1p/19q-codeleted;

plus gene-level noise (sd 0.3 on the natural-log scale) and Poisson read sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gliofuse.demo.resources import load_gene_symbols

GENE_MODEL_SEED = 36  # "GENCODE v36"
STAR_HEADER = ("gene_id", "gene_name", "gene_type", "unstranded", "stranded_first", "stranded_second",
               "tpm_unstranded", "fpkm_unstranded", "fpkm_uq_unstranded")
N_ROWS = ("N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous")
LNCRNA_FRACTION = 0.10

GENE_SETS: dict[str, tuple[str, ...]] = {
    "tumour": ("EGFR", "CDK4", "MDM2", "PDGFRA", "MET", "MYC", "AURKA", "AURKB", "PLK1", "FOXM1", "MYBL2",
               "E2F1", "CDK6", "CCND1", "SOX2", "HIF1A"),
    "micro": ("CD14", "CD163", "CD44", "PTPRC", "IL6", "CXCL8", "COL1A1", "TNC", "CCL2", "SPP1", "CD68",
              "PECAM1", "CDH5", "FLT1", "CSF1R", "ITGAM", "TGFB1", "ICAM1", "VCAM1", "CEBPB"),
    "idh": ("OLIG1", "OLIG2", "SOX10", "NKX2-2", "ASCL1", "HES6", "SOX11", "ETV1"),
}
COPY_NUMBER_GENES = ("PTEN", "CDKN2A", "CIC", "FUBP1")


@dataclass(frozen=True)
class GeneModel:
    """Fixed gene annotation and expression parameters; arrays of length G, rows sorted by ``gene_id``."""

    gene_id: np.ndarray      # str, versioned Ensembl ids "ENSG00000xxxxxx.N"
    gene_name: np.ndarray    # str, HGNC-like symbols
    gene_type: np.ndarray    # str, "protein_coding" / "lncRNA"
    length_bp: np.ndarray    # float64, effective gene length used for TPM/FPKM
    baseline: np.ndarray     # float64, natural-log relative abundance
    gene_set: np.ndarray     # str, "tumour" / "micro" / "idh" / "" (none)
    loading: np.ndarray      # float64, effect size of the gene's set (0 outside sets)

    def index_of(self, symbol: str) -> int | None:
        """Row index of gene ``symbol`` or None."""
        hits = np.flatnonzero(self.gene_name == symbol)
        return int(hits[0]) if hits.size else None


_PC_PREFIXES = ("ZNF", "KIAA", "FAM", "TMEM", "CCDC", "SLC", "OR", "ANKRD")


def _synthetic_symbols(rng: np.random.Generator, n: int, taken: set[str], kind: str) -> list[str]:
    """``n`` new unique symbols not in ``taken`` (which is updated).

    lncRNA: ``LINC0xxxx`` or clone-based ``AC012345.1``-style names; protein coding: ``ZNF123``-style
    family names or ``C7orf42``, drawn without replacement from ~100,000 candidates.
    """
    out: list[str] = []
    if kind == "lncRNA":
        while len(out) < n:
            r = int(rng.integers(0, 4))
            name = (f"LINC{int(rng.integers(1, 3000)):05d}" if r == 0 else
                    f"A{'CLP'[r - 1]}{int(rng.integers(0, 1000000)):06d}.{int(rng.integers(1, 4))}")
            if name not in taken:
                taken.add(name)
                out.append(name)
        return out
    n_fam = len(_PC_PREFIXES) * 9999
    n_orf = 22 * 999
    for code in rng.permutation(n_fam + n_orf).tolist():
        if len(out) == n:
            break
        if code < n_fam:
            name = f"{_PC_PREFIXES[code // 9999]}{code % 9999 + 1}"
        else:
            c = code - n_fam
            name = f"C{c // 999 + 1}orf{c % 999 + 1}"
        if name not in taken:
            taken.add(name)
            out.append(name)
    if len(out) < n:
        raise ValueError(f"cannot make {n} synthetic gene symbols (n_genes too large)")
    return out


@lru_cache(maxsize=8)
def gene_model(n_genes: int) -> GeneModel:
    """The gene model for ``n_genes`` genes (deterministic; independent of the cohort seed).

    About 10 % of the genes are ``lncRNA``, the rest ``protein_coding``; the gene-set and copy-number genes
    come first (scaled down when ``n_genes`` is small), then the shipped symbols in a fixed shuffled order,
    then synthetic symbols if ``n_genes`` exceeds them.
    """
    rng = np.random.default_rng(GENE_MODEL_SEED)
    symbols = load_gene_symbols()
    n_lnc = round(LNCRNA_FRACTION * n_genes)
    n_pc = n_genes - n_lnc
    per_set = max(3, n_pc // 12)
    chosen: list[str] = []
    sets: list[str] = []
    for name, genes in GENE_SETS.items():
        for g in genes[:per_set]:
            chosen.append(g)
            sets.append(name)
    for g in COPY_NUMBER_GENES:
        if len(chosen) < n_pc and g not in chosen:
            chosen.append(g)
            sets.append("")
    chosen, sets = chosen[:n_pc], sets[:n_pc]
    taken = set(chosen)
    rest = [s for s in symbols if s not in taken]
    rest = [rest[i] for i in rng.permutation(len(rest))]
    fill = rest[: n_pc - len(chosen)]
    chosen += fill
    sets += [""] * len(fill)
    taken |= set(fill)
    if len(chosen) < n_pc:
        extra = _synthetic_symbols(rng, n_pc - len(chosen), taken, "protein_coding")
        chosen += extra
        sets += [""] * len(extra)
    lnc = _synthetic_symbols(rng, n_lnc, taken, "lncRNA")
    names = np.array(chosen + lnc, dtype=object)
    types = np.array(["protein_coding"] * n_pc + ["lncRNA"] * n_lnc, dtype=object)
    gset = np.array(sets + [""] * n_lnc, dtype=object)

    numbers = rng.choice(np.arange(3, 290000), size=n_genes, replace=False)
    versions = rng.integers(1, 19, size=n_genes)
    ids = np.array([f"ENSG{num:011d}.{v}" for num, v in zip(numbers, versions, strict=True)], dtype=object)
    length = np.clip(rng.lognormal(np.log(2500.0), 0.8, size=n_genes), 250.0, 100000.0).round()
    baseline = rng.normal(0.0, 1.5, size=n_genes)
    baseline[types == "lncRNA"] -= 2.0
    in_set = gset != ""
    baseline[in_set] = rng.normal(1.0, 0.7, size=int(in_set.sum()))
    loading = np.zeros(n_genes)
    loading[gset == "tumour"] = rng.uniform(0.7, 1.1, size=int((gset == "tumour").sum()))
    loading[gset == "micro"] = rng.uniform(0.7, 1.1, size=int((gset == "micro").sum()))
    loading[gset == "idh"] = rng.uniform(0.8, 1.2, size=int((gset == "idh").sum()))

    order = np.argsort(ids)
    model = GeneModel(gene_id=ids[order], gene_name=names[order], gene_type=types[order],
                      length_bp=length[order], baseline=baseline[order], gene_set=gset[order],
                      loading=loading[order])
    for arr in (model.gene_id, model.gene_name, model.gene_type, model.length_bp, model.baseline,
                model.gene_set, model.loading):
        arr.setflags(write=False)
    return model


def log_expression(model: GeneModel, rng: np.random.Generator, *, z_tumour: float, z_micro: float,
                   idh_mutant: bool, codel: bool, cdkn2a_deleted: bool, chr7_gain_chr10_loss: bool,
                   noise_sd: float = 0.3) -> np.ndarray:
    """Natural-log relative abundance of every gene for one sample, float64 (G,)."""
    x = model.baseline + noise_sd * rng.standard_normal(model.baseline.size)
    x = x + model.loading * np.select(
        [model.gene_set == "tumour", model.gene_set == "micro", model.gene_set == "idh"],
        [z_tumour, z_micro, 0.7 * (1.0 if idh_mutant else -1.0)], 0.0)

    def shift(symbol: str, delta: float) -> None:
        i = model.index_of(symbol)
        if i is not None:
            x[i] += delta

    if chr7_gain_chr10_loss:
        shift("EGFR", 1.2)
        shift("MET", 0.5)
        shift("CDK6", 0.5)
        shift("PTEN", -0.8)
    if cdkn2a_deleted:
        shift("CDKN2A", -5.0)
    if codel:
        shift("CIC", -0.7)
        shift("FUBP1", -0.7)
    return x


def sample_read_counts(model: GeneModel, rng: np.random.Generator, log_expr: np.ndarray) -> np.ndarray:
    """Unstranded read counts (G,) int64: Poisson draws of ~2000 reads per gene on average (library size
    varies x0.6-1.4), proportional to abundance x gene length."""
    rel = np.exp(log_expr) * model.length_bp / 1000.0
    assigned = 2000.0 * model.length_bp.size * rng.uniform(0.6, 1.4)
    return rng.poisson(rel / rel.sum() * assigned).astype(np.int64)


def tpm_of_counts(model: GeneModel, counts: np.ndarray) -> np.ndarray:
    """TPM (G,) float64 of read ``counts`` (G,): counts per base of gene length, scaled to sum to 1e6."""
    rate = counts.astype(np.float64) / model.length_bp
    return rate / max(rate.sum(), 1e-12) * 1e6


def simulate_star_counts(model: GeneModel, rng: np.random.Generator, log_expr: np.ndarray) -> str:
    """Sample read counts for ``log_expr`` and render the STAR - Counts file text.

    Counts (unstranded, stranded_first, stranded_second) are Poisson/binomial draws; ``tpm_unstranded``,
    ``fpkm_unstranded`` and ``fpkm_uq_unstranded`` follow the GDC formulas from the unstranded counts and
    gene lengths (FPKM: per million protein-coding reads; FPKM-UQ: per 75th percentile of protein-coding
    gene counts). Returns the whole file as text (line 1 ``# gene-model: GENCODE v36``).
    """
    unstranded = sample_read_counts(model, rng, log_expr)
    first = rng.binomial(unstranded, 0.5)
    second = rng.binomial(unstranded, 0.5)
    total_reads = unstranded.sum() / rng.uniform(0.55, 0.7)
    n_unmapped = int(total_reads * rng.uniform(0.02, 0.06))
    n_multi = int(total_reads * rng.uniform(0.05, 0.12))
    n_nofeat = int(total_reads * rng.uniform(0.03, 0.08))
    n_ambig = int(total_reads * rng.uniform(0.02, 0.05))
    n_rows = {
        "N_unmapped": (n_unmapped, n_unmapped, n_unmapped),
        "N_multimapping": (n_multi, n_multi, n_multi),
        "N_noFeature": (n_nofeat, n_nofeat + int(second.sum()), n_nofeat + int(first.sum())),
        "N_ambiguous": (n_ambig, int(n_ambig * rng.uniform(0.2, 0.35)), int(n_ambig * rng.uniform(0.2, 0.35))),
    }
    c = unstranded.astype(np.float64)
    tpm = tpm_of_counts(model, unstranded)
    pc = model.gene_type == "protein_coding"
    n_pc = max(float(c[pc].sum()), 1.0)
    uq = max(float(np.percentile(c[pc], 75)), 1.0)
    fpkm = c * 1e9 / (model.length_bp * n_pc)
    fpkm_uq = c * 1e9 / (model.length_bp * uq)

    lines = ["# gene-model: GENCODE v36", "\t".join(STAR_HEADER)]
    lines += [f"{k}\t\t\t{a}\t{b}\t{d}\t\t\t" for k, (a, b, d) in n_rows.items()]
    lines += [
        f"{gid}\t{name}\t{gt}\t{u}\t{f}\t{s}\t{t:.4f}\t{fp:.4f}\t{fq:.4f}"
        for gid, name, gt, u, f, s, t, fp, fq in zip(
            model.gene_id, model.gene_name, model.gene_type, unstranded.tolist(), first.tolist(),
            second.tolist(), tpm.tolist(), fpkm.tolist(), fpkm_uq.tolist(), strict=True)
    ]
    return "\n".join(lines) + "\n"


def gene_sets_table_text(model: GeneModel) -> str:
    """TSV ``gene_id, gene_name, gene_set, loading`` of the genes that carry a latent signal."""
    rows = ["gene_id\tgene_name\tgene_set\tloading"]
    for gid, name, s, ld in zip(model.gene_id, model.gene_name, model.gene_set, model.loading, strict=True):
        if s:
            rows.append(f"{gid}\t{name}\t{s}\t{ld:.4f}")
    return "\n".join(rows) + "\n"
