"""Job list of the reproduction: the example config's jobs and config errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from gliofuse.config import parse_config
from gliofuse.errors import ConfigError
from gliofuse.reproduce.jobs import ValidationJob, validation_jobs


def _cfg(shared_data: Path, **validation):
    v = {"pf_dir": str(shared_data / "pathomic_fusion_gbmlgg"), "mcat_dir": str(shared_data / "mcat_porpoise_gbmlgg")}
    v.update(validation)
    return parse_config({"seed": 7, "validation": v})


def test_jobs_of_the_example_config(shared_data: Path) -> None:
    repo = Path(__file__).resolve().parents[3]
    data = yaml.safe_load((repo / "config" / "real_gbmlgg_omics.yaml").read_text())
    assert data["validation"]["pf_dir"].startswith("../shared/data")  # only the example points at ../shared
    jobs = validation_jobs(parse_config(data).validation)
    kinds = pd.Series([(j.protocol, j.task, j.cohort) for j in jobs]).value_counts().to_dict()
    assert kinds == {("pf", "survival", "rnaseq"): 15, ("pf", "survival", "all"): 15, ("pf", "grade", "all"): 15,
                     ("mcat", "survival", "all"): 5}
    assert ValidationJob("pf", "snn", "grade", 3).rel_dir == "pf/snn/grade/all/split_3"
    assert validation_jobs(parse_config({}).validation) == []  # nothing configured: nothing to run


def test_job_errors_name_the_key(shared_data: Path) -> None:
    with pytest.raises(ConfigError, match="mcat_dir"):
        validation_jobs(_cfg(shared_data, mcat_dir=None).validation)  # pf rnaseq cohort needs the MCAT table
    with pytest.raises(ConfigError, match="splits"):
        validation_jobs(_cfg(shared_data, mcat={"splits": [7]}).validation)
    with pytest.raises(ConfigError, match="grade"):
        validation_jobs(_cfg(shared_data, mcat={"tasks": ["grade"]}).validation)
