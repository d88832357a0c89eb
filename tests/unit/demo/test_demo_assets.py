"""Shipped demo assets, the gene model and the missing-asset error."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from gliofuse.config import DemoConfig
from gliofuse.demo import resources
from gliofuse.demo.build import generate_cohort_
from gliofuse.demo.expression import GENE_SETS, gene_model
from gliofuse.demo.plan import rng_for
from gliofuse.demo.tissue import synthesize_slide
from gliofuse.errors import InputDataError


def test_assets_are_small_and_documented():
    paths = resources.asset_paths()
    for p in paths:
        assert p.stat().st_size <= 150_000, p
    readme = (resources.ASSETS_DIR / "README.md").read_text()
    for name in resources.TEXTURE_FILES.values():
        assert name in readme
    textures = resources.load_textures()
    assert set(textures) == {"gbm_a", "gbm_b", "lgg"}
    for t in textures.values():
        assert t.dtype == np.float32 and t.shape == (512, 512, 3)
    assert len(resources.load_gene_symbols()) > 3000


@pytest.mark.parametrize("missing", [*resources.TEXTURE_FILES.values(), resources.GENE_SYMBOLS_FILE])
def test_missing_asset_raises_input_data_error(missing, tmp_path, monkeypatch):
    assets = tmp_path / "assets"
    shutil.copytree(resources.ASSETS_DIR, assets)
    (assets / missing).unlink()
    monkeypatch.setattr(resources, "ASSETS_DIR", assets)
    with pytest.raises(InputDataError, match=r"git checkout src/gliofuse/demo/assets") as exc:
        generate_cohort_(seed=1, cfg=DemoConfig(n_patients=6), out_dir=tmp_path / "out", progress=False,
                         workers=1)
    assert missing in str(exc.value)
    assert not (tmp_path / "out" / "slides").exists()  # failed before writing anything


def test_gene_model_deterministic_unique_and_scales():
    gene_model.cache_clear()
    a = gene_model(600)
    gene_model.cache_clear()
    b = gene_model(600)
    assert (a.gene_id == b.gene_id).all() and (a.gene_name == b.gene_name).all()
    assert len(set(a.gene_id)) == 600 and len(set(a.gene_name)) == 600
    for name, genes in GENE_SETS.items():
        assert set(a.gene_name[a.gene_set == name]) == set(genes)
    big = gene_model(5000)  # more genes than shipped symbols: synthetic names fill in
    assert len(set(big.gene_name)) == 5000 and len({g.split(".")[0] for g in big.gene_id}) == 5000
    tiny = gene_model(50)
    assert all((tiny.gene_set == s).sum() >= 3 for s in GENE_SETS)


def test_tissue_synthesis_is_deterministic_and_latent_driven():
    tex = resources.load_textures()
    kw = {"width_um": 400.0, "height_um": 300.0, "mpp": 0.5, "textures": tex}
    a = synthesize_slide(rng=rng_for(1, "t"), z_tumour=0.0, z_micro=0.0, **kw)
    b = synthesize_slide(rng=rng_for(1, "t"), z_tumour=0.0, z_micro=0.0, **kw)
    assert a.shape == (600, 800, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    hi = synthesize_slide(rng=rng_for(1, "t"), z_tumour=2.0, z_micro=0.0, **kw)
    lo = synthesize_slide(rng=rng_for(1, "t"), z_tumour=-2.0, z_micro=0.0, **kw)

    def tissue_darkness(img: np.ndarray) -> float:
        tissue = (img.max(2).astype(int) - img.min(2)) > 25
        return float(255 - img[tissue].mean())

    assert tissue_darkness(hi) > tissue_darkness(lo) + 8
    big = synthesize_slide(rng=rng_for(1, "t"), z_tumour=0.0, z_micro=0.0, width_um=400.0, height_um=300.0,
                           mpp=0.25, textures=tex)
    assert big.shape == (1200, 1600, 3)
