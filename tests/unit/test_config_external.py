"""Section external and sheet.expression: adding an external cohort changes no development stage's snapshot nor any
fold's training settings (so no development job reruns and every fold provenance hash stays), cohort names are safe
ids, each cohort needs its sheet and clinical table, and an expression matrix becomes `omics import` options."""

from __future__ import annotations

import pytest

from gliofuse.config import SECTIONS, parse_config, section_snapshot
from gliofuse.errors import ConfigError

SITE = {"slides": "siteB/slides.csv", "clinical": "siteB/clinical.csv",
        "expression": {"path": "siteB/tpm.tsv", "unit": "log2_tpm", "pseudocount": 1, "gene_id": "symbol"}}


def test_an_external_cohort_changes_no_development_snapshot_nor_fold_settings() -> None:
    from gliofuse.training.provenance import fold_settings

    base = parse_config({"seed": 3})
    ext = parse_config({"seed": 3, "external": {"siteB": SITE}})
    for section in SECTIONS:
        if section != "external":
            assert section_snapshot(base.model_dump(mode="json"), section) == section_snapshot(
                ext.model_dump(mode="json"), section), section
    for model, task in base.training.jobs():
        assert fold_settings(base, model, task, {}) == fold_settings(ext, model, task, {})
    snap = section_snapshot(ext.model_dump(mode="json"), "external")
    assert snap["external"]["siteB"]["slides"] == "siteB/slides.csv" and "predict" in snap and "evaluation" in snap


@pytest.mark.parametrize("name,entry,needle", [
    ("site B", SITE, "external.site B"),
    ("siteB", {"slides": "s.csv"}, "needs clinical"),
    ("siteB", {**SITE, "expression": {"path": "x.tsv", "unit": "tpm"}}, "gene_id"),
])
def test_bad_external_entries_are_refused_naming_the_key(name: str, entry: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_config({"external": {name: entry}})


def test_an_expression_matrix_becomes_omics_import_options() -> None:
    cfg = parse_config({"external": {"siteB": {**SITE, "expression": {**SITE["expression"],
                                                                     "gene_table": "my genes.tsv"}}}})
    flags = cfg.external["siteB"].expression.import_flags()
    assert flags == ("--unit log2_tpm --gene-id symbol --orientation genes-in-rows --max-missing-fraction 0.1 "
                     "--pseudocount 1.0 --gene-table 'my genes.tsv'")
