import json

import numpy as np
import pandas as pd
import pytest

from gliofuse.errors import InputDataError
from gliofuse.labels.clinical import cases_from_envelope, survival_from_case
from gliofuse.labels.tables import (
    build_label_table_,
    build_labels,
    read_label_table_,
    read_molecular_table_,
    shipped_molecular_table,
)
from gliofuse.labels.who2021 import classify, who2021_from_molecular


def _case(pid, vital, death=None, dx_fu=None, fus=(), sex="female"):
    return {"submitter_id": pid, "project": {"project_id": "TCGA-LGG"},
            "demographic": {"vital_status": vital, "days_to_death": death, "sex_at_birth": sex},
            "diagnoses": [{"age_at_diagnosis": 365.25 * 40, "days_to_last_follow_up": dx_fu}],
            "follow_ups": [{"days_to_follow_up": f} for f in fus]}


def test_dead_patient_uses_days_to_death():
    s = survival_from_case(_case("TCGA-AA-0001", "Dead", death=358, fus=(279,)))
    assert s["event"] == 1 and s["time_days"] == 358 and s["age_years"] == pytest.approx(40.0)


def test_alive_patient_uses_max_followup_across_diagnoses_and_follow_ups():
    # the GDC trap: diagnoses.days_to_last_follow_up empty, follow_ups holds the time
    assert survival_from_case(_case("TCGA-AA-0002", "Alive", dx_fu=None, fus=(120, 900)))["time_days"] == 900
    assert survival_from_case(_case("TCGA-AA-0003", "Alive", dx_fu=1500, fus=(120,)))["time_days"] == 1500
    s = survival_from_case(_case("TCGA-AA-0004", "Alive"))
    assert s["event"] == 0 and s["time_days"] is None


def test_legacy_gender_field_is_tolerated():
    case = _case("TCGA-AA-0005", "Dead", death=10)
    case["demographic"] = {"vital_status": "Dead", "days_to_death": 10, "gender": "male"}
    assert survival_from_case(case)["sex"] == "male"


def test_envelope_errors_name_the_file():
    with pytest.raises(InputDataError, match="cases.json is not a GDC /cases response"):
        cases_from_envelope({"hits": []}, source="cases.json")


@pytest.mark.parametrize("idh,codel,hist,cdkn2a,strict,expected", [
    ("wildtype", "non-codel", 4, None, False, ("glioblastoma_idhwt", 4)),
    ("wildtype", "non-codel", 2, None, False, ("glioblastoma_idhwt", 4)),
    ("wildtype", "non-codel", 2, None, True, ("nec", None)),
    ("mutant", "codel", 3, None, False, ("oligodendroglioma_idhmut_codel", 3)),
    ("mutant", "non-codel", 2, True, False, ("astrocytoma_idhmut", 4)),
    ("mutant", "non-codel", 3, False, False, ("astrocytoma_idhmut", 3)),
    ("mutant", None, 3, None, False, (None, None)),
    (None, "codel", 3, None, False, (None, None)),
])
def test_who2021_rules(idh, codel, hist, cdkn2a, strict, expected):
    assert classify(idh=idh, codel=codel, histologic_grade=hist, cdkn2a_deleted=cdkn2a, tert_mutant=None,
                    gain7_loss10=None, strict=strict) == expected


def test_strict_mode_keeps_idhwt_lower_grade_with_tert_mutation():
    assert classify(idh="wildtype", codel=None, histologic_grade=3, cdkn2a_deleted=None, tert_mutant=True,
                    gain7_loss10=None, strict=True) == ("glioblastoma_idhwt", 4)


