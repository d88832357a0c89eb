"""The expression matrix file (contract §6): written and read back by gliofuse.omics.matrix."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from gliofuse.errors import InputDataError
from gliofuse.omics.matrix import read_omics_, write_omics_h5_


def _write(path: Path) -> None:
    write_omics_h5_(path, values=np.array([[3, 4, 5], [0, 1, 2]], dtype=np.float32),
                    patients=np.array(["TCGA-02-0001", "TCGA-02-0002"]), genes=np.array(["ENSG1", "ENSG2", "ENSG3"]),
                    gene_names=np.array(["A", "B", "C"]), value_column="tpm_unstranded", log_transform=True, prov={})


def test_read_omics_validates(tmp_path: Path) -> None:
    path = tmp_path / "expression.h5"
    _write(path)
    m = read_omics_(path)
    assert m.patients == ("TCGA-02-0001", "TCGA-02-0002") and m.genes[0] == "ENSG1" and m.gene_names == ("A", "B", "C")
    assert m.values.dtype == np.float32
    np.testing.assert_array_equal(m.rows(["TCGA-02-0002"]), [[0, 1, 2]])
    with pytest.raises(InputDataError, match="no omics profile"):
        m.rows(["TCGA-99-9999"])
    with pytest.raises(InputDataError, match=r"omics matrix not found: .*nope\.h5.*omics_matrix"):
        read_omics_(tmp_path / "nope.h5")
    with h5py.File(path, "a") as fh:
        del fh["genes"]
    with pytest.raises(InputDataError, match=r"expression\.h5 lacks dataset 'genes'"):
        read_omics_(path)


def test_read_omics_rejects_nan_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "expression.h5"
    _write(path)
    with h5py.File(path, "a") as fh:
        fh["values"][0, 0] = np.nan
    with pytest.raises(InputDataError, match="NaN or inf"):
        read_omics_(path)
    _write(path)
    with h5py.File(path, "a") as fh:
        fh["patients"][1] = b"TCGA-02-0001"
    with pytest.raises(InputDataError, match="duplicate patient ids"):
        read_omics_(path)
