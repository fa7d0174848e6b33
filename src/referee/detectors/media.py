"""What detectors that read media share: the bytes of a part, and the id of a part derived from it.

The engine resolves media before detection (``engine.media``): a ``url`` part
arrives with its bytes fetched from an allow-listed host, or not at all. So a
detector reads ``data`` or a local ``path``, and anything else is the user's
error, named with the part and the fix.
"""

from __future__ import annotations

from pathlib import Path

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