def test_shipped_table_agrees_with_pathomic_fusion_labels(shared_data):
    """Ceccarelli subtypes/grades must reproduce PF's grade_data.csv (documented as 100% agreement)."""
    who = who2021_from_molecular(read_molecular_table_(shipped_molecular_table()), strict=False).set_index("patient_id")
    pf = pd.read_csv(shared_data / "pathomic_fusion_gbmlgg" / "grade_data.csv").set_index("TCGA ID")
    pf = pf[pf["Molecular subtype"].notna()]
    joined = pf.join(who, how="inner")
    assert len(joined) == len(pf)
    expected = joined["Molecular subtype"].map({"IDHwt": "glioblastoma_idhwt", "IDHmut-non-codel": "astrocytoma_idhmut",
                                                "IDHmut-codel": "oligodendroglioma_idhmut_codel"})
    assert (expected == joined["who2021_class"]).all()
    astro = joined[joined["who2021_class"] == "astrocytoma_idhmut"].dropna(subset=["Grade"])
    assert (astro["Grade"].astype(int) == astro["who2021_grade"].astype(int)).all()
    assert (joined.loc[joined["who2021_class"] == "glioblastoma_idhwt", "who2021_grade"] == 4).all()
    # cBioPortal OS in months -> days agrees with PF's days for most patients (different data freezes)
    both = joined.dropna(subset=["os_days"])
    rel = np.abs(both["os_days"] - both["Time to last followup or death (months)"]) / both["os_days"].clip(lower=1)
    assert (rel < 0.05).mean() > 0.6


def test_build_label_table_roundtrip(tmp_path):
    cases = [_case("TCGA-AA-0001", "Dead", death=300), _case("TCGA-AA-0002", "Alive", fus=(800,)),
             _case("TCGA-AA-0003", "Alive", fus=(50,))]
    (tmp_path / "cases.json").write_text(json.dumps({"data": {"hits": cases, "pagination": {}}, "warnings": {}}))
    mol = pd.DataFrame({"Patient ID": ["TCGA-AA-0001", "TCGA-AA-0002", "TCGA-AA-0003"],
                        "IDH status": ["WT", "Mutant", "NA"], "IDH-1P10Q Subtype": ["Non-codel", "Codel", "NA"],
                        "IDH/codel subtype": ["IDHwt", "IDHmut-codel", "NA"],
                        "Neoplasm Histologic Grade": ["G4", "G2", "G3"],
                        "Overall Survival (Months)": ["10", "20", "NA"],
                        "Overall Survival Status": ["1:DECEASED", "0:LIVING", "NA"]})
    mol.to_csv(tmp_path / "mol.tsv", sep="\t", index=False)
    out = tmp_path / "labels.tsv"
    build_label_table_(cases_path=tmp_path / "cases.json", molecular_path=tmp_path / "mol.tsv", strict=False,
                       survival_source="clinical", out_path=out, config={"labels": {}})
    df = read_label_table_(out).set_index("patient_id")
    assert df.loc["TCGA-AA-0001", "diagnosis"] == 2 and df.loc["TCGA-AA-0001", "grade"] == 2
    assert df.loc["TCGA-AA-0002", "diagnosis"] == 1 and df.loc["TCGA-AA-0002", "grade"] == 0
    assert df.loc["TCGA-AA-0003", "diagnosis"] == -1 and df.loc["TCGA-AA-0003", "grade"] == -1
    assert df.loc["TCGA-AA-0002", "time_days"] == 800 and df.loc["TCGA-AA-0002", "event"] == 0
    assert (tmp_path / "labels.tsv.prov.json").exists()
    # survival from the molecular table instead: months -> days
    df2 = build_labels(cases=cases, molecular=mol.astype(str), strict=False, survival_source="molecular_table")
    assert df2.set_index("patient_id").loc["TCGA-AA-0001", "time_days"] == pytest.approx(304.375)


def test_molecular_table_missing_column_is_named(tmp_path):
    pd.DataFrame({"Patient ID": ["TCGA-AA-0001"]}).to_csv(tmp_path / "m.tsv", sep="\t", index=False)
    with pytest.raises(InputDataError, match="IDH status"):
        read_molecular_table_(tmp_path / "m.tsv")


def test_label_table_rejects_bad_event_coding(tmp_path):
    from gliofuse.labels.tables import LABEL_COLUMNS

    df = pd.DataFrame({c: [None, None] for c in LABEL_COLUMNS})
    df["patient_id"] = ["TCGA-AA-0001", "TCGA-AA-0002"]
    df["event"] = [0, 2]
    df.to_csv(tmp_path / "l.tsv", sep="\t", index=False)
    with pytest.raises(InputDataError, match="'event' must be 0/1"):
        read_label_table_(tmp_path / "l.tsv")
