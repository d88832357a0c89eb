"""Per-slide parameter overrides (``wsi.overrides_csv``) and the effective config of one slide.

The CSV has a ``slide_id`` column plus any :class:`~gliofuse.config.WsiConfig` parameter (except
``overrides_csv``) and ``mpp`` (µm per level-0 px, replaces the slide's metadata). An empty cell keeps
the config value. A ``preset`` cell re-applies that preset to the segmentation parameters the row
does not set itself. This module imports no slide library (the Snakefile reads it at parse time).
"""

from __future__ import annotations

import difflib
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from gliofuse.config import WsiConfig
from gliofuse.errors import ConfigError

MPP_COLUMN = "mpp"
#: parameters a row may override
OVERRIDABLE: tuple[str, ...] = tuple(n for n in WsiConfig.model_fields if n != "overrides_csv")


def _cell(value: Any) -> Any:
    """CSV cell → Python value (None when empty); integral floats become ints."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        v = value.strip()
        if v == "":
            return None
        for cast in (int, float):
            try:
                return cast(v)
            except ValueError:
                pass
        return v
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value.item() if hasattr(value, "item") else value


def read_overrides(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Read and validate an overrides CSV → ``{slide_id: {parameter: value}}`` (empty cells left out).

    Raises
    ------
    ConfigError : missing file, no ``slide_id`` column, unknown column (with close matches), empty or
        duplicated slide id, or a value that is invalid for its parameter (naming slide, column and value).
    """
    p = Path(path)
    key = f"wsi.overrides_csv = {str(p)!r}"
    if not p.is_file():
        raise ConfigError(f"{key}: file not found. Give a CSV with a slide_id column and one column per "
                          f"overridden parameter, or set wsi.overrides_csv to null.")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key} is not a readable CSV ({exc}).") from None
    df.columns = [str(c).strip() for c in df.columns]
    if "slide_id" not in df.columns:
        raise ConfigError(f"{key} has no 'slide_id' column (columns: {list(df.columns)}).")
    allowed = (*OVERRIDABLE, MPP_COLUMN)
    for col in df.columns:
        if col != "slide_id" and col not in allowed:
            close = difflib.get_close_matches(col, allowed, n=3)
            raise ConfigError(f"{key}: unknown column {col!r}; did you mean {close or 'one of'} "
                              f"{'' if close else list(allowed)}? Columns are slide_id plus wsi parameters and 'mpp'.")
    out: dict[str, dict[str, Any]] = {}
    for i, row in df.iterrows():
        sid = str(row["slide_id"]).strip()
        line = int(str(i)) + 2
        if not sid:
            raise ConfigError(f"{key}: line {line} has an empty slide_id.")
        if sid in out:
            raise ConfigError(f"{key}: slide_id {sid!r} appears twice (line {line}); give one row per slide.")
        values = {c: _cell(row[c]) for c in df.columns if c != "slide_id"}
        values = {c: v for c, v in values.items() if v is not None}
        out[sid] = values
        _validate_row(sid, values, key)
    return out


def _validate_row(slide_id: str, values: dict[str, Any], key: str) -> None:
    mpp = values.get(MPP_COLUMN)
    if mpp is not None and (not isinstance(mpp, int | float) or not math.isfinite(mpp) or mpp <= 0):
        raise ConfigError(f"{key}: slide {slide_id!r}, column 'mpp' = {mpp!r}: must be a positive number "
                          "(um per level-0 pixel).")
    params = {k: v for k, v in values.items() if k != MPP_COLUMN}
    try:
        WsiConfig.model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        col = str(err["loc"][0]) if err["loc"] else "?"
        raise ConfigError(f"{key}: slide {slide_id!r}, column {col!r} = {params.get(col)!r}: {err['msg']}.") from None


def slide_config(cfg: WsiConfig, slide_id: str, overrides: dict[str, dict[str, Any]] | None
                 ) -> tuple[WsiConfig, float | None, list[str]]:
    """Effective parameters of one slide.

    Returns
    -------
    (config, mpp override or None, names of the overridden columns). A ``preset`` cell resets the
    segmentation parameters the row leaves empty to that preset's values.
    """
    row = dict((overrides or {}).get(slide_id, {}))
    if not row:
        return cfg, None, []
    mpp = row.pop(MPP_COLUMN, None)
    base = cfg.model_dump()
    if "preset" in row:
        for name in WsiConfig.BUILTIN:
            base[name] = None
    base.update(row)
    return WsiConfig.model_validate(base), (float(mpp) if mpp is not None else None), sorted(
        [*row, *([MPP_COLUMN] if mpp is not None else [])])


def check_override_slides(overrides: dict[str, dict[str, Any]], slide_ids: list[str], *, path: str) -> None:
    """Raise ``ConfigError`` naming each override row whose slide is not in ``slide_ids`` (with close matches)."""
    known = set(slide_ids)
    unknown = [s for s in overrides if s not in known]
    if unknown:
        hints = {s: difflib.get_close_matches(s, slide_ids, n=1) for s in unknown[:5]}
        raise ConfigError(f"wsi.overrides_csv = {path!r}: slide_id(s) not in the cohort: "
                          + ", ".join(f"{s!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for s, h in hints.items())
                          + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
                          + ". Slide ids are slide file names without .svs.")
