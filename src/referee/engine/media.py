"""Media parts get their sha256 before an item is hashed: the content hash covers
bytes, never URIs.

A ``path`` part is read here (bounded in size). A ``url`` part is fetched only
from hosts the operator allow-lists; fetching is off by default, so a URL part
without a declared ``sha256`` is refused with a message naming the fix, never
hashed by its address. Fetching has a timeout, a bounded retry and a size cap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from referee.errors import InputError
from referee.model import MAX_BLOB_BYTES, ContentItem, MediaPart


class MediaResolver:
    def __init__(self, allow_hosts: Sequence[str] = (), max_bytes: int = MAX_BLOB_BYTES,
                 timeout_s: float = 5.0, retries: int = 1) -> None:
        self.allow_hosts = frozenset(h.lower() for h in allow_hosts)
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.retries = retries

    def resolve(self, item: ContentItem) -> ContentItem:
        """The item with every media part's sha256 known (the same item when nothing was missing)."""
        missing = [i for i, p in enumerate(item.parts) if isinstance(p, MediaPart) and p.sha256 is None]
        if not missing:
            return item
        parts = list(item.parts)
        for i in missing:
            part = parts[i]
            assert isinstance(part, MediaPart)
            data = self._read(part, f"parts[{i}]")
            parts[i] = part.model_copy(update={"sha256": hashlib.sha256(data).hexdigest(),
                                               **({"data": data} if part.url is not None else {})})
        return item.model_copy(update={"parts": tuple(parts)})

    def _read(self, part: MediaPart, where: str) -> bytes:
        if part.path is not None:
            path = Path(part.path)
            try:
                size = path.stat().st_size
                if size > self.max_bytes:
                    raise InputError(f"{part.kind} file is {size} bytes, over {self.max_bytes}", f"{where}.path")
                return path.read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read {part.kind} file {part.path!r}: {exc.strerror}; "
                                 "give a readable path, inline 'data', or declare 'sha256'", f"{where}.path") from exc
        assert part.url is not None
        host = (urlsplit(part.url).hostname or "").lower()
        if host not in self.allow_hosts:
            raise InputError(
                f"fetching {host!r} is not allowed (fetching is off unless the operator allow-lists hosts); "
                "send the bytes as 'data', a local 'path', or declare the media's 'sha256'", f"{where}.url")
        return self._fetch(part.url, where)

    def _fetch(self, url: str, where: str) -> bytes:
        import httpx

        last: Exception | None = None
        for _ in range(self.retries + 1):
            try:
                with httpx.stream("GET", url, timeout=self.timeout_s, follow_redirects=False) as response:
                    response.raise_for_status()
                    chunks, size = [], 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise InputError(f"media at {url} is over {self.max_bytes} bytes", f"{where}.url")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.HTTPError as exc:
                last = exc
        raise InputError(f"could not fetch {url}: {last}; retry later or send the bytes as 'data'", f"{where}.url")
