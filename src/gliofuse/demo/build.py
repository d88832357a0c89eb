"""Write the demo cohort to a data root in GDC layout (docs/data-contracts.md, section 1).

Layout under ``out_dir``: ``slides/<slide_id>.svs``, ``rnaseq/<file_id>/<file_name>``,
``metadata/{files_rnaseq,files_slides,cases}.json``, ``labels/molecular.tsv``,
``truth/ground_truth.tsv`` (+ ``.prov.json``) and ``truth/gene_sets.tsv``. Every file is written
atomically; output is byte-identical for the same ``(seed, cfg)`` and code version.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gliofuse.demo import plan as plan_mod
from gliofuse.demo.clinical_tables import ground_truth_text, molecular_table_text
from gliofuse.demo.expression import gene_model, gene_sets_table_text, log_expression, simulate_star_counts
from gliofuse.demo.gdc_records import case_hit, envelope, rna_file_hit, slide_file_hit
from gliofuse.demo.plan import CohortPlan, PatientPlan, plan_cohort, rng_for
from gliofuse.demo.resources import asset_paths, load_gene_symbols, load_textures
from gliofuse.demo.svs import write_aperio_svs_
from gliofuse.demo.tissue import synthesize_slide
from gliofuse.io import provenance, sidecar_path, write_json_, write_text_atomic_

if TYPE_CHECKING:
    from gliofuse.config import DemoConfig

log = logging.getLogger(__name__)

RECURRENT_TUMOUR_SHIFT = 0.4
"""Recurrent samples: ``z_tumour`` of the expression model is shifted by this (progression)."""


def _md5_and_size(path: Path) -> tuple[str, int]:
    h = hashlib.md5()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest(), path.stat().st_size


def write_slide_(p: PatientPlan, k: int, *, seed: int, width_um: float, height_um: float,
                 data_root: Path) -> tuple[str, int]:
    """Synthesise and write slide ``k`` of patient ``p``; returns (md5, size in bytes) of the SVS file."""
    mpp = p.slide_mpp[k]
    rgb = synthesize_slide(rng=rng_for(seed, "patient", p.index, "slide", k), z_tumour=p.z_tumour,
                           z_micro=p.z_micro, width_um=width_um, height_um=height_um, mpp=mpp,
                           textures=load_textures())
    path = data_root / "slides" / f"{p.slide_ids[k]}.svs"
    write_aperio_svs_(path, rgb, mpp=mpp, app_mag=float(round(10.0 / mpp)))
    return _md5_and_size(path)


def write_rna_files_(p: PatientPlan, *, seed: int, n_genes: int, data_root: Path) -> list[tuple[str, int]]:
    """Write the STAR - Counts file(s) of patient ``p``; returns (md5, size) per file of ``p.rna_files``."""
    model = gene_model(n_genes)
    out = []
    for j, f in enumerate(p.rna_files):
        rng = rng_for(seed, "patient", p.index, "rna", j)
        shift = RECURRENT_TUMOUR_SHIFT if f.sample_type == plan_mod.RECURRENT_TUMOR else 0.0
        x = log_expression(model, rng, z_tumour=p.z_tumour + shift, z_micro=p.z_micro,
                           idh_mutant=p.idh_mutant, codel=p.codel, cdkn2a_deleted=p.cdkn2a_deleted,
                           chr7_gain_chr10_loss=p.chr7_gain_chr10_loss)
        path = data_root / f.relpath
        write_text_atomic_(path, simulate_star_counts(model, rng, x))
        out.append(_md5_and_size(path))
    return out


def _slide_job(args: tuple[PatientPlan, int, int, float, float, str]) -> tuple[str, int]:
    p, k, seed, w_um, h_um, root = args
    return write_slide_(p, k, seed=seed, width_um=w_um, height_um=h_um, data_root=Path(root))


def default_workers() -> int:
    """Processes for slide synthesis: one per available CPU, at most 4."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def mp_context() -> multiprocessing.context.BaseContext:
    """``fork`` on Linux unless torch is loaded (forking its thread pools is unsafe), else ``spawn``.

    Workers only need numpy, scipy and Pillow; ``fork`` also works when the caller is a script without an
    ``if __name__ == "__main__"`` guard.
    """
    if sys.platform.startswith("linux") and "torch" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _warn_stale(plan: CohortPlan, root: Path) -> None:
    planned = {f"{s}.svs" for s in plan.slide_ids}
    stale = sorted(x.name for x in (root / "slides").glob("*.svs") if x.name not in planned)
    if stale:
        log.warning("%d slide(s) in %s are not part of this demo cohort (left over from another seed or "
                    "config?), e.g. %s. Delete the folder to start clean.", len(stale), root / "slides", stale[0])


