"""CPU time of training one model x task as one process per fold (`gliofuse train fold`, folds_per_job: one)
versus one process for all folds (`gliofuse train folds`, folds_per_job: all), on a finished workflow's inputs.

    python benchmarks/fold_jobs.py --results results --job snn/survival --job subspace_fusion/survival

CPU-s are user + system time of the child processes (getrusage), which a loaded machine inflates less than wall
time. Each variant writes to its own temporary folder; the script checks that both give byte-identical
predictions.tsv per fold, and, where the workflow has trained the job, that they equal results/training/'s.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def _cpu_of(cmd: list[str]) -> float:
    """User + system CPU seconds of one command (run to completion; fails loudly)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:8])} ... failed:\n{proc.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(results: Path, model: str, task: str, work: Path) -> dict[str, float]:
    """CPU-s of the per-fold and the per-task variant of one model x task, with the identity checks."""
    splits = sorted((results / "splits").glob("fold_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    features = sorted(str(p) for p in (results / "features").glob("*/*.h5"))
    base = [sys.executable, "-m", "gliofuse", "train", "{verb}", "--config", str(results / "config" / "training.yaml"),
            "--model", model, "--task", task, "--labels", str(results / "labels" / "labels.tsv"),
            "--omics", str(results / "omics" / "expression.h5"), "--features", *features, "--threads", "1"]
    per_fold = sum(_cpu_of([*(a.format(verb="fold") for a in base), "--split", str(s), "--out-dir",
                            str(work / "one" / s.stem)]) for s in splits)
    per_task = _cpu_of([*(a.format(verb="folds") for a in base), "--splits", *map(str, splits), "--out-dirs",
                        *(str(work / "all" / s.stem) for s in splits)])
    for s in splits:
        one = (work / "one" / s.stem / "predictions.tsv").read_bytes()
        assert one == (work / "all" / s.stem / "predictions.tsv").read_bytes(), f"{model}/{task} {s.stem} differs"
        trained = results / "training" / model / task / s.stem / "predictions.tsv"
        assert not trained.exists() or trained.read_bytes() == one, f"{trained} differs"
    return {"folds": len(splits), "per_fold_cpu_s": per_fold, "per_task_cpu_s": per_task}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="a finished workflow's results/")
    parser.add_argument("--job", action="append", required=True, help="model/task, e.g. snn/survival (repeatable)")
    args = parser.parse_args()
    print("job\tfolds\tper_fold_cpu_s\tper_task_cpu_s\tsaved_cpu_s")
    for job in args.job:
        model, task = job.split("/")
        with tempfile.TemporaryDirectory() as tmp:
            r = measure(args.results, model, task, Path(tmp))
        print(f"{job}\t{r['folds']}\t{r['per_fold_cpu_s']:.1f}\t{r['per_task_cpu_s']:.1f}\t"
              f"{r['per_fold_cpu_s'] - r['per_task_cpu_s']:.1f}", flush=True)


if __name__ == "__main__":
    main()
