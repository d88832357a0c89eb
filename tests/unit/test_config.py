"""gliofuse.config: parsing, named errors, per-stage snapshots, the task enum."""

import pytest
import yaml

from gliofuse.config import GliofuseConfig, Task, load_config, parse_config, section_snapshot
from gliofuse.errors import ConfigError
from gliofuse.tasks import TASK_NAMES
from tests.conftest import REPO


def test_root_config_is_valid_and_round_trips():
    cfg = load_config(REPO / "config.yaml")
    again = parse_config(cfg.model_dump(mode="json"))
    assert again == cfg


def test_config_task_enum_is_the_task_vocabulary():
    assert tuple(Task) == TASK_NAMES
    assert GliofuseConfig().training.tasks == list(TASK_NAMES)


def test_unknown_task_is_named():
    with pytest.raises(ConfigError, match=r"training\.tasks"):
        parse_config({"training": {"tasks": ["stage"]}})


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"wsi\.target_mp: unknown key"):
        parse_config({"wsi": {"target_mp": 0.5}})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"training\.epochs = 'many'"):
        parse_config({"training": {"epochs": "many"}})


def test_snapshot_has_one_section_and_parses(tmp_path):
    snap = section_snapshot(GliofuseConfig().model_dump(mode="json"), "wsi")
    assert set(snap) == {"cohort", "data_root", "seed", "wsi"}
    p = tmp_path / "wsi.yaml"
    p.write_text(yaml.safe_dump(snap))
    assert load_config(p).wsi.target_mpp == 0.5


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_the_labels_snapshot_holds_the_sheet_section_its_clinical_columns_come_from():
    cfg = GliofuseConfig().model_dump(mode="json")
    assert "sheet" in section_snapshot(cfg, "labels") and "labels" in section_snapshot(cfg, "labels")
    assert "sheet" not in section_snapshot(cfg, "wsi")  # a sheet edit reruns labels, not patching
