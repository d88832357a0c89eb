"""Mask → polygons with holes → GeoJSON (gliofuse.wsi.contours), hole rules and saddle clean-up."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from wsi_synthetic import BIG_HOLE

from gliofuse.config import WsiConfig
from gliofuse.wsi.contours import mask_to_polygons, polygons_to_geojson, read_geojson_polygons, ring_area
from gliofuse.wsi.patch import patch_slide_
from gliofuse.wsi.reader import open_slide
from gliofuse.wsi.segment import fill_holes, fill_saddles, segment_tissue


def _check_rings(polys: list) -> None:
    for p in polys:
        rings = [p.exterior, *p.holes]
        for r in rings:
            assert len(r) >= 5 and np.array_equal(r[0], r[-1])  # closed, at least a rectangle
            assert len({tuple(v) for v in r[:-1]}) == len(r) - 1  # simple: no repeated vertex
        assert ring_area(p.exterior) > 0 and all(ring_area(h) < 0 for h in p.holes)  # right-hand rule


def test_square_with_hole_and_island() -> None:
    m = np.zeros((20, 30), bool)
    m[2:15, 3:20] = True
    m[5:9, 6:10] = False  # hole
    m[7, 7] = True  # island inside the hole
    m[17:19, 25:28] = True  # second region
    polys = mask_to_polygons(m, (2.0, 3.0))
    _check_rings(polys)
    assert [len(p.holes) for p in polys] == [1, 0, 0]
    assert polys[0].exterior.tolist() == [[40.0, 6.0], [40.0, 45.0], [6.0, 45.0], [6.0, 6.0], [40.0, 6.0]]
    assert sum(p.area for p in polys) == m.sum() * 6.0


def test_random_mask_area_exact() -> None:
    rng = np.random.default_rng(1)
    m = fill_saddles(ndimage.gaussian_filter(rng.random((120, 150)), 3) > 0.5)
    polys = mask_to_polygons(m, (7.5, 7.5))
    _check_rings(polys)
    assert sum(p.area for p in polys) == pytest.approx(m.sum() * 7.5**2)
    assert len(polys) == ndimage.label(m)[1]
    assert sum(len(p.holes) for p in polys) > 0
    # GeoJSON round trip
    gj = json.loads(json.dumps(polygons_to_geojson(polys, mpp_level0=0.25)))
    back = read_geojson_polygons(gj)
    assert sum(p.area for p in back) == pytest.approx(sum(p.area for p in polys))
    f0 = gj["features"][0]
    assert f0["geometry"]["type"] == "Polygon" and f0["properties"]["objectType"] == "annotation"
    assert f0["properties"]["area_um2"] == pytest.approx(polys[0].area * 0.0625, abs=0.01)


def test_saddles_rejected_then_filled() -> None:
    m = np.zeros((6, 6), bool)
    m[1:3, 1:3] = True
    m[3:5, 3:5] = True  # touches the first square only at a corner
    with pytest.raises(ValueError, match="fill_saddles"):
        mask_to_polygons(m)
    f = fill_saddles(m)
    assert f.sum() == m.sum() + 1 and (f >= m).all()
    assert len(mask_to_polygons(f)) == 1
    assert mask_to_polygons(np.zeros((4, 4), bool)) == []


def test_fill_holes_per_region_limit() -> None:
    m = np.zeros((30, 60), bool)
    m[2:28, 2:28] = True
    m[2:28, 32:58] = True
    for y, s in ((5, 2), (12, 3), (19, 4)):  # three holes of 4, 9 and 16 px in the left region
        m[y:y + s, 10:10 + s] = False
    m[10:14, 40:44] = False  # one 16-px hole in the right region
    out = fill_holes(m, min_hole_px=5, max_n_holes=1)
    assert out[5:7, 10:12].all()  # 4 px < min_hole_px: filled
    assert out[12:15, 10:13].all()  # 9 px: beyond the 1 largest of its region: filled
    assert not out[19:23, 10:14].any()  # largest hole of the left region: kept
    assert not out[10:14, 40:44].any()  # largest hole of the right region: kept
    assert fill_holes(m, min_hole_px=0, max_n_holes=0).sum() == 2 * 26 * 26  # 0: holes are tissue
    assert np.array_equal(fill_holes(m, min_hole_px=0, max_n_holes=None), m)


def test_slide_with_hole_geojson(synthetic_slides: dict[str, Path], tmp_path: Path) -> None:
    slide = synthetic_slides["holed"]
    gj_path = tmp_path / "s.geojson"
    rec = patch_slide_(slide_path=slide, cfg=WsiConfig(), out_coords=tmp_path / "c.h5", out_qc=tmp_path / "q.png",
                       out_status=tmp_path / "s.json", out_geojson=gj_path, out_contours=tmp_path / "c.jpg")
    gj = json.loads(gj_path.read_text())
    polys = read_geojson_polygons(gj)
    _check_rings(polys)
    assert rec["n_holes"] == 1 and sum(len(p.holes) for p in polys) == 1
    hole = next(h for p in polys for h in p.holes)
    hx, hy, hr = BIG_HOLE  # µm; slide at 0.5 µm/px
    assert -ring_area(hole) * 0.25 == pytest.approx(np.pi * hr**2, rel=0.35)
    assert hole[:, 0].mean() * 0.5 == pytest.approx(hx, abs=25) and hole[:, 1].mean() * 0.5 == pytest.approx(hy, abs=25)
    with open_slide(slide) as s:
        t = segment_tissue(s, mpp_level0=0.5, cfg=WsiConfig())
        width0 = s.dimensions[0]
    mask_area = t.mask.sum() * t.downsample[0] * t.downsample[1]
    assert sum(p.area for p in polys) == pytest.approx(mask_area, rel=1e-6)
    assert sum(f["properties"]["area_um2"] for f in gj["features"]) == pytest.approx(mask_area * 0.25, rel=1e-4)
    assert max(p.exterior[:, 0].max() for p in polys) <= width0
    # holes count as tissue with max_n_holes = 0
    rec0 = patch_slide_(slide_path=slide, cfg=WsiConfig(max_n_holes=0), out_coords=tmp_path / "c0.h5",
                        out_qc=tmp_path / "q0.png", out_status=tmp_path / "s0.json")
    assert rec0["n_holes"] == 0 and rec0["tissue_fraction"] > rec["tissue_fraction"]
