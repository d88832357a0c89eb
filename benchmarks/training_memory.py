"""Peak memory of a TCGA-size training batch and of inference on a many-slide patient (issue 16, item 5).

Writes synthetic slide feature files at TCGA scale with the project's writer (``features.store``): ``--patients``
patients with 1, 2, 3, 1, 2, 3, ... slides, each slide ``--max-slide-patches`` / 2 to ``--max-slide-patches``
patches x ``--feature-dim`` features (seeded), and one more patient with ``--infer-slides`` slides of
``--max-slide-patches`` patches each (5 x 20,000: a many-slide TCGA patient). Then, for each model, in a fresh process (so that the process peak RSS belongs to that model and
phase alone):

* ``train``: one training step as the loop runs it: a ``PatientBagDataset`` (bags not kept in memory, ``max_patches``
  sampled rows read from disk per patient), one batch of ``--batch-size`` patients, forward, Cox loss + auxiliary
  losses, backward, the model's gradient policies, the optimiser step.
* ``infer``: ``gliofuse.training.predict.predict`` on the many-slide patient (all its slides: the full
  bag, or the model's inference cap, ``training.inference_max_patches`` / card ``max_inference_patches``), with the
  inference batch budget ``batch_size x max_patches``.

Reported per model and phase: seconds, the process's RSS before the step (imports, model, optimiser), its peak
RSS and the difference (what the step adds; CPU), and on CUDA ``torch.cuda.max_memory_allocated`` of the step. Models run at their card defaults (subspace_fusion: the paper's size).

Examples::

    # CPU (about 2-3 min on 2 cores; ~2 GB of temporary feature files)
    .venv/bin/python benchmarks/training_memory.py --device cpu --out results/benchmarks/training_memory_cpu.json
    # GPU
    .venv/bin/python benchmarks/training_memory.py --device cuda --out results/benchmarks/training_memory_cuda.json
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MODELS = ("subspace_fusion", "abmil_snn_concat", "transmil", "mcat", "path_gptomic", "m2f")
N_GENES = 256  # training.n_top_genes
SUBSPACE_GENES = {"tumour": 59, "microenvironment": 361}  # the paper's gene-set sizes
MCAT_SET_GENES = 200  # genes per MCAT family (synthetic)
INFER_PATIENT = "TCGA-ZZ-9999"  # the many-slide patient of the inference phase


def _rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def write_cohort(root: Path, *, patients: int, max_slide_patches: int, infer_slides: int, dim: int,
                 seed: int) -> dict[str, list[int]]:
    """Synthetic slide feature files (contract §5) under ``root``; returns ``{patient: [patches per slide]}``, the
    many-slide inference patient (``INFER_PATIENT``) last."""
    from gliofuse.features.store import write_features_h5_

    rng = np.random.default_rng(seed)
    per_patient: dict[str, list[int]] = {}
    for p in range(patients + 1):
        pid = f"TCGA-MM-{p:04d}" if p < patients else INFER_PATIENT
        sizes = ([int(rng.integers(max_slide_patches // 2, max_slide_patches + 1)) for _ in range(p % 3 + 1)]
                 if p < patients else [max_slide_patches] * infer_slides)
        per_patient[pid] = sizes
        for s, n in enumerate(sizes):
            side = int(np.ceil(np.sqrt(n)))
            idx = np.arange(n)
            coords = np.stack([idx % side, idx // side], axis=1) * 256
            attrs = {"embed_dim": dim, "patch_size": 256, "target_mpp": 0.5, "encoder": "synthetic",
                     "slide_id": f"{pid}-01Z-00-DX{s + 1}", "status": "ok", "reason": "", "provenance": "{}"}
            write_features_h5_(root / f"{pid}-01Z-00-DX{s + 1}.h5", rng.standard_normal((n, dim), dtype=np.float32),
                               coords, attrs)
    return per_patient


def _inputs(model_name: str, dim: int) -> tuple[dict[str, int], dict[str, int]]:
    """``input_dims`` of the model and the omics gene-set sizes the dataset must carry."""
    from gliofuse.models.mcat import MCAT_GENE_SETS

    sets = dict(SUBSPACE_GENES) if model_name.startswith("subspace") else {}
    if model_name in ("mcat", "m2f"):
        sets = {s: MCAT_SET_GENES for s in MCAT_GENE_SETS}
    return {"wsi": dim, "omics": N_GENES, **{f"omics:{k}": v for k, v in sets.items()}}, sets


def _dataset(root: Path, patients: list[str], sets: dict[str, int], *, max_patches: int | None,
             batch_patches: int | None, seed: int) -> Any:
    from gliofuse.data.bags import group_feature_files_
    from gliofuse.data.batch import Targets
    from gliofuse.data.datasets import PatientBagDataset

    by_patient, _ = group_feature_files_(root.glob("*.h5"))
    rng = np.random.default_rng(seed)
    n = len(patients)
    targets = Targets(time_days=rng.uniform(30, 3000, n), event=(np.arange(n) % 3 != 0).astype(float),
                      label=np.zeros(n, dtype=np.int64))
    return PatientBagDataset(
        patient_ids=patients, slide_files=by_patient, omics=rng.standard_normal((n, N_GENES)).astype(np.float32),
        omics_sets={k: rng.standard_normal((n, g)).astype(np.float32) for k, g in sets.items()}, targets=targets,
        max_patches=max_patches, seed=seed, preload=False, inference_max_patches=max_patches,
        inference_batch_patches=batch_patches)


def measure(model_name: str, phase: str, args: dict[str, Any]) -> dict[str, Any]:
    """One model and phase in this (fresh) process: its time, RSS before the step and peak memory."""
    import torch

    from gliofuse.config import TrainingConfig
    from gliofuse.device import resolve_device
    from gliofuse.models.registry import create_model
    from gliofuse.tasks import get_task
    from gliofuse.training.assemble import inference_patch_cap
    from gliofuse.training.objectives import build_objective
    from gliofuse.training.optim import autocast, make_optimizer
    from gliofuse.training.policies import StepContext, build_policies
    from gliofuse.training.predict import predict
    from gliofuse.training.sampling import make_loader

    torch.manual_seed(0)
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    device = resolve_device(args["device"], key="--device")
    training = TrainingConfig(max_patches=args["max_patches"], batch_size=args["batch_size"], device=str(device),
                              amp=not args["no_amp"])
    root, sizes = Path(args["root"]), args["sizes"]
    input_dims, sets = _inputs(model_name, args["feature_dim"])
    model = create_model(model_name, input_dims=input_dims, tasks=("survival",))
    model.bind_omics_genes({"omics": [f"GENE{i}" for i in range(N_GENES)]})
    objective = build_objective(get_task("survival"), train_time_days=np.linspace(30, 3000, 64), train_labels=None,
                                survival_loss="cox")
    heads = torch.nn.ModuleDict({"survival": objective.build_head(model.embed_dim)})
    model.to(device)
    heads.to(device)
    budget = training.batch_size * training.max_patches
    if phase == "train":
        patients = sorted(p for p in sizes if p != INFER_PATIENT)[: training.batch_size]
        ds = _dataset(root, patients, sets, max_patches=training.max_patches, batch_patches=budget, seed=1)
    else:
        patients = [INFER_PATIENT]
        ds = _dataset(root, patients, sets, max_patches=inference_patch_cap(model_name, training),
                      batch_patches=budget, seed=1)
    params = [p for p in [*model.parameters(), *heads.parameters()] if p.requires_grad]
    optimizer = make_optimizer(params, training)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = _rss_bytes()
    t0 = time.perf_counter()
    if phase == "train":
        batch = next(iter(make_loader(ds, training.batch_size, shuffle=True, seed=0)))
        t_data = time.perf_counter() - t0
        batch = batch.to(device)
        model.train()
        heads.train()
        with autocast(device, training):
            out = model(batch)
            outputs = {"survival": heads["survival"](out.embedding)}
        loss = objective.loss(outputs["survival"].float(), batch)
        loss = loss + sum((a.float() for a in out.aux_losses.values()), torch.zeros((), device=device))
        loss.backward()
        ctx = StepContext(epoch=1, step=0, batch=batch, output=out, heads=heads, objectives={"survival": objective},
                          optimizer=optimizer)
        for policy in build_policies(model):
            policy.after_backward(model, 0, ctx)
        optimizer.step()
        tokens = int(batch.wsi_mask.sum())
    else:
        t_data = None
        predict(model, heads, ds, batch_size=training.batch_size, device=device, optim=training)
        tokens = ds.inference_view().bag_size(0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = {"model": model_name, "phase": phase, "patients": len(patients), "patches": tokens,
              "slides": sum(len(sizes[p]) for p in patients), "patches_on_disk": sum(sum(sizes[p]) for p in patients),
              "seconds": round(seconds, 2), "data_seconds": None if t_data is None else round(t_data, 2),
              "rss_before_gib": round(rss_before / 1024**3, 3), "peak_rss_gib": round(peak / 1024**3, 3),
              "step_rss_gib": round((peak - rss_before) / 1024**3, 3)}
    if device.type == "cuda":
        result["cuda_max_allocated_gib"] = round(torch.cuda.max_memory_allocated(device) / 1024**3, 3)
    return result


def _machine() -> dict[str, Any]:
    import torch

    return {"nproc": os.cpu_count(), "torch": torch.__version__, "load_average": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu | cuda[:k] | auto")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--phases", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    p.add_argument("--patients", type=int, default=16, help="patients written (the training batch: the first ones)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-patches", type=int, default=512, help="training.max_patches")
    p.add_argument("--max-slide-patches", type=int, default=20_000)
    p.add_argument("--infer-slides", type=int, default=5, help="slides of the inference patient")
    p.add_argument("--feature-dim", type=int, default=1024)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA (default: bf16 autocast)")
    p.add_argument("--workdir", type=Path, default=None, help="where the feature files go (default: a temp dir, "
                   "removed at the end)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = p.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gliofuse_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        sizes = write_cohort(work, patients=args.patients, max_slide_patches=args.max_slide_patches,
                             infer_slides=args.infer_slides, dim=args.feature_dim, seed=0)
        write_s = time.perf_counter() - t0
        shared = {"root": str(work), "sizes": sizes, "device": args.device, "threads": args.threads,
                  "max_patches": args.max_patches, "batch_size": args.batch_size, "feature_dim": args.feature_dim,
                  "no_amp": args.no_amp}
        rows = []
        ctx = multiprocessing.get_context("spawn")
        for model_name in args.models:
            for phase in args.phases:
                with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                    row = pool.submit(measure, model_name, phase, shared).result()
                print(json.dumps(row), flush=True)
                rows.append(row)
        n_patches = sum(sum(v) for v in sizes.values())
        result = {"benchmark": "training memory (issue 16 item 5)", "device": args.device,
                  "patients": args.patients + 1, "slides": sum(len(v) for v in sizes.values()),
                  "patches_on_disk": n_patches, "feature_bytes_on_disk_gib": round(n_patches * args.feature_dim * 4
                                                                                    / 1024**3, 2),
                  "write_seconds": round(write_s, 1), "max_patches": args.max_patches,
                  "batch_size": args.batch_size, "machine": _machine(), "rows": rows}
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
