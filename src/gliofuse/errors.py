"""Exception classes. Every message says what, where, the bad value and the fix."""

from __future__ import annotations


class GliofuseError(Exception):
    """Base class of every error gliofuse raises on purpose."""


class ConfigError(GliofuseError, ValueError):
    """A configuration key is missing, unknown or has a bad value."""


class InputDataError(GliofuseError, ValueError):
    """An input file or table violates its data contract (docs/data-contracts.md)."""


class SlideReadError(GliofuseError, OSError):
    """A whole-slide image cannot be opened or read."""


class RawTilesUnsupportedError(SlideReadError):
    """A slide level is not stored as tiled JPEG, so its raw tiles cannot be decoded directly: read it with OpenSlide."""


class CorruptTileError(SlideReadError):
    """A raw JPEG tile of a slide cannot be decoded (the message names the slide, level and tile)."""


class NoComparablePairsError(InputDataError):
    """A concordance index has no comparable pair (e.g. all samples censored)."""
