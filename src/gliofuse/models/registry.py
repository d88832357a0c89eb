"""Model registry: ``@register_model`` on tiny variant functions, ``create_model`` by name.

Shape follows timm's registry: one decorated function per variant, keyed by the function's
name; a frozen :class:`ModelCard` says what the model needs (modalities), what it supports
(tasks), its hyper-parameter defaults and where it comes from.

Every family module is imported by ``gliofuse/models/__init__.py``; because importing this
module imports its parent package first, ``from gliofuse.models.registry import list_models``
always sees every registered model.
"""

from __future__ import annotations

import difflib
import fnmatch
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from gliofuse.ablations import ABLATIONS
from gliofuse.errors import ConfigError
from gliofuse.tasks import TASK_NAMES

if TYPE_CHECKING:
    from gliofuse.models.base import FusionModel

MODALITIES: tuple[str, ...] = ("wsi", "omics")


@dataclass(frozen=True)
class ModelCard:
    """What a registered model needs and where it comes from.

    Attributes
    ----------
    name : registry name (the decorated function's name); one results-table row per name.
    family : architecture family, e.g. ``"mil"``, ``"snn"``, ``"concat_fusion"``.
    modalities : inputs the model reads, a subset of ``("wsi", "omics")``.
    tasks : tasks the model may be trained for, a subset of ``("survival", "grade", "diagnosis")``.
    defaults : hyper-parameter defaults; ``create_model`` overrides must use these keys.
    reference : paper (DOI / arXiv id) the architecture follows.
    ablation_of : name of the full model this variant ablates, if any.
    notes : how the paper was read, deviations, caveats.
    max_inference_patches : patches per bag at validation and prediction when ``training.inference_max_patches``
        is null (a fixed seeded subsample, as with the setting); None: every patch. Set by models whose memory
        grows with the square of the bag (self-attention over every patch): exact attention over a TCGA patient's
        ~10^5 patches would need 8 heads x N^2 x 4 B ~ 320 GB.
    """

    name: str
    family: str
    modalities: tuple[str, ...]
    tasks: tuple[str, ...]
    defaults: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    reference: str = ""
    ablation_of: str | None = None
    notes: str = ""
    max_inference_patches: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view (for checkpoints and ``gliofuse models list``)."""
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        d["tasks"] = list(self.tasks)
        return d


@dataclass(frozen=True)
class _Entry:
    fn: Callable[..., FusionModel]
    card: ModelCard


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    *, family: str, modalities: Iterable[str], tasks: Iterable[str], reference: str,
    defaults: Mapping[str, Any] | None = None, ablation_of: str | None = None, notes: str = "",
    max_inference_patches: int | None = None,
) -> Callable[[Callable[..., FusionModel]], Callable[..., FusionModel]]:
    """Register a model variant under its function name.

    The decorated function is called as ``fn(input_dims=..., **params)`` where ``params`` are
    the card ``defaults`` updated with the caller's overrides. Registering a name twice warns
    and replaces the earlier entry.

    Parameters
    ----------
    family, modalities, tasks, reference, defaults, ablation_of, notes, max_inference_patches
        Fields of the :class:`ModelCard`.
    """
    mods = tuple(modalities)
    tsk = tuple(tasks)
    bad_mods = [m for m in mods if m not in MODALITIES]
    bad_tasks = [t for t in tsk if t not in TASK_NAMES]
    if not mods or bad_mods:
        raise ValueError(f"register_model: modalities must be a non-empty subset of {MODALITIES}, got {mods}.")
    if not tsk or bad_tasks:
        raise ValueError(f"register_model: tasks must be a non-empty subset of {TASK_NAMES}, got {tsk}.")

    def decorator(fn: Callable[..., FusionModel]) -> Callable[..., FusionModel]:
        name = fn.__name__
        listed = ABLATIONS[name].parent if name in ABLATIONS else None
        if listed != ablation_of:
            raise ValueError(f"register_model({name}): ablation_of={ablation_of!r} but gliofuse.ablations.ABLATIONS "
                             f"lists parent {listed!r}; keep the two in agreement (config resolves parents from "
                             "the table without importing models).")
        if name in _REGISTRY:
            warnings.warn(f"model {name!r} is registered twice; the later definition "
                          f"({fn.__module__}) replaces {_REGISTRY[name].fn.__module__}.", stacklevel=2)
        card = ModelCard(name=name, family=family, modalities=mods, tasks=tsk, defaults=dict(defaults or {}),
                         reference=reference, ablation_of=ablation_of, notes=notes,
                         max_inference_patches=max_inference_patches)
        _REGISTRY[name] = _Entry(fn=fn, card=card)
        fn.card = card  # type: ignore[attr-defined]
        return fn

    return decorator


def _ensure_registered() -> None:
    """Import the family modules (no-op once ``gliofuse.models`` is imported)."""
    import gliofuse.models  # noqa: F401


def _unknown_model_error(name: str) -> ConfigError:
    names = sorted(_REGISTRY)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(f"{name!r} is not a registered model.{hint} "
                       "See all names with `gliofuse models list`.")


def get_model_card(name: str) -> ModelCard:
    """The :class:`ModelCard` of a registered model; unknown names raise ``ConfigError``."""
    _ensure_registered()
    if name not in _REGISTRY:
        raise _unknown_model_error(name)
    return _REGISTRY[name].card


def list_models(pattern: str = "*", modality: str | None = None, task: str | None = None) -> list[str]:
    """Sorted registered model names.

    Parameters
    ----------
    pattern : fnmatch pattern on the name (``"abmil*"``).
    modality : keep models that read this modality (``"wsi"`` or ``"omics"``).
    task : keep models that support this task.
    """
    _ensure_registered()
    out = []
    for name, entry in _REGISTRY.items():
        if not fnmatch.fnmatchcase(name, pattern):
            continue
        if modality is not None and modality not in entry.card.modalities:
            continue
        if task is not None and task not in entry.card.tasks:
            continue
        out.append(name)
    return sorted(out)


def resolve_model_params(name: str, inherited: Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """Card defaults updated with ``inherited`` then ``overrides`` (``None`` values dropped).

    ``inherited`` are an ablation's parent's overrides (:meth:`gliofuse.config.TrainingConfig.model_overrides_for`):
    keys the ablation's card does not accept (the ablated component's parameters) are dropped.

    Raises
    ------
    ConfigError
        Unknown model name, or an override key that is not a parameter of the model.
    """
    card = get_model_card(name)
    given = {k: v for k, v in (inherited or {}).items() if v is not None and k in card.defaults}
    given.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(given) - set(card.defaults))
    if unknown:
        raise ConfigError(
            f"training.model_overrides.{name}: unknown parameter(s) {unknown}; {name!r} accepts "
            f"{sorted(card.defaults)}. Fix the key names in config.yaml.")
    return {**card.defaults, **given}


def create_model(name: str, *, input_dims: Mapping[str, int], tasks: Iterable[str] | str | None = None,
                 **overrides: Any) -> FusionModel:
    """Build a registered model.

    Steps: drop ``None`` overrides; merge card defaults < overrides; check that ``input_dims``
    covers ``card.modalities`` and that ``tasks`` are supported; build; attach ``model.card``.
    The model only embeds; task heads (output sizes) live in :mod:`gliofuse.models.heads`.

    Parameters
    ----------
    name : registered model name (see :func:`list_models`).
    input_dims : ``{"wsi": D, "omics": G}``; feature dimension per available modality, plus optional
        ``"omics:<gene set>": G_s`` entries (one per ``training.gene_sets``) for gene-subspace models.
    tasks : task(s) the model will be trained for; ``None`` skips the check.
    **overrides : hyper-parameters, keys of ``card.defaults``.

    Returns
    -------
    FusionModel with ``.card`` and ``.embed_dim``.

    Raises
    ------
    ConfigError
        Unknown name (with close matches), unknown parameter, missing modality or unsupported task.
    """
    card = get_model_card(name)
    params = resolve_model_params(name, **overrides)
    dims = {k: int(v) for k, v in input_dims.items() if v is not None and int(v) > 0}
    missing = [m for m in card.modalities if m not in dims]
    if missing:
        raise ConfigError(
            f"model {name!r} needs modalities {list(card.modalities)} but the data provide "
            f"{sorted(dims)} (missing {missing}). Provide the inputs or pick a model with "
            f"`gliofuse models list`.")
    if tasks is not None:
        wanted = (tasks,) if isinstance(tasks, str) else tuple(tasks)
        unsupported = [t for t in wanted if t not in card.tasks]
        if unsupported:
            raise ConfigError(
                f"model {name!r} does not support task(s) {unsupported}; it supports {list(card.tasks)}. "
                "Change training.tasks or training.models.")
    # "<modality>:<part>" keys (e.g. "omics:tumour", one per gene set) travel with their modality
    model = _REGISTRY[name].fn(input_dims={k: v for k, v in dims.items() if k.split(":", 1)[0] in card.modalities},
                               **params)
    model.card = card
    return model
