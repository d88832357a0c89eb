"""Model cards read from the training provenance sidecars, without torch or the model registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gliofuse.errors import InputDataError
from gliofuse.evaluation.cards import read_cards_, read_training_cards_, write_model_cards_


def _fold_predictions(root: Path, model: str, extra: dict | None) -> Path:
    pred = root / "training" / model / "survival" / "fold_0" / "predictions.tsv"
    pred.parent.mkdir(parents=True)
    pred.write_text("patient_id\n")
    if extra is not None:
        (pred.parent / "predictions.tsv.prov.json").write_text(json.dumps({"extra": extra}))
    return pred


def test_model_cards_from_sidecars_without_torch(tmp_path: Path) -> None:
    card = {"name": "my_model", "ablation_of": "other", "family": "x", "params": {"dim": 4}}
    pred = _fold_predictions(tmp_path, "my_model", {"model": "my_model", "card": card})
    other = _fold_predictions(tmp_path, "other", {"model": "other", "card": {"name": "other"}})
    code = ("import sys; from pathlib import Path; from gliofuse.evaluation.cards import write_model_cards_; "
            f"write_model_cards_(models=['my_model'], prediction_paths=[Path({str(other)!r}), Path({str(pred)!r})], "
            f"out=Path({str(tmp_path)!r}) / 'cards.json'); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert read_cards_(tmp_path / "cards.json") == {"my_model": card}


def test_model_cards_name_a_missing_card_or_model(tmp_path: Path) -> None:
    no_card = _fold_predictions(tmp_path, "old", {"model": "old"})
    with pytest.raises(InputDataError, match="lacks extra.model or extra.card"):
        read_training_cards_([no_card])
    no_sidecar = _fold_predictions(tmp_path, "bare", None)
    with pytest.raises(InputDataError, match="has no provenance sidecar"):
        read_training_cards_([no_sidecar])
    pred = _fold_predictions(tmp_path, "a", {"model": "a", "card": {"name": "a"}})
    with pytest.raises(InputDataError, match=r"model\(s\) \['b'\]"):
        write_model_cards_(models=["a", "b"], prediction_paths=[pred], out=tmp_path / "cards.json")
