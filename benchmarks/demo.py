"""Benchmark `make demo`: wall time and peak memory of the full demo pipeline on this machine.

Runs the workflow on the default config.yaml in a fresh working directory (nothing reused),
then builds the report, and prints a JSON record plus a per-rule time table from Snakemake's
`benchmark:` files. Usage (from the repository root, after `make venv`):

    .venv/bin/python benchmarks/demo.py --workdir /tmp/gliofuse-demo-bench [--cores 2] [--out result.json]

Peak memory is the largest resident set of any single process (GNU time's "Maximum resident set
size" of the Snakemake process tree's biggest member) and, separately, the maximum over every
job's `max_rss` from the rule benchmark files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_timed(cmd: list[str], cwd: Path, log: Path) -> tuple[float, float]:
    """Run ``cmd`` under GNU time; return (wall seconds, max RSS in MiB)."""
    timed = ["/usr/bin/time", "-v", *cmd]
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(timed, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=os.environ.copy(), check=False)
    wall = time.perf_counter() - t0
    text = log.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed; see {log}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return wall, (int(m.group(1)) / 1024 if m else float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--cores", default="all")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    bindir = Path(sys.executable).parent
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ['PATH']}"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = args.workdir
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copy(REPO / "config.yaml", work / "config.yaml")
    snake = [str(bindir / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(work),
             "--workflow-profile", str(REPO / "workflow" / "profiles" / "default")]
    wall_run, rss_run = run_timed([*snake, "--cores", str(args.cores)], work, work / "run.log")
    wall_rep, rss_rep = run_timed([*snake, "--cores", "1", "--report", "results/report.html"], work, work / "report.log")
    rows = []
    for tsv in (work / "results" / "benchmarks").rglob("*.tsv"):
        b = pd.read_csv(tsv, sep="\t")
        rule = tsv.relative_to(work / "results" / "benchmarks").parts[0]
        rows.append({"rule": rule, "s": float(b["s"].iloc[-1]), "max_rss": float(b["max_rss"].iloc[-1])})
    per_rule = pd.DataFrame(rows).groupby("rule").agg(jobs=("s", "size"), total_s=("s", "sum"),
                                                      mean_s=("s", "mean"), max_rss_mib=("max_rss", "max"))
    record = {
        "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "python": platform.python_version()},
        "cores": args.cores,
        "workflow_wall_s": round(wall_run, 1),
        "report_wall_s": round(wall_rep, 1),
        "total_wall_s": round(wall_run + wall_rep, 1),
        "peak_rss_mib_snakemake_process": round(max(rss_run, rss_rep), 1),
        "peak_rss_mib_any_job": round(float(per_rule["max_rss_mib"].max()), 1),
        "per_rule": per_rule.round(2).reset_index().to_dict(orient="records"),
    }
    print(per_rule.round(2).to_string())
    print(json.dumps({k: v for k, v in record.items() if k != "per_rule"}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
