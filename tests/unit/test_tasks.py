"""gliofuse.tasks: the one task vocabulary."""

from __future__ import annotations

import pytest

from gliofuse.errors import ConfigError
from gliofuse.tasks import TASK_NAMES, TASK_SPECS, get_task, task_kind


def test_every_task_has_a_spec_and_kind() -> None:
    assert tuple(TASK_SPECS) == TASK_NAMES
    assert [task_kind(t) for t in TASK_NAMES] == ["survival", "classification", "classification"]
    assert get_task("diagnosis", diagnosis_classes=4).n_classes == 4


def test_unknown_task_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'stage'"):
        task_kind("stage")