def generate_cohort_(*, seed: int, cfg: DemoConfig, out_dir: Path, progress: bool = True,
                     workers: int | None = None) -> CohortPlan:
    """Generate the demo cohort under ``out_dir`` (the data root) and return its plan.

    Parameters
    ----------
    seed : global seed; same ``(seed, cfg)`` -> byte-identical files.
    cfg : ``DemoConfig`` (cohort size, slide size in µm, fractions, genes, censoring).
    out_dir : data root to write (created if needed).
    progress : show a tqdm bar on stderr (progress is logged per slide either way).
    workers : processes for slide synthesis; None: up to 4, one per available CPU. The output does not
        depend on it.

    Raises
    ------
    InputDataError
        If a shipped asset (texture crop, gene symbol list) is missing.
    """
    from tqdm import tqdm

    root = Path(out_dir)
    load_textures()  # fail early (InputDataError) if an asset is missing
    load_gene_symbols()
    plan = plan_cohort(seed=seed, cfg=cfg)
    patients = {p.index: p for p in plan.patients}
    jobs = [(p, k) for p in plan.patients for k in range(len(p.slide_ids))]
    n_workers = default_workers() if workers is None else max(1, int(workers))
    log.info("demo cohort: %d patients, %d slides, %d RNA-seq files -> %s (%d worker(s))",
             len(plan.patients), len(jobs), len(plan.rna_files()), root, n_workers)
    _warn_stale(plan, root)
    (root / "slides").mkdir(parents=True, exist_ok=True)

    slide_info: dict[tuple[int, int], tuple[str, int]] = {}
    args = [(p, k, seed, cfg.slide_width_um, cfg.slide_height_um, str(root)) for p, k in jobs]
    bar = tqdm(total=len(jobs), desc="demo slides", unit="slide", disable=not progress, file=sys.stderr)

    def done(i: int, res: tuple[str, int]) -> None:
        p, k = jobs[i]
        slide_info[(p.index, k)] = res
        bar.update(1)
        log.info("slide %d/%d %s (%gx, %.2f um/px, %.1f MB)", len(slide_info), len(jobs), p.slide_ids[k],
                 p.slide_magnifications[k], p.slide_mpp[k], res[1] / 1e6)

    try:
        todo = list(range(len(jobs)))
        if n_workers > 1 and len(jobs) > 1:
            try:
                with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp_context()) as pool:
                    for i, res in zip(todo, pool.map(_slide_job, args), strict=False):
                        done(i, res)
            except BrokenProcessPool as exc:
                log.warning("slide worker pool failed (%s); writing the remaining slides serially", exc)
        for i in todo:
            if (jobs[i][0].index, jobs[i][1]) not in slide_info:
                done(i, _slide_job(args[i]))
    finally:
        bar.close()

    rna_info: dict[str, tuple[str, int]] = {}
    for p in plan.patients:
        for f, res in zip(p.rna_files, write_rna_files_(p, seed=seed, n_genes=cfg.n_genes, data_root=root),
                          strict=True):
            rna_info[f.file_id] = res
    log.info("wrote %d STAR - Counts files (%d genes each)", len(rna_info), cfg.n_genes)

    slide_hits = [slide_file_hit(patients[i], k, md5sum=md5, file_size=size)
                  for (i, k), (md5, size) in slide_info.items()]
    slide_hits.sort(key=lambda h: h["file_name"])
    rna_hits = [rna_file_hit(p, f, md5sum=rna_info[f.file_id][0], file_size=rna_info[f.file_id][1])
                for p in plan.patients for f in p.rna_files]
    rna_hits.sort(key=lambda h: (h["cases"][0]["submitter_id"], h["file_name"]))
    case_hits = [case_hit(p, rng_for(seed, "patient", p.index, "gdc")) for p in plan.patients]
    case_hits.sort(key=lambda h: h["submitter_id"])
    write_json_(root / plan_mod.FILES_SLIDES_JSON, envelope(slide_hits))
    write_json_(root / plan_mod.FILES_RNASEQ_JSON, envelope(rna_hits))
    write_json_(root / plan_mod.CASES_JSON, envelope(case_hits))
    write_text_atomic_(root / plan_mod.MOLECULAR_TSV, molecular_table_text(plan))
    write_text_atomic_(root / plan_mod.GENE_SETS_TSV, gene_sets_table_text(gene_model(cfg.n_genes)))
    truth = root / plan_mod.GROUND_TRUTH_TSV
    write_text_atomic_(truth, ground_truth_text(plan.patients))
    prov: dict[str, Any] = provenance(
        config=cfg.model_dump(mode="json"), inputs={p.name: p for p in asset_paths()},
        extra={"seed": int(seed), "generator": "gliofuse.demo", "n_patients": len(plan.patients),
               "n_slides": len(jobs)})
    write_json_(sidecar_path(truth), prov)
    log.info("demo cohort written to %s", root)
    return plan
