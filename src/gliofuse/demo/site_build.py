"""Write the demo's external site: a ``cohort: sheet`` input from another hospital (README "Your own cohort").

Layout under the site folder (``gliofuse demo external --out results/demo_external``):

* ``slides/<slide_id>.tiff`` (generic tiled TIFF) or ``slides/<slide_id>/level_<k>.dcm`` (DICOM WSI), stain
  shifted (:mod:`gliofuse.demo.stain`) and at the site scanner's resolutions;
* ``slides.csv``: the slide sheet (patient_id, slide_id, slide_path relative to the folder);
* ``clinical.csv``: one row per patient with the site's own column names and spellings
  (:data:`CLINICAL_COLUMNS` maps them; ``cohort.yaml`` holds that mapping as a config snippet);
* ``expression_tpm.tsv``: TPM, gene symbols in rows, patients in columns (``gliofuse omics import --unit tpm
  --gene-id symbol``), with a per-gene batch effect of the site's platform;
* ``truth/ground_truth.tsv`` (+ ``.prov.json``): latent factors and true risk, as the demo's.

Same ``(seed, cfg)`` -> the same TIFF, CSV, TSV and YAML bytes; DICOM files have the same names and pixels
(their UIDs derive from the seed), wsidicomizer stamps the conversion time into them.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gliofuse.demo.build import default_workers, mp_context
from gliofuse.demo.clinical_tables import ground_truth_text
from gliofuse.demo.expression import gene_model, log_expression, sample_read_counts, tpm_of_counts
from gliofuse.demo.resources import asset_paths, load_gene_symbols, load_textures
from gliofuse.demo.site_plan import (
    CLINICAL_COLUMNS,
    CLINICAL_CSV,
    CLINICAL_TIME_UNIT,
    COHORT_YAML,
    DICOM,
    EXPRESSION_GENE_COLUMN,
    EXPRESSION_TSV,
    GROUND_TRUTH_TSV,
    SLIDES_CSV,
    SitePatient,
    SitePlan,
    plan_external_site,
    site_rng,
)
from gliofuse.demo.slide_formats import write_dicom_wsi_, write_generic_tiff_
from gliofuse.demo.stain import shift_stain
from gliofuse.demo.svs import write_aperio_svs_
from gliofuse.demo.tissue import synthesize_slide
from gliofuse.io import provenance, sidecar_path, write_json_, write_text_atomic_
from gliofuse.tasks import DAYS_PER_MONTH

if TYPE_CHECKING:
    from gliofuse.config import DemoConfig, ExternalSiteConfig

log = logging.getLogger(__name__)

_ROMAN = {2: "II", 3: "III", 4: "IV"}


MIN_LEVEL_PX = 256
"""Pyramid levels are added while their long side stays >= this (small demo slides still get a pyramid)."""


def _downsamples(h: int, w: int) -> tuple[int, ...]:
    """Pyramid downsamples 1, 4, 16, ... while the level's long side stays >= ``MIN_LEVEL_PX``."""
    out = [1]
    while max(h, w) // (out[-1] * 4) >= MIN_LEVEL_PX:
        out.append(out[-1] * 4)
    return tuple(out)


def write_site_slide_(p: SitePatient, *, plan: SitePlan, cfg: DemoConfig, site_dir: Path) -> Path:
    """Synthesise, stain-shift and write the slide of ``p``; returns its file (DICOM: the level-0 file)."""
    ext = cfg.external
    rgb = synthesize_slide(rng=site_rng(plan.seed, plan.name, "patient", p.index, "slide"), z_tumour=p.z_tumour,
                           z_micro=p.z_micro, width_um=cfg.slide_width_um, height_um=cfg.slide_height_um,
                           mpp=p.mpp, textures=load_textures())
    rgb = shift_stain(rgb, haematoxylin_scale=ext.haematoxylin_scale, eosin_scale=ext.eosin_scale,
                      hue_deg=ext.hue_deg)
    path = site_dir / p.slide_relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    if p.slide_format != DICOM:
        return write_generic_tiff_(path, rgb, mpp=p.mpp, downsamples=_downsamples(*rgb.shape[:2]), quality=90)
    with tempfile.TemporaryDirectory(dir=site_dir) as tmp:
        svs = Path(tmp) / f"{p.slide_id}.svs"
        write_aperio_svs_(svs, rgb, mpp=p.mpp, app_mag=40.0 if p.mpp < 0.35 else 20.0, quality=90,
                          thumbnail_px=256, min_level_px=MIN_LEVEL_PX)
        return write_dicom_wsi_(svs, path.parent, uid_key=f"{plan.seed}/{p.slide_id}")


