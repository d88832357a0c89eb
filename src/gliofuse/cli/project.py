"""``gliofuse config``, ``models`` and ``demo``: the config schema, the model registry, the demo cohorts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gliofuse.cli.common import _add, _cfg, add_group


def cmd_config_schema(args: argparse.Namespace) -> None:
    from gliofuse.config_schema import schema_yaml
    from gliofuse.io import write_text_atomic_

    text = schema_yaml()
    if args.out:
        write_text_atomic_(args.out, text)
    else:
        sys.stdout.write(text)


def cmd_config_check(args: argparse.Namespace) -> None:
    import yaml

    cfg = _cfg(args)
    sys.stdout.write(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


def cmd_models_list(args: argparse.Namespace) -> None:
    from gliofuse.models.registry import get_model_card, list_models

    for name in list_models(args.pattern):
        card = get_model_card(name)
        print(f"{name:32s} {'+'.join(card.modalities):10s} {','.join(card.tasks):28s} {card.reference}")


def cmd_demo_generate(args: argparse.Namespace) -> None:
    from gliofuse.demo.build import generate_cohort_

    cfg = _cfg(args)
    generate_cohort_(seed=cfg.seed, cfg=cfg.demo, out_dir=Path(args.out))


def cmd_demo_external(args: argparse.Namespace) -> None:
    from gliofuse.demo.site_build import generate_external_site_

    cfg = _cfg(args)
    generate_external_site_(seed=cfg.seed, cfg=cfg.demo, out_dir=Path(args.out), workers=args.workers)


def add_commands(stages: argparse._SubParsersAction) -> None:
    """Register the ``config``, ``models`` and ``demo`` stages."""
    g = add_group(stages, "config", "export the config JSON schema, check a config")
    p = _add(g, "schema", cmd_config_schema, "write the config JSON schema (YAML)", config=False)
    p.add_argument("--out", help="output file (default: stdout)")
    _add(g, "check", cmd_config_check, "validate a config and print it with defaults filled in")

    g = add_group(stages, "models", "the model registry")
    p = _add(g, "list", cmd_models_list, "list registered models", config=False)
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern")

    g = add_group(stages, "demo", "embedded synthetic demo cohort")
    p = _add(g, "generate", cmd_demo_generate, "write the demo cohort in GDC layout")
    p.add_argument("--out", required=True, help="data root to write (slides/, rnaseq/, metadata/, labels/, truth/)")
    p = _add(g, "external", cmd_demo_external, "write the demo's external site (demo.external): a cohort: sheet "
             "input with DICOM/TIFF slides, a TPM matrix and its own clinical columns")
    p.add_argument("--out", required=True, help="site folder to write (slides/, slides.csv, clinical.csv, "
                   "expression_tpm.tsv, cohort.yaml, truth/)")
    p.add_argument("--workers", type=int, default=None, help="slide processes (default: up to 4, one per CPU)")
