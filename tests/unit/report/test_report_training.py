"""Training curves and gradient-coordination dynamics from fold folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliofuse.errors import InputDataError
from gliofuse.report.training import fold_of, gc_summary, plot_gc_dynamics_, plot_training_, read_histories_


def _folds(root: Path, *, n_folds: int = 2, gc: str = "rows") -> list[Path]:
    """history.tsv (+ gc_dynamics.tsv: 'rows', 'header' only, or 'none') in results-like fold folders."""
    rng = np.random.default_rng(0)
    paths = []
    for k in range(n_folds):
        d = root / "subspace_fusion" / "survival" / f"fold_{k}"
        d.mkdir(parents=True)
        ep = np.arange(1, 7)
        pd.DataFrame({"epoch": ep, "train_loss": 2 - 0.1 * ep, "val_loss": 2.1 - 0.05 * ep + 0.1 * rng.random(6),
                      "lr": 1e-3 / ep}).to_csv(d / "history.tsv", sep="\t", index=False)
        if gc == "rows":
            rows = [{"epoch": e, "step": 3 * (e - 1) + s, "task": "survival", "row": r, "mode": "literal",
                     "ratio": rng.lognormal(), "cos": rng.uniform(-1, 1), "conflict": bool(rng.random() < 0.5),
                     "weaker": "T"} for e in ep for s in range(3) for r in range(2)]
            pd.DataFrame(rows).to_csv(d / "gc_dynamics.tsv", sep="\t", index=False)
        elif gc == "header":
            (d / "gc_dynamics.tsv").write_text("epoch\tstep\ttask\trow\tratio\tcos\tconflict\n")
        paths.append(d / "history.tsv")
    return paths


def test_training_curves(tmp_path: Path) -> None:
    paths = _folds(tmp_path)
    hist = read_histories_(paths)
    assert sorted(hist["fold"].unique()) == [0, 1] and fold_of(paths[1]) == 1
    out = tmp_path / "fig" / "survival_training.png"
    plot_training_(history_paths=paths, out_png=out)
    assert out.stat().st_size > 5000 and out.with_suffix(".svg").exists()
    bad = tmp_path / "bad" / "fold_0" / "history.tsv"
    bad.parent.mkdir(parents=True)
    pd.DataFrame({"epoch": [1], "lr": [0.1]}).to_csv(bad, sep="\t", index=False)
    with pytest.raises(InputDataError, match="neither 'train_loss' nor 'val_loss'"):
        plot_training_(history_paths=[bad], out_png=tmp_path / "x.png")


def test_gc_dynamics_present(tmp_path: Path) -> None:
    paths = _folds(tmp_path)
    written = plot_gc_dynamics_(history_paths=paths, out_dir=tmp_path / "gc")
    assert [p.name for p in written] == ["gc_dynamics.png", "gc_dynamics.svg"]
    assert written[0].stat().st_size > 5000
    df = pd.concat([pd.read_csv(p.parent / "gc_dynamics.tsv", sep="\t").assign(fold=k) for k, p in enumerate(paths)])
    table, x, values = gc_summary(df)
    assert x == "epoch" and values == ["ratio", "cos", "conflict"]  # identifiers and text columns left out
    assert len(table) == 2 * 6
    f0e1 = df[(df["fold"] == 0) & (df["epoch"] == 1)]
    assert table.iloc[0]["cos"] == pytest.approx(f0e1["cos"].mean())
    assert table.iloc[0]["conflict"] == pytest.approx(f0e1["conflict"].mean())


@pytest.mark.parametrize("gc", ["none", "header"])
def test_gc_dynamics_absent_leaves_folder_empty(tmp_path: Path, gc: str) -> None:
    paths = _folds(tmp_path, gc=gc)
    out = tmp_path / "gc"
    out.mkdir()
    (out / "gc_dynamics.png").write_bytes(b"stale")
    assert plot_gc_dynamics_(history_paths=paths, out_dir=out) == []
    assert list(out.iterdir()) == []
