"""Encoder registry: names, shapes, local weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gliofuse.errors import ConfigError
from gliofuse.features.encoders import create_encoder, list_encoders


@pytest.mark.parametrize("name,dim", [("test_resnet", 96), ("test_vit", 64)])
def test_tiny_encoders(name: str, dim: int) -> None:
    enc = create_encoder(name, weights=None)
    assert (enc.embed_dim, enc.input_size) == (dim, 160)
    assert enc.mean == (0.5, 0.5, 0.5) and enc.std == (0.5, 0.5, 0.5)
    with torch.inference_mode():
        y = enc.model(torch.randn(3, 3, enc.input_size, enc.input_size))
    assert y.shape == (3, dim)
    assert not enc.model.training


def test_timm_prefix() -> None:
    enc = create_encoder("timm:test_efficientnet", weights=None)
    with torch.inference_mode():
        assert enc.model(torch.randn(2, 3, 160, 160)).shape == (2, enc.embed_dim)


def test_unknown_encoder_names_key_and_close_matches() -> None:
    with pytest.raises(ConfigError, match=r"features\.encoder.*test_resnet"):
        create_encoder("test_resnt", weights=None)
    with pytest.raises(ConfigError, match=r"features\.encoder.*timm:resnet18"):
        create_encoder("timm:resnet_18", weights=None)
    assert {"test_resnet", "test_vit", "resnet50_trunc"} <= set(list_encoders())


def test_missing_weights_file_names_key_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "uni.pth"
    with pytest.raises(ConfigError, match=r"features\.weights.*nowhere/uni\.pth"):
        create_encoder("test_resnet", weights=str(missing))


def test_weights_roundtrip_pth_and_safetensors(tmp_path: Path) -> None:
    torch.manual_seed(7)
    ref = create_encoder("test_resnet", weights=None)
    pth = tmp_path / "w.pth"
    torch.save({"state_dict": ref.model.state_dict()}, pth)  # wrapped, as checkpoints often are
    x = torch.randn(5, 3, 160, 160)
    torch.manual_seed(99)  # different random init: the file must override it
    loaded = create_encoder("test_resnet", weights=str(pth))
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(x), ref.model(x), rtol=0, atol=0)
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in ref.model.state_dict().items()}, str(st))
    with torch.inference_mode():
        torch.testing.assert_close(create_encoder("test_resnet", weights=str(st)).model(x), ref.model(x),
                                   rtol=0, atol=0)


def test_mismatching_weights(tmp_path: Path) -> None:
    other = create_encoder("test_vit", weights=None)
    p = tmp_path / "vit.pt"
    torch.save(other.model.state_dict(), p)
    with pytest.raises(ConfigError, match=r"features\.weights.*missing keys"):
        create_encoder("test_resnet", weights=str(p))
    bad = tmp_path / "w.npz"
    bad.write_bytes(b"x")
    with pytest.raises(ConfigError, match="unsupported extension"):
        create_encoder("test_resnet", weights=str(bad))


def test_resnet50_trunc_loads_full_resnet_weights(tmp_path: Path) -> None:
    import timm

    full = timm.create_model("resnet50", pretrained=False)  # with layer4 and fc, like ImageNet checkpoints
    p = tmp_path / "resnet50.pth"
    torch.save(full.state_dict(), p)
    enc = create_encoder("resnet50_trunc", weights=str(p))
    assert (enc.embed_dim, enc.input_size) == (1024, 224)
    x = torch.randn(1, 3, 97, 97)  # any size works thanks to the global pool
    with torch.inference_mode():
        y = enc.model(x)
        full.eval()
        z = full.forward_intermediates(x, indices=[3], intermediates_only=True)[0].mean((2, 3))
    assert y.shape == (1, 1024)
    torch.testing.assert_close(y, z)


@pytest.mark.parametrize("name,dim,interp", [
    ("vit_s16", 384, "bilinear"), ("vit_b16", 768, "bilinear"), ("vit_l16", 1024, "bilinear"),
    ("uni_v1", 1024, "bilinear"), ("vit_h14", 1280, "bilinear"), ("uni2_h", 1536, "bilinear"),
    ("virchow", 2560, "bicubic"), ("virchow2", 2560, "bicubic"),
])
def test_vit_registry_at_reduced_depth(name: str, dim: int, interp: str) -> None:
    """UNI/CONCH/Virchow-class ViTs build at random init (one block, for speed) with their embedding size
    and preprocessing (224 px, ImageNet mean/std)."""
    enc = create_encoder(name, weights=None, kwargs={"depth": 1})
    assert (enc.embed_dim, enc.input_size, enc.interpolation) == (dim, 224, interp)
    assert enc.mean == pytest.approx((0.485, 0.456, 0.406)) and enc.std == pytest.approx((0.229, 0.224, 0.225))
    assert len(enc.model.vit.blocks if name.startswith("virchow") else enc.model.blocks) == 1
    with torch.inference_mode():
        assert enc.model(torch.randn(1, 3, 224, 224)).shape == (1, dim)


def test_vit_weights_load_into_backbone(tmp_path: Path) -> None:
    """Checkpoints hold the timm backbone's keys (as UNI/Virchow releases do), also for wrapped outputs."""
    for name in ("uni_v1", "virchow2"):
        torch.manual_seed(3)
        ref = create_encoder(name, weights=None, kwargs={"depth": 1, "embed_dim": 64, "num_heads": 2, "mlp_ratio": 4.0})
        backbone = ref.model.vit if name == "virchow2" else ref.model
        p = tmp_path / f"{name}.pth"
        torch.save(backbone.state_dict(), p)
        torch.manual_seed(4)
        loaded = create_encoder(name, weights=str(p), kwargs={"depth": 1, "embed_dim": 64, "num_heads": 2, "mlp_ratio": 4.0})
        x = torch.randn(2, 3, 224, 224)
        with torch.inference_mode():
            torch.testing.assert_close(loaded.model(x), ref.model(x), rtol=0, atol=0)
    with pytest.raises(ConfigError, match=r"features\.encoder_kwargs.*vit_large_patch16_224"):
        create_encoder("vit_l16", weights=None, kwargs={"no_such_arg": 1})
