"""Training benchmark (issue 04): one TCGA-size fold of the subspace-fusion model, three tasks.

A synthetic fold the size of TCGA GBM+LGG in the original's layout: 1,500 training slides of 2,500
patch tokens x 1,024-d features (ResNet-50 truncated), 190 validation slides, the paper's gene-set
sizes (59 tumour, 361 microenvironment genes), three task heads trained jointly (survival, grade,
4-class diagnosis; ``training.multitask``). Every step is the training loop's: the model forward,
objectives, auxiliary consistency loss, backward, the gradient-coordination policy and the
optimiser step (:mod:`gliofuse.training.loop`, :mod:`gliofuse.training.optim`, :mod:`gliofuse.training.policies`);
the validation pass is :func:`gliofuse.training.predict.predict`.

Features are drawn from a bank of ``--bank`` random bags (copied per sample, about the cost of a
page-cached HDF5 read), so the numbers measure training compute, not disk reads.

``--fraction`` runs that fraction of the training and validation batches and extrapolates linearly to
a full epoch (the first, warm-up step is timed separately and excluded). Peak memory: process RSS
(CPU) or ``torch.cuda.max_memory_allocated`` (GPU).

Examples::

    # CPU, 2 % of an epoch
    .venv/bin/python benchmarks/training.py --device cpu --fraction 0.02
    # H100: one full epoch, bf16 autocast
    .venv/bin/python benchmarks/training.py --device cuda --fraction 1.0

Results go to stdout as JSON (and to ``--out`` if given).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gliofuse.config import OptimConfig
from gliofuse.data.batch import PatientSample, Targets
from gliofuse.data.collate import collate_bags
from gliofuse.device import resolve_device
from gliofuse.models.registry import create_model
from gliofuse.seed import seed_everything
from gliofuse.tasks import get_task
from gliofuse.training.objectives import build_objective
from gliofuse.training.optim import autocast, make_optimizer
from gliofuse.training.policies import StepContext, build_policies
from gliofuse.training.predict import predict

TASKS = ("survival", "grade", "diagnosis")


class SyntheticFold(torch.utils.data.Dataset):
    """A :class:`~gliofuse.data.datasets.PatientBagDataset`-compatible fold of random slides (one item each)."""

    def __init__(self, n: int, *, tokens: int, dim: int, gene_dims: dict[str, int], bank: int, seed: int,
                 grid: int) -> None:
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        self.bank = torch.randn(bank, tokens, dim, generator=gen)
        side = math.ceil(math.sqrt(tokens))
        idx = torch.arange(tokens)
        self.pos = torch.stack([idx // side, idx % side], dim=1)
        self.patient_ids = [f"TCGA-XX-{i:04d}" for i in range(n)]
        self.items = [(i, []) for i in range(n)]
        self.omics = None
        self.omics_sets = {k: torch.from_numpy(rng.standard_normal((n, d)).astype(np.float32))
                           for k, d in gene_dims.items()}
        labels = {"grade": rng.integers(0, 3, n), "diagnosis": rng.integers(0, 4, n)}
        self.targets = Targets(time_days=rng.uniform(30, 3000, n), event=(rng.random(n) < 0.6).astype(float),
                               label=labels["grade"], labels=labels)
        self.max_patches = None
        self.inference_batch_patches = None  # predict: batch_size slides per batch
        self.tokens = tokens
        self.grid = grid

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        pass

    def inference_view(self) -> SyntheticFold:
        return self

    def bag_size(self, i: int) -> int:
        return self.tokens

    def __getitem__(self, i: int) -> PatientSample:
        return PatientSample(
            patient_id=self.patient_ids[i], wsi=self.bank[i % len(self.bank)].clone(), omics=None,
            time_days=float(self.targets.time_days[i]), event=float(self.targets.event[i]),
            label=int(self.targets.label[i]), wsi_pos=self.pos,
            omics_sets={k: v[i] for k, v in self.omics_sets.items()},
            labels={k: int(v[i]) for k, v in self.targets.labels.items()})


def _machine(device: torch.device) -> dict[str, Any]:
    cpu = platform.processor()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), cpu)
    except OSError:
        pass
    info = {"nproc": os.cpu_count(), "cpu": cpu, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "device": str(device), "load_average": os.getloadavg()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device, key="--device")
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(0, device)
    gene_dims = {"tumour": 59, "microenvironment": 361}
    train = SyntheticFold(args.n_train, tokens=args.tokens, dim=args.feature_dim, gene_dims=gene_dims,
                          bank=args.bank, seed=1, grid=args.grid_size)
    val = SyntheticFold(args.n_val, tokens=args.tokens, dim=args.feature_dim, gene_dims=gene_dims,
                        bank=min(args.bank, 8), seed=2, grid=args.grid_size)
    optim = OptimConfig(epochs=1, batch_size=args.batch_size, lr=2e-4, weight_decay=1e-2, patience=1,
                        device=str(device), optimizer="adam", amp=not args.no_amp, amp_dtype="bf16")
    specs = {t: get_task(t, diagnosis_classes=4 if t == "diagnosis" else 3) for t in TASKS}
    objectives = {t: build_objective(specs[t], train_time_days=train.targets.time_days,
                                     train_labels=train.targets.labels.get(t), survival_loss=args.survival_loss)
                  for t in TASKS}
    model = create_model(args.model, input_dims={"wsi": args.feature_dim, "omics": 1,
                                                 **{f"omics:{k}": d for k, d in gene_dims.items()}},
                         tasks=TASKS, grid_size=args.grid_size, token_map=args.token_map)
    heads = torch.nn.ModuleDict({t: o.build_head(model.embed_dim) for t, o in objectives.items()})
    model.to(device)
    heads.to(device)
    params = [p for p in [*model.parameters(), *heads.parameters()] if p.requires_grad]
    optimizer = make_optimizer(params, optim)
    policies = build_policies(model)
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, collate_fn=collate_bags,
                                         generator=torch.Generator().manual_seed(0))
    steps_per_epoch = math.ceil(args.n_train / args.batch_size)
    n_steps = max(2, math.ceil(args.fraction * steps_per_epoch) + 1)  # + 1 warm-up step
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times, data_times = [], []
    model.train()
    heads.train()
    it = iter(loader)
    for step in range(n_steps):
        t0 = time.perf_counter()
        batch = next(it).to(device)
        sync()
        t1 = time.perf_counter()
        with autocast(device, optim):
            out = model(batch)
            outputs = {t: heads[t](out.embedding) for t in TASKS}
        loss = sum(objectives[t].loss(outputs[t].float(), batch) for t in TASKS)
        loss = loss + sum(a.float() for a in out.aux_losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ctx = StepContext(epoch=1, step=step, batch=batch, output=out, heads=heads, objectives=objectives)
        for policy in policies:
            policy.after_backward(model, step, ctx)
        optimizer.step()
        sync()
        t2 = time.perf_counter()
        times.append(t2 - t0)
        data_times.append(t1 - t0)
        print(f"step {step}: {t2 - t0:.2f} s (data {t1 - t0:.2f} s)", flush=True)
    step_s = float(np.mean(times[1:]))
    n_val = max(1, math.ceil(args.fraction * args.n_val))
    val_sub = SyntheticFold(n_val, tokens=args.tokens, dim=args.feature_dim, gene_dims=gene_dims,
                            bank=min(args.bank, 8), seed=2, grid=args.grid_size)
    t0 = time.perf_counter()
    predict(model, heads, val_sub, batch_size=args.batch_size, device=device, optim=optim)  # type: ignore[arg-type]
    sync()
    val_s = (time.perf_counter() - t0) / n_val * args.n_val
    del val
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    result = {
        "benchmark": "training (issue 04)", "model": args.model, "token_map": args.token_map,
        "grid_size": args.grid_size, "tasks": list(TASKS), "survival_loss": args.survival_loss,
        "n_train": args.n_train, "n_val": args.n_val, "tokens": args.tokens, "feature_dim": args.feature_dim,
        "batch_size": args.batch_size, "amp": device.type == "cuda" and not args.no_amp,
        "parameters": sum(p.numel() for p in params), "fraction": args.fraction, "timed_steps": len(times) - 1,
        "warmup_step_s": round(times[0], 2), "step_s": round(step_s, 3),
        "data_s_per_step": round(float(np.mean(data_times[1:])), 3),
        "train_s_per_epoch": round(step_s * steps_per_epoch, 1), "val_s_per_epoch": round(val_s, 1),
        "s_per_epoch": round(step_s * steps_per_epoch + val_s, 1),
        "extrapolated": args.fraction < 1.0, "peak_memory_gib": round(peak / 1024**3, 2),
        "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process max RSS",
        "machine": _machine(device),
    }
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:k]")
    p.add_argument("--fraction", type=float, default=1.0, help="fraction of the epoch's batches to run (extrapolated)")
    p.add_argument("--model", default="subspace_fusion")
    p.add_argument("--token-map", default="coords", choices=["coords", "raster"])
    p.add_argument("--grid-size", type=int, default=50)
    p.add_argument("--n-train", type=int, default=1500)
    p.add_argument("--n-val", type=int, default=190)
    p.add_argument("--tokens", type=int, default=2500)
    p.add_argument("--feature-dim", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--bank", type=int, default=32, help="distinct random bags cycled through")
    p.add_argument("--survival-loss", default="nll", choices=["cox", "nll"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA (default: bf16 autocast)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = p.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
