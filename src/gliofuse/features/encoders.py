"""Patch encoder registry: name → (model, embedding size, input size, normalisation, resize filter).

Models are always built with ``pretrained=False`` (nothing is downloaded); real weights come from a
local file (``features.weights``). Registered names:

* ``test_resnet``, ``test_vit``: timm's tiny test models (tests and the demo);
* ``resnet50_trunc``: ResNet-50 up to layer3 + global average pool, 1024-d (CLAM-style);
* ``vit_s16`` / ``vit_b16`` / ``vit_l16`` / ``vit_h14``: plain timm ViT-S/16, B/16, L/16, H/14 at 224 px
  (384 / 768 / 1024 / 1280-d) with ImageNet normalisation;
* ``uni_v1``: ViT-L/16 with LayerScale (``init_values=1e-5``), 1024-d — the UNI architecture;
* ``uni2_h``: ViT-g/14-style (1536-d, 24 blocks, SwiGLU, 8 register tokens) — the UNI2-h architecture;
* ``virchow`` / ``virchow2``: ViT-H/14 with SwiGLU (mlp_ratio 5.3375), output = concat(class token,
  mean patch token), 2560-d (``virchow2`` adds 4 register tokens);
* ``timm:<model name>``: any timm architecture with timm's own preprocessing.

``features.encoder_kwargs`` are passed to ``timm.create_model`` (e.g. ``{depth: 2}`` for fast tests).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gliofuse.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Encoder:
    """A patch encoder.

    Attributes
    ----------
    name : registry name.
    model : module mapping (B, 3, input_size, input_size) float → (B, embed_dim) float, in eval mode.
    embed_dim : D.
    input_size : side in px of the (square) model input.
    mean, std : per-channel normalisation applied to RGB in [0, 1].
    interpolation : ``bilinear`` or ``bicubic``, the filter that resizes patches to ``input_size``.
    """

    name: str
    model: nn.Module
    embed_dim: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class _Built:
    model: nn.Module
    embed_dim: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    #: state-dict key prefixes a weights file may carry that the model does not have (dropped heads)
    ignore_prefixes: tuple[str, ...] = ()
    #: the module the weights file is loaded into (default: ``model``)
    load_target: nn.Module | None = None


def _timm_encoder(arch: str, **kwargs: Any) -> _Built:
    import timm
    from timm.data import resolve_data_config

    model = _create(arch, **kwargs)
    dc = resolve_data_config({}, model=model)
    _, h, w = dc["input_size"]
    if h != w:
        raise ConfigError(f"features.encoder: timm model {arch!r} has a non-square input {h}x{w}; not supported.")
    dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
    interp = "bicubic" if dc.get("interpolation") == "bicubic" else "bilinear"
    del timm
    return _Built(model=model, embed_dim=dim, input_size=int(h), mean=tuple(dc["mean"]), std=tuple(dc["std"]),
                  interpolation=interp, ignore_prefixes=("head.", "fc.", "classifier."))


def _create(arch: str, **kwargs: Any) -> nn.Module:
    import timm

    try:
        return timm.create_model(arch, pretrained=False, **{"num_classes": 0, **kwargs})
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"features.encoder_kwargs {kwargs} do not fit timm model {arch!r}: "
                          f"{type(exc).__name__}: {exc}") from None


class TruncatedResNet(nn.Module):
    """ResNet stem + layer1..layer3 + global average pool (CLAM's ``resnet50_trunc``): (B, 3, H, W) → (B, C3).

    Submodule names match timm/torchvision ResNets, so a full ResNet state dict loads after dropping
    ``layer4.*`` and ``fc.*``.
    """

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.conv1, self.bn1, self.act1, self.maxpool = resnet.conv1, resnet.bn1, resnet.act1, resnet.maxpool
        self.layer1, self.layer2, self.layer3 = resnet.layer1, resnet.layer2, resnet.layer3
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return torch.flatten(self.pool(x), 1)


class ClassMeanTokens(nn.Module):
    """ViT returning all tokens (B, T, C) → concat(class token, mean of patch tokens) (B, 2C) (Virchow-style)."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit
        self.n_prefix = int(getattr(vit, "num_prefix_tokens", 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.vit(x)
        return torch.cat([tokens[:, 0], tokens[:, self.n_prefix:].mean(1)], dim=-1)


def _resnet50_trunc(**kwargs: Any) -> _Built:
    full = _create("resnet50", **kwargs)
    model = TruncatedResNet(full)
    with torch.no_grad():
        dim = int(model(torch.zeros(1, 3, 64, 64)).shape[1])
    return _Built(model=model, embed_dim=dim, input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  ignore_prefixes=("layer4.", "fc."))


def _vit(arch: str, *, interpolation: str = "bilinear", class_mean: bool = False,
         defaults: dict[str, Any] | None = None) -> Callable[..., _Built]:
    """Builder of a ViT at 224 px with ImageNet normalisation; ``class_mean``: Virchow-style output."""

    def build(**kwargs: Any) -> _Built:
        kw = {**(defaults or {}), **kwargs}
        if class_mean:
            kw["global_pool"] = ""
        vit = _create(arch, **kw)
        model: nn.Module = ClassMeanTokens(vit) if class_mean else vit
        dim = int(vit.num_features) * (2 if class_mean else 1)
        return _Built(model=model, embed_dim=dim, input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      interpolation=interpolation, ignore_prefixes=("head.",), load_target=vit)

    return build


def _swiglu() -> dict[str, Any]:
    from timm.layers import SwiGLUPacked

    return {"mlp_layer": SwiGLUPacked, "act_layer": nn.SiLU}


def _lazy(fn: Callable[[], dict[str, Any]], arch: str, **opts: Any) -> Callable[..., _Built]:
    return lambda **kwargs: _vit(arch, defaults=fn(), **opts)(**kwargs)


REGISTRY: dict[str, Callable[..., _Built]] = {
    "test_resnet": lambda **kw: _timm_encoder("test_resnet", **kw),
    "test_vit": lambda **kw: _timm_encoder("test_vit", **kw),
    "resnet50_trunc": _resnet50_trunc,
    "vit_s16": _vit("vit_small_patch16_224"),
    "vit_b16": _vit("vit_base_patch16_224"),
    "vit_l16": _vit("vit_large_patch16_224"),
    "vit_h14": _vit("vit_huge_patch14_224"),
    "uni_v1": _vit("vit_large_patch16_224", defaults={"init_values": 1e-5}),
    "uni2_h": _lazy(lambda: {"embed_dim": 1536, "depth": 24, "num_heads": 24, "mlp_ratio": 2.66667 * 2,
                             "init_values": 1e-5, "no_embed_class": True, "reg_tokens": 8, **_swiglu()},
                    "vit_giant_patch14_224"),
    "virchow": _lazy(lambda: {"mlp_ratio": 5.3375, "init_values": 1e-5, **_swiglu()}, "vit_huge_patch14_224",
                     interpolation="bicubic", class_mean=True),
    "virchow2": _lazy(lambda: {"mlp_ratio": 5.3375, "init_values": 1e-5, "reg_tokens": 4, **_swiglu()},
                      "vit_huge_patch14_224", interpolation="bicubic", class_mean=True),
}
TIMM_PREFIX = "timm:"


def list_encoders() -> list[str]:
    """Registered encoder names (plus any ``timm:<name>``)."""
    return sorted(REGISTRY)


def _builder(name: str) -> Callable[..., _Built]:
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith(TIMM_PREFIX):
        import timm

        arch = name[len(TIMM_PREFIX):]
        if arch in timm.list_models():
            return lambda **kw: _timm_encoder(arch, **kw)
        close = difflib.get_close_matches(arch, timm.list_models(), n=5)
        raise ConfigError(f"features.encoder = {name!r}: timm has no model {arch!r}. "
                          f"Close matches: {[TIMM_PREFIX + c for c in close] or 'none'}.")
    close = difflib.get_close_matches(name, list(REGISTRY), n=5)
    raise ConfigError(f"features.encoder = {name!r} is unknown. Close matches: {close or 'none'}. "
                      f"Known: {list_encoders()}, or 'timm:<timm model name>'.")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ConfigError(f"features.weights = {str(path)!r} is a .safetensors file but the 'safetensors' "
                              "package is not installed; pip install safetensors or convert it to .pth.") from None
        return load_file(str(path), device="cpu")
    if suffix in (".pth", ".pt", ".bin", ".ckpt"):
        try:
            obj: Any = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a config problem
            raise ConfigError(f"features.weights = {str(path)!r} cannot be loaded with torch.load(weights_only=True) "
                              f"({type(exc).__name__}: {exc}).") from None
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj, dict) and isinstance(obj.get(key), dict):
                obj = obj[key]
        if not isinstance(obj, dict):
            raise ConfigError(f"features.weights = {str(path)!r} holds a {type(obj).__name__}, not a state dict.")
        return obj
    raise ConfigError(f"features.weights = {str(path)!r}: unsupported extension {suffix!r}; "
                      "use .safetensors, .pth or .pt.")


def _strip_prefix(sd: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    for prefix in ("module.", "model.", "trunk.", "encoder."):
        if not (set(sd) & expected) and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def load_weights_(model: nn.Module, path: str | Path, *, ignore_prefixes: tuple[str, ...] = ()) -> None:
    """Load a local weights file into ``model`` (strict, except keys under ``ignore_prefixes``)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"features.weights = {str(p)!r}: file not found. Give the path of a local "
                          ".safetensors/.pth file (nothing is downloaded), or null for random init (tests only).")
    expected = set(model.state_dict())
    sd = _strip_prefix(_read_state_dict(p), expected)
    sd = {k: v for k, v in sd.items() if k in expected or not k.startswith(ignore_prefixes)}
    missing = sorted(expected - set(sd))
    unexpected = sorted(set(sd) - expected)
    if missing or unexpected:
        raise ConfigError(f"features.weights = {str(p)!r} does not match the encoder: missing keys {missing[:5]}"
                          f"{'...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
                          f"{'...' if len(unexpected) > 5 else ''}.")
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"features.weights = {str(p)!r} does not fit the encoder: {str(exc)[:500]}") from None


def create_encoder(name: str, *, weights: str | None, kwargs: dict[str, Any] | None = None) -> Encoder:
    """Build an encoder by name (never downloads).

    Parameters
    ----------
    name : registry name or ``timm:<model name>``.
    weights : local ``.safetensors``/``.pth``/``.pt`` file, or None for random initialisation
        (seed torch first for reproducible random weights).
    kwargs : architecture overrides for ``timm.create_model`` (``features.encoder_kwargs``).

    Raises
    ------
    ConfigError : unknown name (with close matches), bad kwargs, missing or mismatching weights file.
    """
    build = _builder(name)
    if weights is not None and not Path(weights).is_file():
        raise ConfigError(f"features.weights = {str(weights)!r}: file not found. Give the path of a local "
                          ".safetensors/.pth file (nothing is downloaded), or null for random init (tests only).")
    built = build(**(kwargs or {}))
    if weights is not None:
        load_weights_(built.load_target or built.model, weights, ignore_prefixes=built.ignore_prefixes)
    built.model.eval()
    return Encoder(name=name, model=built.model, embed_dim=built.embed_dim, input_size=built.input_size,
                   mean=tuple(float(m) for m in built.mean), std=tuple(float(s) for s in built.std),
                   interpolation=built.interpolation)
