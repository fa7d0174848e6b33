"""Hash banks: named collections of known hashes with labels, in files, reloaded when they change.

A bank is one CSV file plus its settings (name, ``kind``, category, distance,
enabled). ``kind: block`` banks hold hashes of known harmful images; ``kind:
allow`` banks hold known false positives (a logo, a meme template) whose match
suppresses every block match of the same image.

Two CSV formats are read and written:

- ``hma`` (the default): a header row, then ``signal_type,signal`` and optional
  ``category,source,added_at,enabled,note`` columns, one hash a row. This is the
  shape of a Hasher-Matcher-Actioner bank's content export (a signal type and a
  signal per row); the label columns are referee's.
- ``te``: the ThreatExchange CLI's cached dataset rows (``simple.<type>.te``), no
  header: ``indicator_id,indicator,descriptor_id,added_on,labels`` with labels
  space-separated; every row has the bank's ``signal_type`` (default pdq). The
  first label is taken as the category when the bank gives none.

Banks are listed in the detector's settings or in a manifest (JSON) beside the
policy; ``BankSet`` re-reads the manifest and every bank file whose modification
time or size changed, at most every ``reload_s`` seconds, so enabling or
disabling a bank (manifest) or a hash (its row's ``enabled``) takes effect
within seconds without a restart. ``write_bank`` replaces a file atomically, so
a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from referee.errors import ConfigError
from referee.plugins.image_hash.hasher import validate_signal
from referee.plugins.image_hash.index import HashIndex

Format = Literal["hma", "te"]
HMA_COLUMNS = ("signal_type", "signal", "category", "source", "added_at", "enabled", "note")
_TRUE = {"", "1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


@dataclass(frozen=True)
class BankEntry:
    signal_type: str
    signal: str
    category: str | None = None
    source: str | None = None
    added_at: str | None = None
    enabled: bool = True
    note: str | None = None


@dataclass(frozen=True)
class BankSpec:
    """A bank's settings (from the detector's settings or the manifest)."""

    name: str
    path: Path
    kind: Literal["block", "allow"] = "block"
    format: Format = "hma"
    category: str | None = None
    distance: int = 31
    enabled: bool = True
    signal_type: str = "pdq"  # for the te format, whose rows do not say


def _flag(value: str | None, where: str) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{where}: enabled must be true or false, got {value!r}")


def read_entries(path: Path, fmt: Format = "hma", signal_type: str = "pdq") -> list[BankEntry]:
    """Every row of a bank file; ConfigError naming the file and line of a bad row."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"bank file {str(path)!r} cannot be read: {exc.strerror}") from exc
    return parse_entries(text, fmt, signal_type, str(path))


def parse_entries(text: str, fmt: Format = "hma", signal_type: str = "pdq", source: str = "<bank>") -> list[BankEntry]:
    out: list[BankEntry] = []
    rows = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    for line, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        where = f"{source}:{line}"
        try:
            if fmt == "hma":
                if header is None:
                    header = [c.strip().lower() for c in row]
                    if header[:2] != ["signal_type", "signal"]:
                        raise ValueError(f"the header must start with signal_type,signal, got {','.join(row)[:80]!r}")
                    unknown = set(header) - set(HMA_COLUMNS)
                    if unknown:
                        raise ValueError(f"unknown columns {sorted(unknown)}; known: {', '.join(HMA_COLUMNS)}")
                    continue
                values = dict(zip(header, (c.strip() for c in row)))
                kind = values.get("signal_type", "").lower()
                out.append(BankEntry(
                    signal_type=kind, signal=validate_signal(kind, values.get("signal", "")),
                    category=values.get("category") or None, source=values.get("source") or None,
                    added_at=values.get("added_at") or None, enabled=_flag(values.get("enabled"), where),
                    note=values.get("note") or None))
            else:
                if len(row) < 2:
                    raise ValueError(f"a te row is indicator_id,indicator,...; got {','.join(row)[:80]!r}")
                labels = row[4].split() if len(row) > 4 else []
                out.append(BankEntry(
                    signal_type=signal_type, signal=validate_signal(signal_type, row[1]),
                    category=labels[0] if labels else None, source=f"te:{row[0].strip()}",
                    added_at=(row[3].strip() or None) if len(row) > 3 else None,
                    note=" ".join(labels) or None))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    return out


