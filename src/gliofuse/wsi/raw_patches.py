"""Patches decoded from raw JPEG tiles in batches, on the CPU or the GPU, instead of OpenSlide's CPU decode.

For a batch of patch corners the reader gathers the tiles the patches overlap, decodes each distinct
tile once in one ``torchvision.io.decode_jpeg`` call (libjpeg-turbo on the CPU, nvJPEG with
``device="cuda"``), copies each tile's overlap with each patch into the batch and resizes the batch
on the same device. Only levels that :func:`gliofuse.wsi.jpeg_tiles.supports_raw_tiles` accepts
can be read; for the others use OpenSlide (:mod:`gliofuse.wsi.reader`).

Semantics follow ``read_region`` + transparent-on-white (``gliofuse.features.loader.read_unit``):
a patch at level-0 corner (x, y) covers ``read_size`` px of the read level from level px
``(rint(x / ds), rint(y / ds))``; pixels outside the level, and missing tiles, are white (255).
OpenSlide resamples fractional level positions (level > 0, non-integer x / ds) with a sub-pixel
shift; here the corner is rounded to the nearest level px.
"""

from __future__ import annotations

import os
import warnings
from typing import Self

import numpy as np
import torch
import torch.nn.functional as F

from gliofuse.errors import CorruptTileError, RawTilesUnsupportedError
from gliofuse.wsi.jpeg_tiles import JpegTileLevel, JpegTileSlide

WHITE = 255
#: mean |device − CPU| (grey levels) above which the device decoder is taken to misread the tiles;
#: decoder differences are far below it, a colour-space error (RGB read as YCbCr) gives ~47
DEVICE_DECODER_TOLERANCE = 2.0


