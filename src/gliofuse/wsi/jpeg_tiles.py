"""Raw JPEG tiles of tiled TIFF / Aperio SVS slides, read straight from the file without decoding.

A pyramid level qualifies when its TIFF page is tiled, JPEG-compressed (TIFF compression 7), 8-bit
3-sample interleaved RGB or YCbCr. Each tile comes back as a complete JPEG stream: the page's
shared ``JPEGTables`` (an abbreviated stream of DQT/DHT segments) are spliced in after the tile's
SOI marker, and pages with photometric RGB (Aperio stores RGB, not YCbCr, in its JPEG tiles) get an
Adobe APP14 marker with transform 0, so any libjpeg-compatible decoder skips the YCbCr conversion.
Anything else (JPEG 2000 = 33003/33005, LZW, old-style JPEG, ...) is refused with
:class:`~gliofuse.errors.RawTilesUnsupportedError`; read those with OpenSlide.

Levels are numbered as OpenSlide numbers them (the tiled pages of the main IFD chain, largest
first) and checked against OpenSlide's ``level_dimensions``: a pyramid OpenSlide sees differently
is refused as a whole. Only the OpenSlide vendors in :data:`RAW_TILE_VENDORS` are read raw: other
TIFF-based formats lay their tiles out in ways this reader does not follow (Ventana BIF overlaps
tiles, Philips TIFF leaves sparse tiles, Leica SCN holds several images, Hamamatsu NDPI is not
tiled), and non-TIFF formats (DICOM WSI, MRXS) are not parsed at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from gliofuse.errors import CorruptTileError, RawTilesUnsupportedError, SlideReadError

COMPRESSION_JPEG = 7
PHOTOMETRIC_RGB, PHOTOMETRIC_YCBCR = 2, 6
SOI, EOI = b"\xff\xd8", b"\xff\xd9"
#: APP14 "Adobe" segment, version 100, flags 0, transform 0 (components are RGB, not YCbCr)
ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"
#: OpenSlide vendors whose levels are plain tiled TIFF pages, as this reader assumes
RAW_TILE_VENDORS = frozenset({"aperio", "generic-tiff"})
_COMPRESSION_NAMES = {1: "none", 5: "LZW", 6: "old-style JPEG", 8: "deflate", 32946: "deflate",
                      33003: "JPEG 2000 (Aperio YCbCr)", 33005: "JPEG 2000 (Aperio RGB)", 34712: "JPEG 2000"}


@dataclass(frozen=True)
class JpegTileLevel:
    """Where the JPEG tiles of one pyramid level lie in the file.

    Attributes
    ----------
    index : pyramid level (OpenSlide's numbering).
    width, height : level size in px.
    tile_width, tile_height : tile size in px (edge tiles are stored full size, padded).
    downsample : level-0 px per level px, as OpenSlide computes it (mean of the x and y ratios).
    offsets, counts : (tiles_down * tiles_across,) int64 file offset and byte count of each tile,
        row-major; a count of 0 is a missing tile (OpenSlide shows it transparent, i.e. white).
    header : bytes that replace each tile's SOI (SOI, optional Adobe marker, the shared tables).
    """

    index: int
    width: int
    height: int
    tile_width: int
    tile_height: int
    downsample: float
    offsets: np.ndarray
    counts: np.ndarray
    header: bytes

    @property
    def tiles_across(self) -> int:
        return -(-self.width // self.tile_width)

    @property
    def tiles_down(self) -> int:
        return -(-self.height // self.tile_height)


def _unsupported_reason(page: Any) -> str | None:
    """Why a tiled TIFF page cannot be decoded from raw tiles, or None if it can."""
    comp = int(page.compression)
    if comp != COMPRESSION_JPEG:
        return f"compression {_COMPRESSION_NAMES.get(comp, comp)}, not JPEG"
    if int(page.photometric) not in (PHOTOMETRIC_RGB, PHOTOMETRIC_YCBCR):
        return f"photometric {int(page.photometric)}, not RGB or YCbCr"
    if int(page.samplesperpixel) != 3 or int(page.bitspersample) != 8 or int(page.planarconfig) != 1:
        return (f"{page.samplesperpixel} samples of {page.bitspersample} bit, planar config "
                f"{int(page.planarconfig)}; only interleaved 8-bit RGB is read raw")
    if int(page.imagedepth) != 1:
        return "volumetric tiles"
    tables = page.jpegtables
    if tables and not (bytes(tables[:2]) == SOI and bytes(tables[-2:]) == EOI):
        return "malformed JPEGTables"
    return None


def _header(page: Any) -> bytes:
    tables = bytes(page.jpegtables or b"")
    adobe = ADOBE_RGB if int(page.photometric) == PHOTOMETRIC_RGB else b""
    return SOI + adobe + (tables[2:-2] if tables else b"")


def _downsample(w0: int, h0: int, w: int, h: int) -> float:
    return (w0 / w + h0 / h) / 2.0


class JpegTileSlide:
    """An open slide file whose JPEG tiles are read raw: :meth:`tile` gives a decodable JPEG stream.

    Reads use ``os.pread`` (no shared file position), so one instance may serve several threads and
    forked DataLoader workers.

    Raises
    ------
    SlideReadError : the file is missing or not a TIFF.
    """

    def __init__(self, path: str | os.PathLike[str], *, check_openslide: bool = True) -> None:
        import tifffile

        self.path = Path(path)
        if not self.path.is_file():
            raise SlideReadError(f"slide file not found: {self.path}. Check data_root/slides/.")
        try:
            with tifffile.TiffFile(self.path) as tf:
                pages = sorted((p for p in tf.pages if p.is_tiled), key=lambda p: -int(p.imagewidth))
                self._levels: list[JpegTileLevel | str] = self._parse(pages)
        except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError) as exc:
            raise SlideReadError(f"cannot parse {self.path} as a tiled TIFF ({type(exc).__name__}: {exc}); "
                                 "the file may be truncated or not a TIFF-based slide.") from None
        if check_openslide:
            self._check_against_openslide()
        self._fd = os.open(self.path, os.O_RDONLY)

    @staticmethod
    def _parse(pages: list[Any]) -> list[JpegTileLevel | str]:
        if not pages:
            return []
        w0, h0 = int(pages[0].imagewidth), int(pages[0].imagelength)
        levels: list[JpegTileLevel | str] = []
        for i, p in enumerate(pages):
            reason = _unsupported_reason(p)
            if reason is not None:
                levels.append(reason)
                continue
            w, h = int(p.imagewidth), int(p.imagelength)
            levels.append(JpegTileLevel(
                index=i, width=w, height=h, tile_width=int(p.tilewidth), tile_height=int(p.tilelength),
                downsample=_downsample(w0, h0, w, h), offsets=np.asarray(p.dataoffsets, np.int64),
                counts=np.asarray(p.databytecounts, np.int64), header=_header(p)))
        return levels

    def _check_against_openslide(self) -> None:
        import openslide

        vendor = openslide.OpenSlide.detect_format(str(self.path))
        if vendor not in RAW_TILE_VENDORS:
            reason = f"OpenSlide reads it as vendor {vendor!r}; raw tiles are read only for {sorted(RAW_TILE_VENDORS)}"
            self._levels = [reason] * max(1, len(self._levels))
            return
        try:
            with openslide.OpenSlide(str(self.path)) as s:
                dims = list(s.level_dimensions)
        except (openslide.OpenSlideError, OSError) as exc:
            self._levels = [f"OpenSlide cannot open it ({exc})"] * len(self._levels)
            return
        ours = [(lv.width, lv.height) if isinstance(lv, JpegTileLevel) else None for lv in self._levels]
        if len(ours) != len(dims) or any(o is not None and o != d for o, d in zip(ours, dims, strict=False)):
            reason = f"its tiled pages {ours} differ from OpenSlide's levels {dims}"
            self._levels = [reason] * max(len(self._levels), len(dims))

    @property
    def level_count(self) -> int:
        return len(self._levels)

    def unsupported_reason(self, level: int) -> str | None:
        """Why ``level`` cannot be read raw, or None if it can."""
        if not 0 <= level < len(self._levels):
            return f"level {level} does not exist (the slide has {len(self._levels)} tiled levels)"
        lv = self._levels[level]
        return lv if isinstance(lv, str) else None

    def level(self, level: int) -> JpegTileLevel:
        """The tile layout of ``level``; raises ``RawTilesUnsupportedError`` naming the slide and reason."""
        reason = self.unsupported_reason(level)
        if reason is not None:
            raise RawTilesUnsupportedError(
                f"{self.path}: level {level} cannot be decoded from raw JPEG tiles: {reason}. "
                "Read it with OpenSlide (gliofuse.wsi.reader).")
        lv = self._levels[level]
        assert isinstance(lv, JpegTileLevel)
        return lv

    def tile(self, level: int, row: int, col: int) -> bytes | None:
        """Complete JPEG stream of tile (``row``, ``col``) of ``level``; None for a missing tile.

        Raises ``CorruptTileError`` when the stored bytes are not a JPEG stream or cannot be read.
        """
        lv = self.level(level)
        if not (0 <= row < lv.tiles_down and 0 <= col < lv.tiles_across):
            raise IndexError(f"tile ({row}, {col}) outside the {lv.tiles_down}x{lv.tiles_across} grid of level {level}")
        k = row * lv.tiles_across + col
        offset, count = int(lv.offsets[k]), int(lv.counts[k])
        if count == 0:
            return None
        try:
            data = os.pread(self._fd, count, offset)
        except OSError as exc:
            raise CorruptTileError(f"{self.path}: cannot read tile (row {row}, col {col}) of level {level} "
                                   f"at byte {offset} ({exc})") from None
        if len(data) != count or data[:2] != SOI:
            raise CorruptTileError(
                f"{self.path}: tile (row {row}, col {col}) of level {level} at byte {offset} is not a JPEG "
                f"stream ({len(data)} of {count} bytes read); the file may be truncated or corrupt, re-download it.")
        return lv.header + data[2:]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def supports_raw_tiles(slide_path: str | os.PathLike[str], level: int) -> bool:
    """True if ``level`` of the slide can be read from raw JPEG tiles (else read it with OpenSlide)."""
    try:
        with JpegTileSlide(slide_path) as s:
            return s.unsupported_reason(level) is None
    except SlideReadError:
        return False
