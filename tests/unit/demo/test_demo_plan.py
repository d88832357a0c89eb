"""Demo cohort plan: determinism, id formats, quotas, latent -> label and survival model."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from sksurv.metrics import concordance_index_censored

from gliofuse.config import DemoConfig
from gliofuse.demo.latent import censoring_rate_per_day
from gliofuse.demo.plan import PRIMARY_TUMOR, RECURRENT_TUMOR, RNA_FILE_SUFFIX, plan_cohort

SLIDE_ID = re.compile(r"^TCGA-[0-9A-Z]{2}-[0-9A-Z]{4}-01Z-00-DX[12]\.[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-"
                      r"[89AB][0-9A-F]{3}-[0-9A-F]{12}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def big_plan():
    return plan_cohort(seed=11, cfg=DemoConfig(n_patients=1500))


def test_plan_is_deterministic_and_seed_dependent():
    cfg = DemoConfig()
    a, b = plan_cohort(seed=1337, cfg=cfg), plan_cohort(seed=1337, cfg=cfg)
    assert a == b
    assert a.slide_ids == b.slide_ids
    c = plan_cohort(seed=1338, cfg=cfg)
    assert set(c.slide_ids).isdisjoint(a.slide_ids)
    assert c.patient_ids != a.patient_ids
    assert [p.z_tumour for p in c.patients] != [p.z_tumour for p in a.patients]


def test_patient_content_does_not_depend_on_cohort_size():
    small = plan_cohort(seed=5, cfg=DemoConfig(n_patients=10))
    large = plan_cohort(seed=5, cfg=DemoConfig(n_patients=30))
    for p, q in zip(small.patients, large.patients[:10], strict=True):
        assert (p.patient_id, p.case_id, p.z_tumour, p.z_micro, p.true_risk, p.time_days, p.event) == \
               (q.patient_id, q.case_id, q.z_tumour, q.z_micro, q.true_risk, q.time_days, q.event)


def test_ids_formats_and_quotas():
    cfg = DemoConfig(n_patients=48, frac_two_slides=0.25, frac_40x=0.5)
    plan = plan_cohort(seed=1337, cfg=cfg)
    assert len(plan.patients) == 48
    pids = [p.patient_id for p in plan.patients]
    assert len(set(pids)) == 48
    assert all(re.fullmatch(r"TCGA-[0-9A-Z]{2}-[0-9A-Z]{4}", p) for p in pids)
    slides = plan.slide_ids
    assert slides == sorted(slides) and len(set(slides)) == len(slides)
    assert all(SLIDE_ID.match(s) for s in slides), slides[:3]
    assert all(s.startswith(p.patient_id + "-01Z-00-DX") for p in plan.patients for s in p.slide_ids)
    assert sum(len(p.slide_ids) == 2 for p in plan.patients) == 12
    mpps = [m for p in plan.patients for m in p.slide_mpp]
    assert set(mpps) == {0.25, 0.5} and mpps.count(0.25) == round(0.5 * len(mpps))
    assert {p.project for p in plan.patients} == {"TCGA-GBM", "TCGA-LGG"}
    # RNA: ~2 patients without, exactly one with an extra recurrent sample
    assert sum(not p.has_rna for p in plan.patients) == 2
    rna = plan.rna_files()
    assert sum(f.sample_type == RECURRENT_TUMOR for f in rna) == 1
    assert all(f.sample_type in (PRIMARY_TUMOR, RECURRENT_TUMOR) for f in rna)
    for f in rna:
        assert UUID.match(f.file_id)
        assert f.file_name.endswith(RNA_FILE_SUFFIX) and UUID.match(f.file_name[: -len(RNA_FILE_SUFFIX)])
        assert f.relpath == f"rnaseq/{f.file_id}/{f.file_name}"
    assert len({f.file_id for f in rna}) == len(rna)
    assert 1 <= sum(p.molecular_missing for p in plan.patients) <= 2
    assert all(UUID.match(p.case_id) for p in plan.patients)


def test_plan_is_cheap_and_imports_no_pixel_stack():
    code = ("import sys, time; t = time.time(); from gliofuse.config import DemoConfig; "
            "from gliofuse.demo.plan import plan_cohort; plan_cohort(seed=1, cfg=DemoConfig()); "
            "heavy = [m for m in ('PIL', 'scipy', 'torch', 'tifffile', 'pandas') if m in sys.modules]; "
            "print(heavy, time.time() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy, secs = out.rsplit("]", 1)
    assert heavy + "]" == "[]", out
    assert float(secs) < 5.0


def test_latent_factors_drive_labels(big_plan):
    ps = big_plan.patients
    z_t = np.array([p.z_tumour for p in ps])
    z_m = np.array([p.z_micro for p in ps])
    idh_wt = np.array([not p.idh_mutant for p in ps])
    codel = np.array([p.codel for p in ps])
    assert abs(z_t.mean()) < 0.1 and abs(z_t.std() - 1) < 0.1
    assert z_t[idh_wt].mean() - z_t[~idh_wt].mean() > 0.8
    assert not (codel & idh_wt).any()
    assert z_m[codel].mean() < z_m[~idh_wt & ~codel].mean() - 0.4
    for p in ps:
        assert p.true_diagnosis == (2 if not p.idh_mutant else 1 if p.codel else 0)
        if p.true_diagnosis == 2:
            assert p.true_grade == 4
        if p.true_diagnosis == 1:
            assert p.histologic_grade in (2, 3) and p.project == "TCGA-LGG" and p.true_grade == p.histologic_grade
        if p.true_diagnosis == 0:
            assert p.true_grade == (4 if p.histologic_grade == 4 or p.cdkn2a_deleted else p.histologic_grade)
        assert (p.project == "TCGA-GBM") == (p.histologic_grade == 4)
        assert p.time_days >= 1 and p.event in (0, 1)
    # higher z_tumour -> higher grade among IDH-mutant astrocytomas
    astro = [p for p in ps if p.true_diagnosis == 0]
    g = np.array([p.histologic_grade for p in astro])
    zt_astro = np.array([p.z_tumour for p in astro])
    assert zt_astro[g == 2].mean() < zt_astro[g == 3].mean() < zt_astro[g == 4].mean()


def test_survival_is_learnable_and_realistic(big_plan):
    ps = big_plan.patients
    risk = np.array([p.true_risk for p in ps])
    time = np.array([p.time_days for p in ps], dtype=float)
    event = np.array([p.event for p in ps], dtype=bool)
    cindex = concordance_index_censored(event, time, risk)[0]
    assert cindex > 0.7
    assert abs((1 - event.mean()) - 0.35) < 0.06
    # uncensored median survival: glioblastoma ~ a year, lower-grade gliomas several years
    gbm = np.array([p.true_diagnosis == 2 for p in ps])
    t_event_gbm = np.median(time[gbm & event]) / 30.4375
    t_event_lgg = np.median(time[~gbm & event]) / 30.4375
    assert 6 < t_event_gbm < 24
    assert t_event_lgg > 2 * t_event_gbm


@pytest.mark.parametrize("target", [0.1, 0.35, 0.6])
def test_censoring_rate_hits_target(target):
    plan = plan_cohort(seed=3, cfg=DemoConfig(n_patients=1500, censoring_fraction=target))
    frac = 1 - np.mean([p.event for p in plan.patients])
    assert abs(frac - target) < 0.06
    assert censoring_rate_per_day(0.0) == 0.0
