"""gliofuse.io: atomic writes and provenance hashes."""

import pytest

from gliofuse.io import atomic_path, file_hash, provenance


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_provenance_hashes_inputs_and_config(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("x")
    p1 = provenance(config={"k": 1}, inputs={"a": a})
    a.write_text("y")
    p2 = provenance(config={"k": 1}, inputs={"a": a})
    assert p1["inputs"]["a"] != p2["inputs"]["a"] and p1["config_hash"] == p2["config_hash"]
    assert provenance(config={"k": 2})["config_hash"] != p1["config_hash"]
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (9 * 1024 * 1024))
    assert file_hash(big).startswith("sha256-ht:")