def _slide_job(args: tuple[SitePatient, SitePlan, DemoConfig, str]) -> str:
    p, plan, cfg, site_dir = args
    return os.fspath(write_site_slide_(p, plan=plan, cfg=cfg, site_dir=Path(site_dir)))


def clinical_csv_text(plan: SitePlan) -> str:
    """``clinical.csv``: the site's own columns (:data:`CLINICAL_COLUMNS`) and spellings, sorted by patient."""
    c = CLINICAL_COLUMNS
    lines = [",".join(c.values())]
    for p in sorted(plan.patients, key=lambda q: q.patient_id):
        row = {
            c["patient_id"]: p.patient_id, c["survival_time"]: f"{p.time_days / DAYS_PER_MONTH:.2f}",
            c["event"]: "dead" if p.event else "alive", c["idh"]: "mutated" if p.idh_mutant else "wt",
            c["codel"]: "codeleted" if p.codel else "intact", c["cdkn2a"]: "yes" if p.cdkn2a_deleted else "no",
            c["histologic_grade"]: _ROMAN[p.histologic_grade], c["tert"]: "mut" if p.tert_mutant else "wt",
            c["gain7_loss10"]: "yes" if p.chr7_gain_chr10_loss else "no", c["age_years"]: f"{p.age_years:.0f}",
            c["sex"]: "F" if p.sex == "female" else "M",
        }
        lines.append(",".join(row[k] for k in c.values()))
    return "\n".join(lines) + "\n"


def slide_sheet_text(plan: SitePlan) -> str:
    """``slides.csv``: patient_id, slide_id, slide_path (relative to the site folder), sorted by slide id."""
    rows = sorted((p.slide_id, p) for p in plan.patients)
    return "\n".join(["patient_id,slide_id,slide_path"]
                     + [f"{p.patient_id},{sid},{p.slide_relpath}" for sid, p in rows]) + "\n"


def expression_tpm_text(plan: SitePlan, *, n_genes: int, batch_sd: float) -> str:
    """``expression_tpm.tsv``: TPM of every gene of the demo's gene model (rows: symbols, sorted) per patient.

    Same expression model as the development demo's STAR files (:func:`gliofuse.demo.expression.log_expression`)
    plus a per-gene log-scale batch offset ~ N(0, ``batch_sd``) shared by the site's samples.
    """
    model = gene_model(n_genes)
    batch = batch_sd * site_rng(plan.seed, plan.name, "expression_batch").standard_normal(model.gene_id.size)
    patients = sorted(plan.patients, key=lambda q: q.patient_id)
    cols = []
    for p in patients:
        rng = site_rng(plan.seed, plan.name, "patient", p.index, "rna")
        x = log_expression(model, rng, z_tumour=p.z_tumour, z_micro=p.z_micro, idh_mutant=p.idh_mutant,
                           codel=p.codel, cdkn2a_deleted=p.cdkn2a_deleted, chr7_gain_chr10_loss=p.chr7_gain_chr10_loss)
        cols.append(tpm_of_counts(model, sample_read_counts(model, rng, x + batch)))
    tpm = np.stack(cols, axis=1)
    order = np.argsort(model.gene_name.astype(str), kind="stable")
    lines = ["\t".join([EXPRESSION_GENE_COLUMN] + [p.patient_id for p in patients])]
    lines += ["\t".join([str(model.gene_name[i])] + [f"{v:.3f}" for v in tpm[i]]) for i in order]
    return "\n".join(lines) + "\n"


