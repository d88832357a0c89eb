"""Overall survival from GDC ``/cases`` records (time in days, event True = death observed)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from gliofuse.errors import InputDataError

log = logging.getLogger(__name__)


def _num(x: Any) -> float | None:
    if x is None or x == "" or x == "NA":
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def survival_from_case(case: Mapping[str, Any]) -> dict[str, Any]:
    """Survival of one GDC case record.

    ``event`` = vital_status == "Dead"; ``time_days`` = days_to_death if dead, else the maximum of
    every ``diagnoses[].days_to_last_follow_up`` and ``follow_ups[].days_to_follow_up``
    (GDC often leaves the diagnosis-level field empty). Missing values give ``None``.
    """
    demo = case.get("demographic") or {}
    diagnoses = case.get("diagnoses") or []
    follow_ups = case.get("follow_ups") or []
    vital = (demo.get("vital_status") or "").strip().lower()
    age_days = next((_num(d.get("age_at_diagnosis")) for d in diagnoses if _num(d.get("age_at_diagnosis")) is not None), None)
    sex = demo.get("sex_at_birth") or demo.get("gender")
    out: dict[str, Any] = {
        "patient_id": case.get("submitter_id"),
        "project": (case.get("project") or {}).get("project_id"),
        "age_years": None if age_days is None else age_days / 365.25,
        "sex": sex.lower() if isinstance(sex, str) and sex.lower() in ("female", "male") else None,
        "time_days": None,
        "event": None,
    }
    if vital == "dead":
        out["event"] = 1
        out["time_days"] = _num(demo.get("days_to_death"))
    elif vital == "alive":
        out["event"] = 0
        fus = [_num(d.get("days_to_last_follow_up")) for d in diagnoses]
        fus += [_num(f.get("days_to_follow_up")) for f in follow_ups]
        fus = [f for f in fus if f is not None]
        out["time_days"] = max(fus) if fus else None
    if out["time_days"] is not None and out["time_days"] <= 0:
        out["time_days"] = None  # a non-positive time carries no survival information
    return out


def survival_table(cases: Iterable[Mapping[str, Any]], *, source: str) -> pd.DataFrame:
    """One row per case: patient_id, project, time_days, event, age_years, sex.

    Raises InputDataError when a record has no ``submitter_id``.
    """
    rows = []
    for i, case in enumerate(cases):
        if not case.get("submitter_id"):
            raise InputDataError(f"{source}: hit {i} has no 'submitter_id'; request it in the GDC /cases fields.")
        rows.append(survival_from_case(case))
    df = pd.DataFrame(rows, columns=["patient_id", "project", "time_days", "event", "age_years", "sex"])
    n_missing = int(df["time_days"].isna().sum())
    if n_missing:
        log.warning("%d of %d cases in %s have no usable survival time", n_missing, len(df), source)
    return df.drop_duplicates("patient_id")


def cases_from_envelope(payload: Any, *, source: str) -> list[dict[str, Any]]:
    """The hits of a GDC ``/cases`` JSON envelope (``{"data": {"hits": [...]}}``) or a plain list of hits."""
    if isinstance(payload, list):
        return payload
    try:
        hits = payload["data"]["hits"]
    except (KeyError, TypeError):
        raise InputDataError(
            f"{source} is not a GDC /cases response: expected {{'data': {{'hits': [...]}}}} or a list of hits."
        ) from None
    if not isinstance(hits, list):
        raise InputDataError(f"{source}: data.hits must be a list, got {type(hits).__name__}.")
    return hits
