"""MCAT's fidelity settings: SNN activation (SELU default, ELU original) and the post-pooling FC (path_rho/omic_rho)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gliofuse.errors import ConfigError
from gliofuse.models.heads import build_head
from gliofuse.models.registry import create_model, get_model_card
from tests.unit.models.test_model_baselines import DIMS, SETS, SMALL, toy_batch


def _mcat(seed: int = 0, **kw: object) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("mcat", input_dims=DIMS, **{**SMALL["mcat"], **kw})


def _n(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _mcat_paper(sizes: dict[str, int]) -> nn.Module:
    """MCAT at the paper sizes (1024-d features), default settings."""
    return create_model("mcat", input_dims={"wsi": 1024, "omics": 1, **{f"omics:{k}": v for k, v in sizes.items()}})


def lin(i: int, o: int) -> int:
    """Parameters of a Linear(i, o) with bias."""
    return i * o + o


def _activations(model: nn.Module) -> list[type[nn.Module]]:
    return [type(m) for m in model.modules() if isinstance(m, nn.SELU | nn.ELU)]


def test_defaults_are_unchanged_selu_and_no_post_pool_fc() -> None:
    defaults = get_model_card("mcat").defaults
    assert defaults["snn_activation"] == "selu" and defaults["post_pool_fc"] is False
    default = _mcat()
    explicit = _mcat(snn_activation="selu", post_pool_fc=False)
    assert _activations(default) == [nn.SELU] * (2 * len(SETS))
    assert not any("rho" in k for k in default.state_dict())
    batch = toy_batch([7, 3, 11, 5, 9, 4])
    with torch.no_grad():
        assert torch.equal(default.eval()(batch).embedding, explicit.eval()(batch).embedding)


def test_original_activation_and_post_pool_fc() -> None:
    orig = _mcat(seed=1, snn_activation="elu", post_pool_fc=True).eval()
    plain = _mcat(seed=1).eval()
    assert _activations(orig) == [nn.ELU] * (2 * len(SETS))
    for rho in (orig.extractor.path_rho, orig.extractor.omics_rho):
        assert [type(m) for m in rho] == [nn.Linear, nn.ReLU, nn.Dropout] and rho[2].p == 0.25
    # same weights apart from the activation and the two rho layers
    missing, unexpected = plain.load_state_dict(orig.state_dict(), strict=False)
    assert not missing and sorted(unexpected) == sorted(f"extractor.{m}_rho.0.{p}" for m in ("path", "omics")
                                                          for p in ("weight", "bias"))
    plain.extractor.genomic = orig.extractor.genomic  # the ELU encoders
    batch = toy_batch([7, 3, 11, 5, 9, 4], seed=2)
    with torch.no_grad():
        a, b = orig(batch), plain(batch)
        # rho acts on each pooled embedding, before the concat MLP
        torch.testing.assert_close(a.modality_embeddings["wsi"], orig.extractor.path_rho(b.modality_embeddings["wsi"]))
        torch.testing.assert_close(a.modality_embeddings["omics"],
                                   orig.extractor.omics_rho(b.modality_embeddings["omics"]))
        torch.testing.assert_close(a.embedding, orig.fuse(torch.cat([a.modality_embeddings["wsi"],
                                                                     a.modality_embeddings["omics"]], dim=1)))


def test_parameter_count_matches_the_original_by_hand() -> None:
    """MCAT_Surv (concat, 'small': 1024 -> 256, six SNNs 2 x 256, 4 bins), counted from its structure."""
    e, ff, wsi, bins = 256, 512, 1024, 4
    sizes = dict(zip(SETS, (94, 334, 521, 468, 1496, 479), strict=True))  # any six signature sizes
    original = {
        "wsi_net": lin(wsi, e),
        "sig_networks": sum(lin(s, e) + lin(e, e) for s in sizes.values()),
        "coattn": lin(e, 3 * e) + lin(e, e),  # MultiheadAttention(256, 1): in_proj + out_proj
        "transformer": 2 * (lin(e, 3 * e) + lin(e, e) + lin(e, ff) + lin(ff, e) + 2 * 2 * e),  # 2 post-norm layers
        "attention_head": 2 * lin(e, e) + lin(e, 1),  # Attn_Net_Gated(256, 256, n_classes=1)
        "rho": lin(e, e),
        "mm": lin(2 * e, e) + lin(e, e),
        "classifier": lin(e, bins),
    }
    total = (original["wsi_net"] + original["sig_networks"] + original["coattn"] + original["mm"]
             + original["classifier"] + 2 * (original["transformer"] + original["attention_head"] + original["rho"]))
    # by hand: 262,400 + 6 x 66,048 + 263,168 + 197,120 + 1,028 + 2 x (1,054,208 + 131,841 + 65,792) + 256 sum(G_s)
    assert total == 3_623_686 + 256 * sum(sizes.values())
    torch.manual_seed(0)
    model = create_model("mcat", input_dims={"wsi": wsi, "omics": 1, **{f"omics:{k}": v for k, v in sizes.items()}},
                         snn_activation="elu", post_pool_fc=True)
    ex = model.extractor
    head = build_head("survival", model.embed_dim, survival_loss="nll", n_bins=bins)
    assert _n(ex.wsi_proj) == original["wsi_net"]
    assert _n(ex.genomic) == original["sig_networks"]
    assert _n(ex.coattn) == original["coattn"]
    assert _n(ex.path_rho) == _n(ex.omics_rho) == original["rho"]
    assert _n(model.fuse) == original["mm"] and _n(head) == original["classifier"]
    for enc, pool in ((ex.path_encoder, ex.path_pool), (ex.omics_encoder, ex.omics_pool)):
        # documented deviations: pre-norm layers end with a LayerNorm (2 e); the gated-attention score layer has
        # no bias (softmax is shift-invariant, so the original's bias never changes the output)
        assert _n(enc.blocks) == original["transformer"] and _n(enc.norm) == 2 * e
        assert _n(pool) == original["attention_head"] - 1
    assert _n(model) + _n(head) == total + 2 * (2 * e) - 2
    assert _n(model) - _n(_mcat_paper(sizes)) == 2 * original["rho"]


def test_bad_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match="snn_activation"):
        _mcat(snn_activation="relu")
    with pytest.raises(ConfigError, match="post_pool_fc"):
        _mcat(post_pool_fc="yes")
