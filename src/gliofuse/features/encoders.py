"""Patch encoder registry: name → (model, embedding size, input size, normalisation).

Models are always built with ``pretrained=False`` (nothing is downloaded); real weights come from a
local file (``features.weights``). Names: ``test_resnet``, ``test_vit`` (timm's tiny test models,
for tests and the demo), ``resnet50_trunc`` (ResNet-50 up to layer3 + global average pool, 1024-d,
CLAM-style) and ``timm:<model name>`` for any timm architecture.
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
    """

    name: str
    model: nn.Module
    embed_dim: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class _Built:
    model: nn.Module
    embed_dim: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    #: state-dict key prefixes a weights file may carry that the model does not have (dropped heads)
    ignore_prefixes: tuple[str, ...] = ()


def _timm_encoder(arch: str) -> _Built:
    import timm
    from timm.data import resolve_data_config

    model = timm.create_model(arch, pretrained=False, num_classes=0)
    dc = resolve_data_config({}, model=model)
    _, h, w = dc["input_size"]
    if h != w:
        raise ConfigError(f"features.encoder: timm model {arch!r} has a non-square input {h}x{w}; not supported.")
    dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
    return _Built(model=model, embed_dim=dim, input_size=int(h), mean=tuple(dc["mean"]), std=tuple(dc["std"]),
                  ignore_prefixes=("head.", "fc.", "classifier."))


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


def _resnet50_trunc() -> _Built:
    import timm

    full = timm.create_model("resnet50", pretrained=False, num_classes=0)
    model = TruncatedResNet(full)
    return _Built(model=model, embed_dim=1024, input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  ignore_prefixes=("layer4.", "fc."))


REGISTRY: dict[str, Callable[[], _Built]] = {
    "test_resnet": lambda: _timm_encoder("test_resnet"),
    "test_vit": lambda: _timm_encoder("test_vit"),
    "resnet50_trunc": _resnet50_trunc,
}
TIMM_PREFIX = "timm:"


def list_encoders() -> list[str]:
    """Registered encoder names (plus any ``timm:<name>``)."""
    return sorted(REGISTRY)


def _builder(name: str) -> Callable[[], _Built]:
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith(TIMM_PREFIX):
        import timm

        arch = name[len(TIMM_PREFIX):]
        if arch in timm.list_models():
            return lambda: _timm_encoder(arch)
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


def create_encoder(name: str, *, weights: str | None) -> Encoder:
    """Build an encoder by name (never downloads).

    Parameters
    ----------
    name : registry name or ``timm:<model name>``.
    weights : local ``.safetensors``/``.pth``/``.pt`` file, or None for random initialisation
        (seed torch first for reproducible random weights).

    Raises
    ------
    ConfigError : unknown name (with close matches), missing or mismatching weights file.
    """
    build = _builder(name)
    if weights is not None and not Path(weights).is_file():
        raise ConfigError(f"features.weights = {str(weights)!r}: file not found. Give the path of a local "
                          ".safetensors/.pth file (nothing is downloaded), or null for random init (tests only).")
    built = build()
    if weights is not None:
        load_weights_(built.model, weights, ignore_prefixes=built.ignore_prefixes)
    built.model.eval()
    return Encoder(name=name, model=built.model, embed_dim=built.embed_dim, input_size=built.input_size,
                   mean=tuple(float(m) for m in built.mean), std=tuple(float(s) for s in built.std))