def _decode_jpeg(streams: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():  # torchvision 0.29 flags its image codecs as deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_jpeg(streams, mode=ImageReadMode.RGB, device=device)


class RawPatchReader:
    """Reads square patches of one pyramid level of a slide from its raw JPEG tiles.

    Parameters
    ----------
    slide_path : SVS / tiled TIFF file.
    level : pyramid level to read (OpenSlide's numbering).
    read_size : patch side in px of ``level``.
    out_size : patch side returned; when it differs from ``read_size`` patches are resized with
        ``mode`` (antialiased, ``align_corners=False``; uint8 kernel on the CPU, float32 then rounded
        on CUDA) as :func:`gliofuse.features.loader.resize_uint8` does. None: ``read_size``.
    device : where tiles are decoded and patches assembled (``"cpu"`` or ``"cuda"``).

    Raises
    ------
    RawTilesUnsupportedError : the level is not stored as tiled JPEG (read it with OpenSlide).
    SlideReadError : the file is missing or not a TIFF.
    """

    def __init__(self, slide_path: str | os.PathLike[str], *, level: int, read_size: int,
                 out_size: int | None = None, device: str | torch.device = "cpu", mode: str = "bilinear") -> None:
        self.slide = JpegTileSlide(slide_path)
        self.level: JpegTileLevel = self.slide.level(level)
        self.read_size = int(read_size)
        self.out_size = int(out_size) if out_size is not None else self.read_size
        self.device = torch.device(device)
        self.mode = mode
        self._decoder_checked = self.device.type == "cpu"

    def close(self) -> None:
        self.slide.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, coords: np.ndarray) -> torch.Tensor:
        """Patches at level-0 corners ``coords`` (B, 2) (x, y) → (B, 3, out_size, out_size) uint8 on the device.

        The result is channels_last in memory (a permuted NHWC tensor). A tile that does not decode
        raises ``CorruptTileError`` naming the slide, level and tile.
        """
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        rs = self.read_size
        origin = np.rint(coords / self.level.downsample).astype(np.int64)  # (B, 2) level px of the corners
        pieces = self._pieces(origin)
        tiles = self._decode_tiles(sorted({p[1] for p in pieces}))
        out = torch.full((len(coords), rs, rs, 3), WHITE, dtype=torch.uint8, device=self.device)
        tw, th = self.level.tile_width, self.level.tile_height
        for b, key, y0, y1, x0, x1 in pieces:
            tile = tiles[key]
            if tile is None:  # missing tile: stays white, as OpenSlide shows it transparent
                continue
            (ox, oy), (ty, tx) = origin[b].tolist(), divmod(key, self.level.tiles_across)
            out[b, y0 - oy:y1 - oy, x0 - ox:x1 - ox] = tile[y0 - ty * th:y1 - ty * th, x0 - tx * tw:x1 - tx * tw]
        patches = out.permute(0, 3, 1, 2)  # (B, 3, rs, rs), channels_last memory
        if self.out_size != rs:
            patches = self._resize(patches)
        return patches

    def _pieces(self, origin: np.ndarray) -> list[tuple[int, int, int, int, int, int]]:
        """Overlaps of each patch with the tiles, clipped to the level: (patch, tile key, y0, y1, x0, x1).

        ``origin`` (B, 2) level px (x, y) of the patch corners; the piece bounds are level px; the tile
        key is ``row * tiles_across + col``. Parts of a patch outside the level get no piece (white).
        """
        lv, rs = self.level, self.read_size
        tw, th = lv.tile_width, lv.tile_height
        pieces = []
        for b, (ox, oy) in enumerate(origin.tolist()):
            x_lo, x_hi = max(ox, 0), min(ox + rs, lv.width)
            y_lo, y_hi = max(oy, 0), min(oy + rs, lv.height)
            if x_lo >= x_hi or y_lo >= y_hi:
                continue
            for ty in range(y_lo // th, (y_hi - 1) // th + 1):
                y0, y1 = max(y_lo, ty * th), min(y_hi, (ty + 1) * th)
                for tx in range(x_lo // tw, (x_hi - 1) // tw + 1):
                    pieces.append((b, ty * lv.tiles_across + tx, y0, y1, max(x_lo, tx * tw), min(x_hi, (tx + 1) * tw)))
        return pieces

    def _decode_tiles(self, keys: list[int]) -> dict[int, torch.Tensor | None]:
        """Decode tiles ``keys`` (row-major tile numbers) in one decoder call.

        Returns each key's tile (tile_h, tile_w, 3) uint8 on the device (HWC, as the decoder writes it),
        or None for a missing tile.
        """
        lv = self.level
        streams, present = [], []
        for k in keys:
            data = self.slide.tile(lv.index, *divmod(k, lv.tiles_across))
            if data is not None:
                present.append(k)
                streams.append(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        tiles: dict[int, torch.Tensor | None] = dict.fromkeys(keys)
        if not streams:
            return tiles
        shape = (lv.tile_height, lv.tile_width)
        decoded = self._decode_named(streams, present)
        if not self._decoder_checked:
            self._check_device_decoder(streams[0], decoded[0])
        for k, t in zip(present, decoded, strict=True):
            hwc = t.permute(1, 2, 0)  # CHW (on the CPU a view of the decoder's HWC buffer) → HWC
            tiles[k] = hwc if hwc.shape[:2] == shape else _pad_white(hwc, shape)
        return tiles

    def _decode_named(self, streams: list[torch.Tensor], keys: list[int]) -> list[torch.Tensor]:
        """Decode a batch; if it fails, find the bad tile and raise ``CorruptTileError`` naming it."""
        try:
            return _decode_jpeg(streams, self.device)
        except RuntimeError as batch_exc:
            for s, k in zip(streams, keys, strict=True):
                try:
                    _decode_jpeg([s], self.device)
                except RuntimeError as exc:
                    lv = self.level
                    row, col = divmod(int(k), lv.tiles_across)
                    raise CorruptTileError(
                        f"{self.slide.path}: JPEG tile (row {row}, col {col}) of level {lv.index} at byte "
                        f"{int(lv.offsets[k])} does not decode ({_last_line(exc)}). The file may be corrupt; "
                        "re-download it, or read the slide with OpenSlide, which fills unreadable patches.") from None
            raise CorruptTileError(f"{self.slide.path}: decoding {len(streams)} tiles of level {self.level.index} "
                                   f"failed ({_last_line(batch_exc)})") from None

    def _check_device_decoder(self, stream: torch.Tensor, tile: torch.Tensor) -> None:
        """Once per reader: the device's decoder must agree with libjpeg on a tile (e.g. honour the
        Adobe RGB marker); else raise ``RawTilesUnsupportedError`` so the caller reads with OpenSlide."""
        ref = _decode_jpeg([stream], torch.device("cpu"))[0]
        diff = (tile.cpu().int() - ref.int()).abs().float().mean().item()
        if diff > DEVICE_DECODER_TOLERANCE:
            raise RawTilesUnsupportedError(
                f"{self.slide.path}: the {self.device} JPEG decoder differs from libjpeg on level {self.level.index} "
                f"(mean |difference| {diff:.1f} grey levels > {DEVICE_DECODER_TOLERANCE}); read it with OpenSlide "
                "or decode on the CPU.")
        self._decoder_checked = True

    def _resize(self, patches: torch.Tensor) -> torch.Tensor:
        size = (self.out_size, self.out_size)
        if patches.device.type == "cpu":  # torch's vectorised uint8 kernel (rounds to integers)
            return F.interpolate(patches, size=size, mode=self.mode, align_corners=False, antialias=True)
        x = F.interpolate(patches.float(), size=size, mode=self.mode, align_corners=False, antialias=True)
        return x.round_().clamp_(0, 255).to(torch.uint8)


def _pad_white(tile: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(h, w, 3) tile decoded at another size than the TIFF tile (a writer that crops edge tiles) → ``shape``."""
    out = torch.full((*shape, 3), WHITE, dtype=torch.uint8, device=tile.device)
    h, w = min(out.shape[0], tile.shape[0]), min(out.shape[1], tile.shape[1])
    out[:h, :w] = tile[:h, :w]
    return out


def _last_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__


def read_patches_raw(slide_path: str | os.PathLike[str], coords: np.ndarray, *, level: int, read_size: int,
                     out_size: int | None = None, device: str | torch.device = "cpu",
                     mode: str = "bilinear") -> torch.Tensor:
    """Read patches at level-0 corners ``coords`` (B, 2) from raw JPEG tiles → (B, 3, S, S) uint8.

    One-shot form of :class:`RawPatchReader` (opens and closes the slide); S = ``out_size`` or
    ``read_size``. Raises ``RawTilesUnsupportedError`` for levels that are not tiled JPEG.
    """
    with RawPatchReader(slide_path, level=level, read_size=read_size, out_size=out_size, device=device,
                        mode=mode) as reader:
        return reader.read(coords)