def cohort_yaml_text(site_dir: str | os.PathLike[str], ext: ExternalSiteConfig) -> str:
    """``cohort.yaml``: the ``cohort: sheet`` config block of the site (paths as given in ``site_dir``)."""
    d = Path(site_dir)
    cols = ", ".join(f"{k}: {v}" if not v[0].isdigit() else f"{k}: '{v}'" for k, v in CLINICAL_COLUMNS.items())
    return "\n".join([
        f"# External site {ext.name} of the gliofuse demo (`gliofuse demo external`): a `cohort: sheet` input",
        "# (README \"Your own cohort\", docs/data-contracts.md section 0). Merge into a config to use it.",
        "cohort: sheet",
        "sheet:",
        f"  slides: {d / SLIDES_CSV}",
        f"  clinical: {d / CLINICAL_CSV}",
        f"  name: {ext.name}",
        f"  time_unit: {CLINICAL_TIME_UNIT}",
        f"  columns: {{{cols}}}",
        "# expression (TPM, gene symbols), into the training run's gene space:",
        f"#   gliofuse omics import --matrix {d / EXPRESSION_TSV} --unit tpm --gene-id symbol \\",
        "#     --reference results/omics/expression.h5 --out <site results>/omics/expression.h5",
        "",
    ])


def generate_external_site_(*, seed: int, cfg: DemoConfig, out_dir: str | os.PathLike[str],
                            workers: int | None = None) -> SitePlan:
    """Write the external site of ``cfg.external`` into ``out_dir`` (created; its ``slides/`` replaced).

    ``workers``: processes for the slides; None: up to 4, one per available CPU (the output does not depend
    on it). Raises ``InputDataError`` if a shipped demo asset is missing.
    """
    root = Path(out_dir)
    load_textures()  # fail early (InputDataError) if an asset is missing
    load_gene_symbols()
    plan = plan_external_site(seed=seed, cfg=cfg)
    ext = cfg.external
    shutil.rmtree(root / "slides", ignore_errors=True)
    (root / "slides").mkdir(parents=True)
    n_workers = default_workers() if workers is None else max(1, int(workers))
    args = [(p, plan, cfg, os.fspath(root)) for p in plan.patients]
    log.info("external site %s: %d patients (%d DICOM, %d TIFF) -> %s", plan.name, len(args),
             sum(p.slide_format == DICOM for p in plan.patients),
             sum(p.slide_format != DICOM for p in plan.patients), root)
    if n_workers > 1 and len(args) > 1:
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp_context()) as pool:
            written = list(pool.map(_slide_job, args))
    else:
        written = [_slide_job(a) for a in args]
    log.info("wrote %d slides", len(written))
    write_text_atomic_(root / SLIDES_CSV, slide_sheet_text(plan))
    write_text_atomic_(root / CLINICAL_CSV, clinical_csv_text(plan))
    write_text_atomic_(root / EXPRESSION_TSV,
                       expression_tpm_text(plan, n_genes=cfg.n_genes, batch_sd=ext.expression_batch_sd))
    write_text_atomic_(root / COHORT_YAML, cohort_yaml_text(root, ext))
    truth = root / GROUND_TRUTH_TSV
    write_text_atomic_(truth, ground_truth_text(plan.patients))
    write_json_(sidecar_path(truth), provenance(
        config=cfg.model_dump(mode="json"), inputs={p.name: p for p in asset_paths()},
        extra={"seed": int(seed), "site_seed": plan.seed, "generator": "gliofuse.demo.site_build",
               "n_patients": len(plan.patients)}))
    log.info("external site written to %s", root)
    return plan
