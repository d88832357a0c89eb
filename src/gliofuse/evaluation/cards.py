"""Model cards from the training provenance, for the comparisons and the report (no torch, no model registry).

Training records each model's card in the provenance sidecar of every fold's ``predictions.tsv``
(``predictions.tsv.prov.json``): ``extra.model`` is the model name and ``extra.card`` its registry card
(``ModelCard.to_dict()``) with the resolved ``params``. The cards JSON (contract §9, ``model_cards.json``)
maps each model name to that card.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gliofuse.errors import InputDataError
from gliofuse.io import read_json_, sidecar_path, write_text_atomic_

logger = logging.getLogger(__name__)


def read_training_cards_(prediction_paths: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """``{model: card}`` from the provenance sidecars of fold prediction tables (a model's first table wins).

    Raises
    ------
    InputDataError
        A table has no sidecar, or its sidecar lacks ``extra.model`` or ``extra.card``.
    """
    cards: dict[str, dict[str, Any]] = {}
    for path in prediction_paths:
        side = sidecar_path(path)
        if not side.exists():
            raise InputDataError(f"prediction table {path} has no provenance sidecar {side.name}: its model card is "
                                 "unknown. Rerun the training of that fold (snakemake --forcerun train_fold; "
                                 "train_folds with training.folds_per_job: all).")
        extra = read_json_(side, what="provenance sidecar").get("extra") or {}
        model, card = extra.get("model"), extra.get("card")
        if not isinstance(model, str) or not isinstance(card, dict):
            raise InputDataError(f"provenance sidecar {side} lacks extra.model or extra.card (written by an older "
                                 "training). Rerun the training of that fold (snakemake --forcerun train_fold; "
                                 "train_folds with training.folds_per_job: all).")
        cards.setdefault(model, card)
    return cards


def write_model_cards_(*, models: Sequence[str], prediction_paths: Sequence[Path],
                       out: Path) -> dict[str, dict[str, Any]]:
    """Write the cards of ``models`` as JSON (``model_cards.json``), read from the prediction sidecars.

    Raises
    ------
    InputDataError
        A sidecar is missing or incomplete (:func:`read_training_cards_`), or no given table is of one of
        ``models``.
    """
    found = read_training_cards_(prediction_paths)
    missing = [m for m in models if m not in found]
    if missing:
        raise InputDataError(f"none of the {len(prediction_paths)} prediction table(s) given is of model(s) "
                             f"{missing}: pass one fold predictions.tsv of each model (--predictions).")
    cards = {m: found[m] for m in models}
    write_text_atomic_(out, cards_json(cards))
    logger.info("model cards of %d model(s) -> %s", len(cards), out)
    return cards


def read_cards_(path: Path | None) -> dict[str, dict[str, Any]]:
    """Model cards ``{name: card dict}`` from a cards JSON (``model_cards.json``); none given: ``{}``."""
    if path is None:
        return {}
    raw = read_json_(path, what="model cards file")
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise InputDataError(f"model cards file {path} must map model names to card objects.")
    return raw


def cards_json(cards: Mapping[str, Mapping[str, Any]]) -> str:
    """Canonical JSON text of a model cards mapping (sorted keys, trailing newline)."""
    return json.dumps({k: dict(v) for k, v in sorted(cards.items())}, indent=2, sort_keys=True, default=str) + "\n"
