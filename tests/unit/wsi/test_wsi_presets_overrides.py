"""Named presets (wsi.preset) and per-slide overrides (wsi.overrides_csv)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gliofuse.config import WsiConfig, parse_config
from gliofuse.errors import ConfigError
from gliofuse.wsi import read_coords_h5
from gliofuse.wsi.overrides import check_override_slides, read_overrides, slide_config
from gliofuse.wsi.patch import patch_slide_


def test_presets_fill_unset_parameters() -> None:
    base = WsiConfig()
    assert (base.seg_mpp, base.saturation_threshold, base.min_tissue_area_um2, base.max_n_holes) == (8.0, "otsu", 20000.0, 8)
    tcga = WsiConfig(preset="tcga")
    assert (tcga.seg_mpp, tcga.saturation_threshold, tcga.median_blur_px, tcga.close_um) == (16.0, 8, 7, 32.0)
    assert (tcga.min_tissue_area_um2, tcga.min_hole_area_um2, tcga.max_n_holes) == (16 * 16384.0, 4 * 16384.0, 8)
    biopsy = WsiConfig(preset="biopsy", close_um=5.0)  # an explicit value beats the preset
    assert (biopsy.saturation_threshold, biopsy.median_blur_px, biopsy.close_um, biopsy.max_n_holes) == (15, 11, 5.0, 2)
    assert WsiConfig(preset="resection").min_tissue_area_um2 == 100 * 16384.0
    # Snakemake fills schema defaults (null) into the config: the preset still applies
    cfg = parse_config({"wsi": {"preset": "tcga", "seg_mpp": None, "saturation_threshold": None}})
    assert cfg.wsi.seg_mpp == 16.0 and cfg.wsi.saturation_threshold == 8
    # a snapshot (model_dump) parses back to the same parameters
    assert WsiConfig.model_validate(tcga.model_dump()) == tcga
    with pytest.raises(ConfigError, match=r"wsi\.preset.*'tcga', 'biopsy' or 'resection'"):
        parse_config({"wsi": {"preset": "TCGA-fast"}})


def test_presets_change_segmentation(synthetic_slides: dict[str, Path], tmp_path: Path) -> None:
    """The synthetic tissue blobs (< 0.2 mm² each) pass the biopsy area filter but not the resection one."""
    slide = synthetic_slides["20x"]
    out = {}
    for preset in ("biopsy", "resection"):
        out[preset] = patch_slide_(slide_path=slide, cfg=WsiConfig(preset=preset), out_coords=tmp_path / f"{preset}.h5",
                                   out_qc=tmp_path / f"{preset}.png", out_status=tmp_path / f"{preset}.json")
    assert out["biopsy"]["status"] == "ok" and out["biopsy"]["preset"] == "biopsy" and out["biopsy"]["seg_threshold"] == 15
    assert out["resection"]["status"] == "skipped" and out["resection"]["reason"] == "no_tissue"
    params = json.loads(read_coords_h5(tmp_path / "biopsy.h5").attrs["parameters"])
    assert params["preset"] == "biopsy" and params["seg_mpp"] == 16.0 and params["min_tissue_area_um2"] == 16384.0


def _csv(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "overrides.csv"
    p.write_text(text)
    return p


def test_read_overrides_and_slide_config(tmp_path: Path) -> None:
    p = _csv(tmp_path, "slide_id,mpp,saturation_threshold,preset,close_um\n"
                       "s1,0.25,,,\n s2 ,,otsu,,12.5\ns3,,,biopsy,\n")
    ov = read_overrides(p)
    assert ov == {"s1": {"mpp": 0.25}, "s2": {"saturation_threshold": "otsu", "close_um": 12.5}, "s3": {"preset": "biopsy"}}
    base = WsiConfig(preset="tcga")
    cfg, mpp, cols = slide_config(base, "s1", ov)
    assert cfg == base and mpp == 0.25 and cols == ["mpp"]
    cfg, mpp, cols = slide_config(base, "s2", ov)
    assert (cfg.saturation_threshold, cfg.close_um, cfg.seg_mpp, mpp) == ("otsu", 12.5, 16.0, None)
    assert cols == ["close_um", "saturation_threshold"]
    cfg, _, _ = slide_config(base, "s3", ov)  # a preset cell re-applies that preset
    assert (cfg.preset, cfg.saturation_threshold, cfg.max_n_holes) == ("biopsy", 15, 2)
    assert slide_config(base, "other", ov) == (base, None, [])


@pytest.mark.parametrize("text,needle", [
    ("slide_id,close_uum\ns1,3\n", r"unknown column 'close_uum'.*close_um"),
    ("slide,mpp\ns1,0.5\n", r"no 'slide_id' column"),
    ("slide_id,mpp\ns1,0.5\ns1,0.25\n", r"'s1' appears twice"),
    ("slide_id,mpp\ns1,-0.5\n", r"slide 's1', column 'mpp' = -0.5"),
    ("slide_id,median_blur_px\ns1,0.5\ns2,zero\n", r"slide 's1', column 'median_blur_px' = 0.5"),
    ("slide_id,saturation_threshold\ns9,400\n", r"slide 's9', column 'saturation_threshold' = 400"),
    ("slide_id,overrides_csv\ns1,x.csv\n", r"unknown column 'overrides_csv'"),
])
def test_bad_overrides_name_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=r"wsi\.overrides_csv.*" + needle):
        read_overrides(_csv(tmp_path, text))


def test_unknown_slide_and_missing_file(tmp_path: Path) -> None:
    ov = read_overrides(_csv(tmp_path, "slide_id,mpp\nTCGA-AA-0001-01Z-00-DX2,0.5\n"))
    with pytest.raises(ConfigError, match=r"'TCGA-AA-0001-01Z-00-DX2' \(did you mean 'TCGA-AA-0001-01Z-00-DX1'\?\)"):
        check_override_slides(ov, ["TCGA-AA-0001-01Z-00-DX1", "TCGA-BB-0002-01Z-00-DX1"], path="o.csv")
    check_override_slides(ov, ["TCGA-AA-0001-01Z-00-DX2"], path="o.csv")
    with pytest.raises(ConfigError, match=r"wsi\.overrides_csv.*file not found"):
        read_overrides(tmp_path / "absent.csv")


def test_overrides_csv_in_patching(tcga_no_mpp_slide: Path, synthetic_slides: dict[str, Path], tmp_path: Path) -> None:
    """An mpp cell rescues a slide without mpp; other rows leave other slides alone; --mpp beats the CSV."""
    csv = _csv(tmp_path, f"slide_id,mpp,min_tissue_fraction\n{tcga_no_mpp_slide.stem},0.25,0.9\n"
                         f"{synthetic_slides['20x'].stem},,\n")
    cfg = WsiConfig(overrides_csv=str(csv))

    def run(slide: Path, name: str, **kw: object) -> dict:
        return patch_slide_(slide_path=slide, cfg=cfg, out_coords=tmp_path / f"{name}.h5", out_qc=tmp_path / f"{name}.png",
                            out_status=tmp_path / f"{name}.json", **kw)

    rec = run(tcga_no_mpp_slide, "tcga")
    assert rec["status"] == "ok" and rec["mpp_source"] == "override" and rec["mpp_level0"] == 0.25
    assert rec["overrides"] == ["min_tissue_fraction", "mpp"]
    a = read_coords_h5(tmp_path / "tcga.h5").attrs
    assert (a["patch_size_level0"], a["read_level"], a["read_size"]) == (512, 1, 256)
    assert json.loads(a["parameters"])["min_tissue_fraction"] == 0.9
    assert run(tcga_no_mpp_slide, "cli", mpp_override=0.5)["mpp_level0"] == 0.5
    assert run(synthetic_slides["20x"], "syn")["overrides"] == []
