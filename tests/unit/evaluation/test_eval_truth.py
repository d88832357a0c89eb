"""C-index against a simulated cohort's true risk (the demo's ground truth)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliofuse.errors import InputDataError
from gliofuse.evaluation.compare import compare_models_
from gliofuse.evaluation.truth import TRUE_RISK_COLUMN, read_true_risk_, true_risk_concordance

N = 80


def test_true_risk_concordance_orders_pairs() -> None:
    true = np.array([0.1, 0.5, 0.9, 1.3])
    assert true_risk_concordance(true * 3 + 1, true) == 1.0  # any increasing map is perfect
    assert true_risk_concordance(-true, true) == 0.0
    # one swapped pair of six: 5/6
    assert true_risk_concordance(np.array([0.1, 0.9, 0.5, 1.3]), true) == pytest.approx(5 / 6)
    # a tied prediction counts 1/2 (one pair of six)
    assert true_risk_concordance(np.array([0.1, 0.5, 0.5, 1.3]), true) == pytest.approx(5.5 / 6)
    # equal true risks are not comparable: only the (0, 1) pair counts here
    assert true_risk_concordance(np.array([0.0, 1.0, 5.0]), np.array([0.0, 2.0, 2.0])) == 1.0
    assert np.isnan(true_risk_concordance(np.array([0.0, 1.0]), np.array([2.0, 2.0])))
    with pytest.raises(InputDataError, match="3 predicted risks but 2 true risks"):
        true_risk_concordance(np.zeros(3), np.zeros(2))


def _write_oofs(tmp_path: Path) -> tuple[list[Path], pd.DataFrame]:
    rng = np.random.default_rng(0)
    pids = [f"TCGA-02-{i:04d}" for i in range(N)]
    true = rng.standard_normal(N)
    time = np.exp(-true + rng.standard_normal(N)) * 300 + 1  # noisy labels
    event = (rng.random(N) < 0.7).astype(int)
    paths = []
    for model, noise in (("full", 0.2), ("abl", 3.0)):
        df = pd.DataFrame({"patient_id": pids, "model": model, "task": "survival", "fold": np.arange(N) % 4,
                           "split": "test", "time_days": time, "event": event,
                           "risk": true + noise * rng.standard_normal(N)})
        paths.append(tmp_path / f"{model}.tsv")
        df.to_csv(paths[-1], sep="\t", index=False)
    y = rng.integers(0, 3, N)
    cls = pd.DataFrame({"patient_id": pids, "model": "full", "task": "grade", "fold": np.arange(N) % 4,
                        "split": "test", "y_true": y, "y_pred": y})
    for k, c in enumerate(("G2", "G3", "G4")):
        cls[f"prob_{c}"] = (y == k).astype(float) * 0.8 + 0.2 / 3
    paths.append(tmp_path / "full_grade.tsv")
    cls.to_csv(paths[-1], sep="\t", index=False)
    truth = pd.DataFrame({"patient_id": pids, "z_tumour": 0.0, "true_risk": true})
    return paths, truth


def test_compare_adds_true_risk_column_only_with_truth(tmp_path: Path) -> None:
    paths, truth = _write_oofs(tmp_path)
    truth_path = tmp_path / "ground_truth.tsv"
    truth.iloc[2:].to_csv(truth_path, sep="\t", index=False)  # two patients without a true risk are left out
    cards = tmp_path / "cards.json"
    cards.write_text(json.dumps({"full": {}, "abl": {"ablation_of": "full"}}))
    kw = {"oof_paths": paths, "reference": "full", "cards_path": cards, "n_bootstrap": 20, "seed": 0}
    compare_models_(**kw, out_comparisons=tmp_path / "c.tsv", out_ablation=tmp_path / "a.tsv", truth_path=truth_path)
    comp = pd.read_csv(tmp_path / "c.tsv", sep="\t").set_index(["task", "metric", "model"])
    full = comp.loc[("survival", "c_index", "full"), TRUE_RISK_COLUMN]
    abl = comp.loc[("survival", "c_index", "abl"), TRUE_RISK_COLUMN]
    # the near-noise-free model ranks the true risk far better than its observed C-index against noisy times
    assert full > 0.85 and abl < 0.75 and full > comp.loc[("survival", "c_index", "full"), "value"]
    assert comp.xs("grade")[TRUE_RISK_COLUMN].isna().all()  # classification rows: no true risk
    ablation = pd.read_csv(tmp_path / "a.tsv", sep="\t")
    assert ablation[TRUE_RISK_COLUMN].tolist() == [pytest.approx(abl)]
    # a real cohort: no ground truth, no column (not an error)
    compare_models_(**kw, out_comparisons=tmp_path / "c2.tsv", out_ablation=tmp_path / "a2.tsv")
    assert TRUE_RISK_COLUMN not in pd.read_csv(tmp_path / "c2.tsv", sep="\t").columns
    # the CLI: `--truth` with no file (a real cohort in the workflow) and with the file
    cfg = tmp_path / "config.yaml"
    cfg.write_text("evaluation:\n  n_bootstrap: 5\n")
    base = [sys.executable, "-m", "gliofuse", "evaluate", "compare", "--config", str(cfg), "--oof", *map(str, paths),
            "--reference", "full", "--out-comparisons", str(tmp_path / "c3.tsv"), "--out-ablation",
            str(tmp_path / "a3.tsv")]
    for truth_args, present in (([], False), ([str(truth_path)], True)):
        proc = subprocess.run([*base, "--truth", *truth_args], check=False, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert (TRUE_RISK_COLUMN in pd.read_csv(tmp_path / "c3.tsv", sep="\t").columns) is present


def test_read_true_risk_errors(tmp_path: Path) -> None:
    p = tmp_path / "ground_truth.tsv"
    p.write_text("patient_id\tz_tumour\nP1\t0.1\n")
    with pytest.raises(InputDataError, match="true_risk"):
        read_true_risk_(p)
    p.write_text("patient_id\ttrue_risk\nP1\t0.1\nP1\t0.2\n")
    with pytest.raises(InputDataError, match=r"duplicate patient\(s\) \['P1'\]"):
        read_true_risk_(p)
    p.write_text("patient_id\ttrue_risk\nP1\t0.1\nP2\t\n")
    with pytest.raises(InputDataError, match=r"not a finite number for patient\(s\) \['P2'\]"):
        read_true_risk_(p)
    p.write_text("patient_id\ttrue_risk\n007\t0.1\nP2\t-1\n")
    assert read_true_risk_(p).to_dict() == {"007": 0.1, "P2": -1.0}
