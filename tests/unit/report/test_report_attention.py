"""Attention heatmaps from the §10 attention file (h5 or tsv), thumbnails and coordinate files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gliofuse.errors import InputDataError
from gliofuse.report.attention import attention_map, choose_patients, plot_attention_, read_attention_

W0, H0, PS = 4000, 3000, 500  # level-0 size and patch side


def _slide_files(root: Path, slide: str) -> tuple[Path, Path, np.ndarray]:
    xy = np.array([(x, y) for y in range(0, H0, PS) for x in range(0, W0, PS)], dtype=np.int64)
    coords = root / "coords" / f"{slide}.h5"
    coords.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(coords, "w") as f:
        f.create_dataset("coords", data=xy)
        f.attrs.update({"level0_width": W0, "level0_height": H0, "patch_size_level0": PS})
    thumb = root / "thumbnails" / f"{slide}.jpg"
    thumb.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (400, 300), (230, 200, 220)).save(thumb)
    return thumb, coords, xy


def _setup(tmp_path: Path, fmt: str) -> tuple[Path, list[Path], list[Path], list[Path]]:
    rng = np.random.default_rng(0)
    patients = [f"TCGA-02-{i:04d}" for i in range(6)]
    oof = pd.DataFrame({"patient_id": patients, "model": "abmil", "task": "survival", "fold": [0, 0, 0, 1, 1, 1],
                        "split": "test", "time_days": rng.uniform(100, 900, 6), "event": 1,
                        "risk": [0.5, 2.0, -1.0, 0.1, 1.0, -2.0]})
    oof_path = tmp_path / "oof.tsv"
    oof.to_csv(oof_path, sep="\t", index=False)
    thumbs, coords, dirs = [], [], []
    for k in (0, 1):
        d = tmp_path / "training" / f"fold_{k}"
        d.mkdir(parents=True)
        dirs.append(d)
        rows = []
        # test patients of this fold, plus one training patient of the other fold (must be ignored)
        for pid in [*oof.loc[oof["fold"] == k, "patient_id"], oof.loc[oof["fold"] != k, "patient_id"].iloc[0]]:
            slide = f"{pid}-01Z-00-DX1"
            t, c, xy = _slide_files(tmp_path, slide)
            thumbs.append(t)
            coords.append(c)
            rows.append((pid, slide, xy, xy[:, 0] + xy[:, 1] * 0.1))
        if fmt == "h5":
            with h5py.File(d / "attention.h5", "w") as f:
                for pid, slide, xy, att in rows:
                    g = f.create_group(slide)
                    g.create_dataset("coords", data=xy)
                    g.create_dataset("attention", data=att.astype(np.float32))
                    g.attrs["patient_id"] = pid
        else:
            pd.concat([pd.DataFrame({"patient_id": pid, "slide_id": slide, "x": xy[:, 0], "y": xy[:, 1],
                                     "attention": att}) for pid, slide, xy, att in rows]).to_csv(
                d / "attention.tsv", sep="\t", index=False)
    return oof_path, dirs, sorted(set(thumbs)), sorted(set(coords))


@pytest.mark.parametrize("fmt", ["h5", "tsv"])
def test_attention_heatmaps(tmp_path: Path, fmt: str) -> None:
    oof_path, dirs, thumbs, coords = _setup(tmp_path, fmt)
    out = tmp_path / "fig"
    written = plot_attention_(oof_path=oof_path, fold_dirs=dirs, thumbnails=thumbs, coords=coords, out_dir=out,
                              n_patients=3)
    names = sorted(p.name for p in written)
    # evenly spread over the risk order: highest (0001), median, lowest (0005)
    assert names == sorted(["TCGA-02-0001.png", "TCGA-02-0001.svg", "TCGA-02-0000.png", "TCGA-02-0000.svg",
                            "TCGA-02-0005.png", "TCGA-02-0005.svg"])
    assert all(p.stat().st_size > 3000 for p in written)


def test_no_attention_file_leaves_folder_empty(tmp_path: Path) -> None:
    oof_path, dirs, thumbs, coords = _setup(tmp_path, "h5")
    for d in dirs:
        (d / "attention.h5").unlink()
    out = tmp_path / "fig"
    out.mkdir()
    (out / "stale.png").write_bytes(b"x")
    assert plot_attention_(oof_path=oof_path, fold_dirs=dirs, thumbnails=thumbs, coords=coords, out_dir=out) == []
    assert list(out.iterdir()) == []


def test_attention_map_geometry_and_percentiles() -> None:
    att = pd.DataFrame({"x": [0, 500], "y": [0, 1000], "attention": [0.1, 0.9]})
    heat = attention_map(att, thumb_size=(400, 300), level0_size=(W0, H0), patch_size_level0=PS)
    assert heat.shape == (300, 400)
    assert heat[0:50, 0:50].tolist() == np.zeros((50, 50)).tolist()
    assert np.all(heat[100:150, 50:100] == 1.0)
    assert np.isnan(heat[200, 200]) and np.isfinite(heat).sum() == 2 * 50 * 50


def test_choose_patients_classification() -> None:
    oof = pd.DataFrame({"patient_id": ["a", "b", "c", "d"], "y_true": [0, 0, 1, 1],
                        "prob_x": [0.9, 0.6, 0.2, 0.6], "prob_y": [0.1, 0.4, 0.8, 0.4]})
    assert choose_patients(oof, {"a", "b", "c", "d"}, 3) == ["a", "c", "b"]
    assert choose_patients(oof, {"d"}, 3) == ["d"]
    assert choose_patients(oof, set(), 3) == []


def test_bad_attention_file(tmp_path: Path) -> None:
    path = tmp_path / "attention.h5"
    with h5py.File(path, "w") as f:
        f.create_group("slide").create_dataset("coords", data=np.zeros((2, 2)))
    with pytest.raises(InputDataError, match="needs datasets 'coords' and 'attention'"):
        read_attention_(path)