def format_entries(entries: Iterable[BankEntry], fmt: Format = "hma") -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if fmt == "hma":
        writer.writerow(HMA_COLUMNS)
        for e in entries:
            writer.writerow([e.signal_type, e.signal, e.category or "", e.source or "", e.added_at or "",
                             "true" if e.enabled else "false", e.note or ""])
    else:
        for i, e in enumerate(entries):
            if not e.enabled:
                continue  # the te format has no enabled column: a disabled hash is not exported
            labels = (e.note or "").split()
            if e.category and e.category not in labels:
                labels.insert(0, e.category)  # the first label is read back as the category
            writer.writerow([(e.source or "").removeprefix("te:") or str(i), e.signal, "", e.added_at or "",
                             " ".join(labels)])
    return buf.getvalue()


def write_bank(path: Path, entries: Iterable[BankEntry], fmt: Format = "hma") -> None:
    """Write a bank file atomically (a temporary file renamed over it)."""
    text = format_entries(entries, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


@dataclass
class Bank:
    """A loaded bank: its entries, an exact lookup for MD5/SHA-256 and a PDQ index."""

    spec: BankSpec
    entries: list[BankEntry]
    stamp: tuple[int, int] = (0, 0)
    pdq_rows: list[int] = field(default_factory=list)  # index id -> entry row (-1: a masked id)
    exact: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    index: HashIndex | None = None

    @classmethod
    def load(cls, spec: BankSpec, tables: int = 11, flips: int = 1, previous: Bank | None = None) -> Bank:
        """Read the bank's file. With the ``previous`` load of it, its index is updated, not rebuilt.

        An update keeps the ids and tables of the codes still listed, adds the new ones and
        masks the rest (``HashIndex.updated``): a small change to a 10M-code bank is a merge
        of seconds, not a build of tens. The previous bank is left intact for searches still
        running on it."""
        stamp = _stamp(spec.path)
        entries = read_entries(spec.path, spec.format, spec.signal_type)
        bank = cls(spec, entries, stamp)
        codes: list[bytes] = []
        rows: list[int] = []
        for row, e in enumerate(entries):
            if not e.enabled:
                continue
            if e.signal_type == "pdq":
                rows.append(row)
                codes.append(bytes.fromhex(e.signal))
            else:
                bank.exact.setdefault((e.signal_type, e.signal), []).append(row)
        if not codes:
            return bank
        array = np.frombuffer(b"".join(codes), dtype=np.uint8).reshape(-1, 32)
        held = previous.index if previous is not None else None
        if held is not None and (held.tables_n, held.flips) == (tables, flips):
            bank.index, ids = held.updated(array)
            by_id = np.full(len(bank.index), -1, np.int64)
            by_id[ids] = rows
            bank.pdq_rows = by_id.tolist()
        else:
            bank.index = HashIndex(array, tables=tables, flips=flips)
            bank.pdq_rows = rows
        return bank


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"bank file {str(path)!r} cannot be read: {exc.strerror}") from exc
    return (st.st_mtime_ns, st.st_size)


