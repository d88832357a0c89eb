"""Shared demo-cohort fixtures: one small cohort generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from gliofuse.config import DemoConfig
from gliofuse.demo.build import generate_cohort_
from gliofuse.demo.plan import CohortPlan

SMALL_SEED = 7


def small_config() -> DemoConfig:
    """12 patients, small slides (600 x 450 µm: 2400 x 1800 px at 40x, 1200 x 900 px at 20x), 150 genes."""
    return DemoConfig(n_patients=12, frac_two_slides=0.25, frac_40x=0.5, slide_width_um=600.0,
                      slide_height_um=450.0, n_genes=150, censoring_fraction=0.35)


@pytest.fixture(scope="session")
def small_cfg() -> DemoConfig:
    return small_config()


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[CohortPlan, Path]:
    """(plan, data root) of a small demo cohort, generated once (serially) for the whole session."""
    root = tmp_path_factory.mktemp("demo_cohort")
    plan = generate_cohort_(seed=SMALL_SEED, cfg=small_config(), out_dir=root, progress=False, workers=1)
    return plan, root
