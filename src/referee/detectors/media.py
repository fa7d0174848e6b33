"""What detectors that read media share: the bytes of a part, and the id of a part derived from it.

The engine resolves media before detection (``engine.media``): a ``url`` part
arrives with its bytes fetched from an allow-listed host, or not at all. So a
detector reads ``data`` or a local ``path``, and anything else is the user's
error, named with the part and the fix.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Literal

from referee.errors import InputError
from referee.model import AudioPart, ImagePart

#: Longest part id (``model.item``); a derived id is cut to fit.
MAX_PART_ID = 64


def part_bytes(part: ImagePart | AudioPart) -> bytes:
    """The bytes of a media part: inline ``data``, or the local ``path`` read."""
    if part.data is not None:
        return bytes(part.data)
    if part.path is not None:
        try:
            return Path(part.path).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {part.kind} file {part.path!r}: {exc.strerror}", f"part {part.id}") from exc
    raise InputError(f"the {part.kind} was not fetched (URL fetching is off unless the operator allow-lists "
                     "the host); send the bytes as 'data' or a local 'path'", f"part {part.id}")


def derived_part_id(part_id: str, suffix: str) -> str:
    """``<part>.<suffix>`` (``cover.ocr``, ``ep.transcript``), cut to the part id limit."""
    return f"{part_id[: MAX_PART_ID - 1 - len(suffix)]}.{suffix}"


def decode_rgb(data: bytes, where: str, max_side: int | None = None,
               resample: Literal["bilinear", "lanczos"] = "bilinear") -> tuple[Any, tuple[int, int]]:
    """An image's bytes decoded to a PIL RGB image, downscaled so its longer side is at
    most ``max_side``, and its original (width, height). A file that is not a readable
    image is the user's ``InputError`` (naming ``where``), never a detector crash.
    (Pillow is imported here, so detectors that never see images do not load it.)"""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"not a readable image ({type(exc).__name__}: {exc})"[:300], where) from exc
    size = rgb.size
    if max_side is not None and max(size) > max_side:
        scale = max_side / max(size)
        method = Image.Resampling.LANCZOS if resample == "lanczos" else Image.Resampling.BILINEAR
        rgb = rgb.resize((max(1, round(size[0] * scale)), max(1, round(size[1] * scale))), method)
    return rgb, size