def read_manifest(path: Path) -> list[BankSpec]:
    """``{"banks": [{name, path, kind, format, category, distance, enabled, signal_type}]}``; paths relative to it."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"bank manifest {str(path)!r} cannot be read: {exc}") from exc
    banks = raw.get("banks") if isinstance(raw, dict) else None
    if not isinstance(banks, list):
        raise ConfigError(f"bank manifest {str(path)!r}: expected {{\"banks\": [...]}}")
    return [spec_from_dict(b, path.parent, f"{path}: banks[{i}]") for i, b in enumerate(banks)]


def spec_from_dict(raw: object, base: Path, where: str) -> BankSpec:
    if not isinstance(raw, dict) or "name" not in raw or "path" not in raw:
        raise ConfigError(f"{where}: a bank needs at least 'name' and 'path', got {raw!r}"[:300])
    known = {"name", "path", "kind", "format", "category", "distance", "enabled", "signal_type"}
    extra = set(raw) - known
    if extra:
        raise ConfigError(f"{where}: unknown bank settings {sorted(extra)}; known: {', '.join(sorted(known))}")
    kind, fmt = raw.get("kind", "block"), raw.get("format", "hma")
    distance, signal_type = raw.get("distance", 31), raw.get("signal_type", "pdq")
    if kind not in ("block", "allow"):
        raise ConfigError(f"{where}.kind: must be 'block' or 'allow', got {kind!r}")
    if fmt not in ("hma", "te"):
        raise ConfigError(f"{where}.format: must be 'hma' or 'te', got {fmt!r}")
    if not isinstance(distance, int) or not 0 <= distance <= 128:
        raise ConfigError(f"{where}.distance: must be an integer 0-128 (PDQ's guidance: 31), got {distance!r}")
    if signal_type not in ("pdq", "md5", "sha256"):
        raise ConfigError(f"{where}.signal_type: must be pdq, md5 or sha256, got {signal_type!r}")
    path = Path(str(raw["path"]))
    return BankSpec(name=str(raw["name"]), path=path if path.is_absolute() else base / path, kind=kind,
                    format=fmt, category=raw.get("category"), distance=distance,
                    enabled=bool(raw.get("enabled", True)), signal_type=signal_type)


class BankSet:
    """The banks a detector matches against, kept in step with their files."""

    def __init__(self, specs: Sequence[BankSpec] = (), manifest: Path | None = None, reload_s: float = 2.0,
                 tables: int = 11, flips: int = 1) -> None:
        self._specs = list(specs)
        self.manifest = manifest
        self.reload_s = reload_s
        self.tables, self.flips = tables, flips
        self._banks: dict[str, Bank] = {}
        self._manifest_stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self.refresh(force=True)

    def specs(self) -> list[BankSpec]:
        if self.manifest is None:
            return list(self._specs)
        return list(self._specs) + read_manifest(self.manifest)

    def refresh(self, force: bool = False) -> bool:
        """Reload what changed on disk (at most every ``reload_s`` unless forced); True if anything did."""
        now = time.monotonic()
        if not force and now - self._checked < self.reload_s:
            return False
        with self._lock:
            self._checked = now
            changed = False
            specs = self.specs()
            if self.manifest is not None:
                stamp = _stamp(self.manifest)
                changed = stamp != self._manifest_stamp
                self._manifest_stamp = stamp
            names = [s.name for s in specs]
            dupes = {n for n in names if names.count(n) > 1}
            if dupes:
                raise ConfigError(f"bank names must be unique; {sorted(dupes)} appear twice")
            fresh: dict[str, Bank] = {}
            for spec in specs:
                held = self._banks.get(spec.name)
                if held is not None and held.spec.path == spec.path and held.stamp == _stamp(spec.path):
                    fresh[spec.name] = held if held.spec == spec else replace(held, spec=spec)
                    changed |= held.spec != spec
                else:
                    fresh[spec.name] = Bank.load(spec, self.tables, self.flips, previous=held)
                    changed = True
            changed |= set(fresh) != set(self._banks)
            self._banks = fresh
            return changed

    def banks(self) -> list[Bank]:
        return [b for b in self._banks.values() if b.spec.enabled]

    def all_banks(self) -> list[Bank]:
        return list(self._banks.values())

    def categories(self) -> set[str]:
        out: set[str] = set()
        for b in self._banks.values():
            if b.spec.kind != "block":
                continue
            if b.spec.category:
                out.add(b.spec.category)
            else:
                out.update(e.category for e in b.entries if e.category)
        return out
