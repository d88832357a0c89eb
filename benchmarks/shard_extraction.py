"""The demo's feature extraction as one process per slide vs one per shard: jobs, CPU seconds and wall seconds.

Runs ``gliofuse features extract`` over the slides of a finished demo run (its ``results/demo/slides``,
``results/wsi/coords`` and ``results/config/features.yaml``) into a scratch folder, one command after another,
with ``--threads 1`` as the demo rule does, and times the commands with the children's ``getrusage``
(CPU seconds are the measure on a shared machine). Prints one JSON line per run.

    python benchmarks/shard_extraction.py --results results --out /tmp/shards --mode slide --decoder openslide
    python benchmarks/shard_extraction.py --results results --out /tmp/shards --mode 16 --decoder auto
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import time
from pathlib import Path

import yaml


def _args(results: Path, out: Path, ids: list[str]) -> list[str]:
    return ["--slide", *[str(results / f"demo/slides/{s}.svs") for s in ids],
            "--coords", *[str(results / f"wsi/coords/{s}.h5") for s in ids],
            "--out", *[str(out / f"{s}.h5") for s in ids],
            "--out-status", *[str(out / f"status/{s}.json") for s in ids]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results"), help="results folder of a finished demo run")
    ap.add_argument("--out", type=Path, required=True, help="scratch folder (a sub-folder per mode and decoder)")
    ap.add_argument("--mode", default="slide", help="'slide' (one process per slide) or a shard size")
    ap.add_argument("--decoder", default="auto", choices=("auto", "openslide", "raw"))
    a = ap.parse_args()
    slides = sorted(p.stem for p in (a.results / "demo/slides").glob("*.svs"))
    out = a.out / f"{a.mode}_{a.decoder}"
    out.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load((a.results / "config/features.yaml").read_text())
    cfg["features"]["decoder"] = a.decoder
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    if a.mode == "slide":
        cmds = [_args(a.results, out, [s]) for s in slides]
    else:
        k = int(a.mode)
        cmds = [_args(a.results, out, slides[i:i + k]) + ["--out-shard", str(out / f"shard_{i // k:04d}.tsv")]
                for i in range(0, len(slides), k)]
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    with open(out / "log.txt", "a") as log:
        for c in cmds:
            subprocess.run(["gliofuse", "features", "extract", "--config", str(out / "config.yaml"), "--threads", "1",
                            *c], check=True, stdout=subprocess.DEVNULL, stderr=log)
    r1, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - t0
    status = [json.loads((out / f"status/{s}.json").read_text()) for s in slides]
    print(json.dumps({
        "mode": a.mode, "decoder": a.decoder, "jobs": len(cmds), "wall_s": round(wall, 1),
        "cpu_s": round(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, 1),
        "status": {k: sum(x["status"] == k for x in status) for k in ("ok", "skipped", "failed")},
        "decoders": {d: sum(x["decoder"] == d for x in status) for d in ("raw", "openslide")},
        "patches": sum(x["n_patches"] for x in status)}))


if __name__ == "__main__":
    main()
