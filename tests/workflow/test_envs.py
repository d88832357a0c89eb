"""envs/*.yaml (the --use-conda environments) agree with the pins of pyproject.toml, the source of truth.

* a package pinned (``==``) in pyproject.toml and listed in an env file has the same version there;
* a package with a version range in pyproject.toml is pinned inside that range;
* every runtime dependency of pyproject.toml (except Snakemake itself) is in at least one env file;
* the pins of one env file are consistent with each other, by the dependency metadata of the packages
  installed here (e.g. scikit-survival 0.28.0 needs scikit-learn >= 1.9);
* the pip sections hold plain ``name==version`` lines (pip rejects ``--no-deps`` in a requirements file, and
  Snakemake builds the env from a copy, so relative paths break): gliofuse is installed by the env's
  identical ``<env>.post-deploy.sh``.

Conda package names differ from PyPI names in places (pytorch vs torch); CONDA_TO_PYPI maps them.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

ENVS = sorted((REPO / "envs").glob("*.yaml"))
CONDA_TO_PYPI = {"pytorch": "torch", "pytorch-cuda": None, "python": None, "pip": None}
NOT_IN_ENVS = {"snakemake", "snakemake-executor-plugin-slurm"}  # they run the workflow, not the rules
PIP_ONLY = {"torch.yaml": {"torch", "torchvision", "timm"}}  # the CUDA wheels from PyPI, as in CI


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def pyproject_requirements() -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, pyproject()["project"]["dependencies"])}


def env_pins(path: Path) -> dict[str, tuple[str, str]]:
    """{PyPI name: (version, 'conda'|'pip')} of one env file; unpinned or odd entries raise."""
    pins: dict[str, tuple[str, str]] = {}
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(dep, dict):
            for line in dep.get("pip", []):
                m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([0-9][A-Za-z0-9_.+!-]*)", str(line).strip())
                assert m, f"{path.name}: pip entry {line!r} is not a plain name==version pin"
                pins[canonicalize_name(m[1])] = (m[2], "pip")
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*==?\s*([0-9][A-Za-z0-9_.+!*-]*)", str(dep).strip())
        assert m, f"{path.name}: conda entry {dep!r} is not pinned (name=version)"
        name = CONDA_TO_PYPI.get(m[1], m[1])
        if name:
            pins[canonicalize_name(name)] = (m[2], "conda")
    return pins


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_pins_agree_with_pyproject(env):
    reqs = pyproject_requirements()
    problems = []
    for name, (version, _) in env_pins(env).items():
        req = reqs.get(name)
        if req is None:
            continue
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if exact and Version(version) != Version(exact[0]):
            problems.append(f"{name}: {env.name} pins {version}, pyproject.toml {exact[0]}")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{name}: {env.name} pins {version}, outside pyproject.toml's {req.specifier}")
    assert not problems, "update envs/ to pyproject.toml's pins:\n" + "\n".join(problems)


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_python_matches_requires_python(env):
    python = next(d for d in yaml.safe_load(env.read_text())["dependencies"]
                  if isinstance(d, str) and re.match(r"python[=<>]", d))
    version = re.split(r"=+", python, maxsplit=1)[1]
    spec = pyproject()["project"]["requires-python"]
    from packaging.specifiers import SpecifierSet

    assert SpecifierSet(spec).contains(version + ".0"), (env.name, python, spec)


def test_every_runtime_dependency_is_in_an_env():
    in_envs = set().union(*(env_pins(e) for e in ENVS))
    missing = set(pyproject_requirements()) - in_envs - NOT_IN_ENVS
    assert not missing, f"pyproject.toml dependencies in no envs/*.yaml: {sorted(missing)}"


def test_pip_only_packages():
    for env_name, names in PIP_ONLY.items():
        pins = env_pins(REPO / "envs" / env_name)
        for name in names:
            assert pins.get(name, ("", ""))[1] == "pip", f"{name} must be a pip entry of envs/{env_name}"


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_pins_are_mutually_consistent(env):
    """Each pinned package's requirements (metadata of the same version installed here) admit the env's pins."""
    pins = env_pins(env)
    marker_env = {**default_environment(), "python_version": "3.11", "python_full_version": "3.11.0"}
    checked, problems = 0, []
    for name, (version, _) in pins.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Version(dist.version) != Version(version):
            continue  # another version installed here: its metadata says nothing about this pin
        checked += 1
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker and not req.marker.evaluate({**marker_env, "extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            if dep in pins and not req.specifier.contains(pins[dep][0], prereleases=True):
                problems.append(f"{name} {version} requires {req}, {env.name} pins {dep} {pins[dep][0]}")
    assert not problems, "\n".join(problems)
    assert checked, f"no package of {env.name} is installed here at the pinned version: nothing was checked"


def test_post_deploy_scripts_install_gliofuse():
    scripts = [env.with_suffix("").with_suffix(".post-deploy.sh") for env in ENVS]
    for script in scripts:
        assert script.exists(), f"{script.name} missing: it installs gliofuse into the env"
    texts = {s.read_text() for s in scripts}
    assert len(texts) == 1, "envs/*.post-deploy.sh differ"
    text = texts.pop()
    assert "--no-deps" in text and "--editable" in text and "GLIOFUSE_ROOT" in text
