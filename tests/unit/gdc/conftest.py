"""GDC fixtures: one small demo cohort (the data the double serves) and a fresh GDC double per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gliofuse.config import DemoConfig
from gliofuse.gdc.client import GdcClient, RetryPolicy
from tests.fakes.gdc_double import GdcDouble

DEMO_SEED = 11


def demo_config() -> DemoConfig:
    return DemoConfig(n_patients=8, slide_width_um=600, slide_height_um=400, n_genes=100)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data root of an 8-patient demo cohort in GDC layout (generated once per session; read-only)."""
    from gliofuse.demo.build import generate_cohort_

    root = tmp_path_factory.mktemp("gdc_demo_root")
    generate_cohort_(seed=DEMO_SEED, cfg=demo_config(), out_dir=root, progress=False, workers=1)
    return root


@pytest.fixture()
def gdc_double(demo_root: Path) -> Iterator[GdcDouble]:
    """A GDC double on 127.0.0.1 serving ``demo_root``; faults armed by a test die with it."""
    with GdcDouble(demo_root) as double:
        yield double


class SleepRecorder:
    """Replaces ``time.sleep`` in a client: records the requested waits, sleeps not at all."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture()
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture()
def client(gdc_double: GdcDouble, sleeps: SleepRecorder) -> GdcClient:
    """Client of the double with a fast retry policy and recorded (not slept) waits."""
    return GdcClient(api_url=gdc_double.url, retry=RetryPolicy(max_retries=3, backoff_s=0.01, max_backoff_s=0.05),
                     timeout_s=10, sleep=sleeps)
