#!/usr/bin/env bash
# Snakemake runs this once, inside the new environment, right after creating it (--use-conda / --sdm conda).
# It installs the gliofuse package of this checkout, editable and without dependencies: the environment file
# pins those. (The pip section of an environment file cannot do it: pip rejects --no-deps in a requirements
# file, and Snakemake builds the environment from a copy under .snakemake/conda, so relative paths break.)
# Run Snakemake from the checkout, or point GLIOFUSE_ROOT at it. All three envs/*.post-deploy.sh are identical.
set -euo pipefail
root="${GLIOFUSE_ROOT:-$PWD}"
if ! grep -qs '^name = "gliofuse"' "$root/pyproject.toml"; then
  echo "gliofuse post-deploy: $root is not the gliofuse checkout; run snakemake from it or set GLIOFUSE_ROOT" >&2
  exit 1
fi
python -m pip install --quiet --no-deps --editable "$root"
