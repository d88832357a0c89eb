"""``gliofuse`` command line: one subcommand per stage, each a thin call into the package.

Heavy modules (torch, openslide) are imported inside the command that needs them, so
``gliofuse --help`` and the Snakefile stay fast. A ``GliofuseError`` is printed without a
traceback (exit 2 for configuration errors, 1 otherwise); anything else is logged with one.

The handlers and arguments live in one module per stage group (``project``, ``acquire``, ``preprocess``,
``train``, ``deploy``, ``evaluate``, ``validate``, ``report``), each adding its own subcommands; this
package assembles the parser and runs the chosen handler. The handlers are re-exported here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from gliofuse import __version__
from gliofuse.cli import acquire, deploy, evaluate, preprocess, project, report, train, validate
from gliofuse.cli.acquire import (
    cmd_cohort_check,
    cmd_cohort_sheet,
    cmd_gdc_download,
    cmd_gdc_query,
    cmd_labels_build,
)
from gliofuse.cli.common import Handler, log
from gliofuse.cli.common import _feature_paths as _feature_paths
from gliofuse.cli.common import _feature_status_paths as _feature_status_paths
from gliofuse.cli.deploy import (
    cmd_bundle_export,
    cmd_external_evaluate,
    cmd_external_predict,
    cmd_external_report,
    cmd_predict,
)
from gliofuse.cli.evaluate import cmd_evaluate_compare, cmd_evaluate_model, cmd_evaluate_summary
from gliofuse.cli.preprocess import cmd_features_extract, cmd_omics_import, cmd_omics_matrix, cmd_wsi_patch
from gliofuse.cli.project import (
    cmd_config_check,
    cmd_config_schema,
    cmd_demo_external,
    cmd_demo_generate,
    cmd_models_list,
)
from gliofuse.cli.report import (
    cmd_report_attention,
    cmd_report_cards,
    cmd_report_cohort,
    cmd_report_forest,
    cmd_report_markdown,
    cmd_report_model,
    cmd_report_model_task,
    cmd_report_qc,
    cmd_report_summary,
    cmd_report_training,
)
from gliofuse.cli.train import cmd_data_splits, cmd_train_fold, cmd_train_folds
from gliofuse.cli.validate import cmd_validate_fit, cmd_validate_report, cmd_validate_run
from gliofuse.errors import ConfigError, GliofuseError

__all__ = [
    "Handler",
    "build_parser",
    "cmd_bundle_export",
    "cmd_cohort_check",
    "cmd_cohort_sheet",
    "cmd_config_check",
    "cmd_config_schema",
    "cmd_data_splits",
    "cmd_demo_external",
    "cmd_demo_generate",
    "cmd_evaluate_compare",
    "cmd_evaluate_model",
    "cmd_evaluate_summary",
    "cmd_external_evaluate",
    "cmd_external_predict",
    "cmd_external_report",
    "cmd_features_extract",
    "cmd_gdc_download",
    "cmd_gdc_query",
    "cmd_labels_build",
    "cmd_models_list",
    "cmd_omics_import",
    "cmd_omics_matrix",
    "cmd_predict",
    "cmd_report_attention",
    "cmd_report_cards",
    "cmd_report_cohort",
    "cmd_report_forest",
    "cmd_report_markdown",
    "cmd_report_model",
    "cmd_report_model_task",
    "cmd_report_qc",
    "cmd_report_summary",
    "cmd_report_training",
    "cmd_train_fold",
    "cmd_train_folds",
    "cmd_validate_fit",
    "cmd_validate_report",
    "cmd_validate_run",
    "cmd_wsi_patch",
    "log",
    "main",
]

# Stage groups in the order `gliofuse --help` lists their stages.
_STAGE_GROUPS = (project, acquire, preprocess, train, deploy, evaluate, validate, report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gliofuse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"gliofuse {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for group in _STAGE_GROUPS:
        group.add_commands(stages)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args.handler(args)
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr)
        return 2
    except GliofuseError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001 (unknown errors fail loudly: log.exception writes the traceback)
        log.exception("gliofuse %s failed", " ".join(sys.argv[1:]))
        return 1
    return 0
