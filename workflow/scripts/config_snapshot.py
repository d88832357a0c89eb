"""Adapter: write the validated config section snapshot (results/config/<section>.yaml)."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 - injected by Snakemake

import yaml  # noqa: E402

from gliofuse.io import write_text_atomic_  # noqa: E402

write_text_atomic_(snakemake.output[0], yaml.safe_dump(dict(snakemake.params.snapshot), sort_keys=True))  # noqa: F821
