"""The tamper-evident chain over the decision log: one hash link per record, by ``seq``.

Each record's link is ``sha256(prev_hash, seq, the record's bytes)``; the first link's
``prev_hash`` is 64 zeros. What the record's bytes are is the link's ``format``:

- **2** (what ``seal`` writes): ``v2``, the record's ``recorded_at`` in microseconds since
  the epoch (UTC), and its payload exactly as the log stores it (the decision's JSON, written
  once by the store and never re-encoded). Nothing is parsed, so sealing costs a SHA-256 over
  each record; any change to the stored bytes, even one that leaves the JSON equal, breaks
  the link.
- **1** (links sealed before migration 0008): the canonical JSON of ``{"seq", "recorded_at",
  "decision"}`` (sorted keys, no spaces, UTF-8), where the decision is the stored payload.
  Decoding and re-encoding each record was most of the log follower's CPU; such links still
  verify as they were sealed.

Either way the decision names its content by ``content_hash`` and holds no user text, so
retention and erasure empty the content table and the chain still verifies. A link's format
is part of what it hashed (the two byte layouts cannot coincide), so changing the column
breaks the link.

``seal`` extends the chain incrementally: every record after the last sealed seq gets its
link (in pages: each page read and hashed outside any transaction, then its links written in
one short write transaction), with a checkpoint (the head hash at a seq) every
``checkpoint_every`` links and at the end. ``verify`` walks the chain from the start, or
from the last checkpoint it is told to trust, recomputes every link from the log and
reports the first broken one:

- ``deleted``: a sealed record is missing from the log, or a link is missing;
- ``reordered``: the record at a sealed seq is another decision than the one sealed there;
- ``edited``: the record at a seq is the decision sealed there but its content changed
  (payload, recorded_at, or the columns beside the payload disagree with it);
- ``chain``: a link itself was altered (its prev_hash is not the previous link's hash);
- ``checkpoint``: the recomputed head at a checkpoint's seq is not the checkpoint's hash
  (the chain was rewritten after the checkpoint was published);
- ``truncated``: the log's counter handed out seqs the log no longer holds.

Sealed with a ``key`` (``referee audit seal --key-env VAR``), each checkpoint carries an
HMAC-SHA256 of ``seq:head_hash``; verifying with the key rejects an unsigned or wrongly signed
checkpoint, and a chain whose checkpoints are all gone. Whoever rewrites the log, the links and
the checkpoints without the key is then caught, as by a head hash published outside.

The triggers of migration 0003 keep the chain tables append-only, and 0002's keep the log
append-only; the chain is what shows a change made by someone who went around them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from sqlalchemy import Text, bindparam, cast, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from referee.errors import StoreError
from referee.model import utcnow
from referee.model.base import Frozen
from referee.store.sql.audit_tables import audit_chain, audit_checkpoints
from referee.store.sql.bulk import BulkInsert
from referee.store.sql.database import Database
from referee.store.sql.tables import decision_seq, decisions

#: The ``prev_hash`` of the first link.
GENESIS = "0" * 64
#: Records read per query while verifying.
PAGE = 2000
#: Records sealed per write transaction (the rows are prepared before the write lock is taken).
SEAL_PAGE = 1000
#: The link format ``seal`` writes (module docstring); 1 is still verified.
FORMAT = 2
FORMATS = (1, 2)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)

BreakKind = Literal["deleted", "reordered", "edited", "chain", "checkpoint", "truncated"]

_d = decisions
_c = audit_chain
_RECORDS = (
    select(_d.c.seq, _d.c.decision_id, _d.c.item_id, _d.c.content_hash, _d.c.supersedes, _d.c.action,
           _d.c.source, _d.c.recorded_at, cast(_d.c.payload, Text).label("payload"))
    .where(_d.c.seq > bindparam("after"), _d.c.seq <= bindparam("upto"))
    .order_by(_d.c.seq)
)
_LINKS = (select(_c.c.seq, _c.c.decision_id, _c.c.prev_hash, _c.c.record_hash, _c.c.format)
          .where(_c.c.seq > bindparam("after")).order_by(_c.c.seq).limit(bindparam("page")))
_HEAD = select(_c.c.seq, _c.c.record_hash).order_by(_c.c.seq.desc()).limit(1)
_LINK_AT = select(_c.c.record_hash).where(_c.c.seq == bindparam("seq"))
_COLUMNS = ("decision_id", "item_id", "content_hash", "supersedes", "action", "source")


class Checkpoint(Frozen):
    seq: int
    head_hash: str
    created_at: datetime
    signature: str | None = None


class SealResult(Frozen):
    sealed: int
    head_seq: int
    head_hash: str
    checkpoints: int


class Break(Frozen):
    """The first broken link: where, what kind, and what was found."""

    seq: int
    kind: BreakKind
    message: str


class Verification(Frozen):
    checked: int
    from_seq: int
    head_seq: int
    head_hash: str
    unsealed: int
    broken: Break | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


def record_bytes(seq: int, recorded_at: datetime, payload: str, link_format: int = FORMAT) -> bytes:
    """The bytes a link of ``link_format`` hashes for a record; ``payload`` is the stored text."""
    if link_format == 2:
        return b"v2\x00%d\x00" % ((_as_utc(recorded_at) - _EPOCH) // _MICROSECOND) + payload.encode("utf-8")
    if link_format == 1:
        return canonical_record(seq, recorded_at, payload)
    raise StoreError(f"audit link format {link_format} is unknown to this release (it knows {FORMATS}); upgrade referee")


def canonical_record(seq: int, recorded_at: datetime, payload: Any) -> bytes:
    """Format 1's bytes for a record: sorted keys, no spaces, UTF-8."""
    decision = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
    body = {"seq": seq, "recorded_at": _utc_iso(recorded_at), "decision": decision}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link_hash(prev_hash: str, seq: int, record: bytes) -> str:
    h = hashlib.sha256(prev_hash.encode("ascii"))
    h.update(b"\x00%d\x00" % seq)
    h.update(record)
    return h.hexdigest()


class AuditChain:
    """The chain over one SQL store's decision log (``Store.db``)."""

    def __init__(self, db: Database, checkpoint_every: int = 100_000, key: bytes | None = None) -> None:
        """``key``: sign checkpoints when sealing (HMAC-SHA256) and require valid signatures when
        verifying. Keep it outside the database: whoever can rewrite the log and the chain
        cannot then write checkpoints that verify."""
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        self._db = db
        self._insert_links = BulkInsert(_c.insert(), _c, db.dialect)
        self.checkpoint_every = checkpoint_every
        self._key = key or None

    def sign(self, seq: int, head_hash: str) -> str | None:
        if self._key is None:
            return None
        return hmac.new(self._key, f"{seq}:{head_hash}".encode("ascii"), hashlib.sha256).hexdigest()

    # -- sealing ---------------------------------------------------------------
    def head(self) -> tuple[int, str]:
        """The last sealed seq and its hash ((0, GENESIS) for an empty chain)."""
        with self._db.read() as conn:
            row = conn.execute(_HEAD).first()
        return (0, GENESIS) if row is None else (int(row.seq), str(row.record_hash))

    def seal(self, limit: int | None = None) -> SealResult:
        """Link every record after the last sealed seq (at most ``limit``), checkpointing
        every ``checkpoint_every`` links and at the end. Stops before a gap in the log."""
        last_seq, last_hash = self.head()
        with self._db.read() as conn:
            upto = int(conn.execute(select(decision_seq.c.last_seq).where(decision_seq.c.id == 1)).scalar_one())
        if limit is not None:
            upto = min(upto, last_seq + limit)
        sealed = checkpoints = 0
        try:
            while last_seq < upto:
                page_end = min(upto, last_seq + SEAL_PAGE)
                links: list[dict[str, Any]] = []
                marks: list[dict[str, Any]] = []
                gap = False
                # Read and hash outside the write transaction: records never change, and the
                # write lock is held only while the links go in. A sealer that got there first
                # has links at these seqs already, and the key on seq refuses ours.
                with self._db.read() as conn:
                    rows = conn.execute(_RECORDS, {"after": last_seq, "upto": page_end}).all()
                now = utcnow()
                for row in rows:
                    if row.seq != last_seq + 1:  # not committed yet, or missing: seal up to here
                        gap = True
                        break
                    record = record_bytes(row.seq, row.recorded_at, row.payload)
                    new_hash = link_hash(last_hash, row.seq, record)
                    links.append({"seq": row.seq, "decision_id": row.decision_id, "prev_hash": last_hash,
                                  "record_hash": new_hash, "sealed_at": now, "format": FORMAT})
                    last_seq, last_hash = row.seq, new_hash
                    if row.seq % self.checkpoint_every == 0:
                        marks.append({"seq": row.seq, "head_hash": new_hash, "created_at": now,
                                      "signature": self.sign(row.seq, new_hash)})
                if links or marks:
                    prepared = self._insert_links.process(links)  # before the lock: inside, only the insert
                    with self._db.write() as conn:
                        if links:
                            self._insert_links.execute(conn, prepared)
                        if marks:
                            conn.execute(audit_checkpoints.insert(), marks)
                sealed += len(links)
                checkpoints += len(marks)
                if gap or last_seq < page_end:
                    break
            if sealed and last_seq % self.checkpoint_every != 0:
                with self._db.write() as conn:
                    conn.execute(audit_checkpoints.insert(),
                                 [{"seq": last_seq, "head_hash": last_hash, "created_at": utcnow(),
                                   "signature": self.sign(last_seq, last_hash)}])
                checkpoints += 1
        except IntegrityError as exc:
            raise StoreError("another `referee audit seal` extended the chain at the same time; run it again "
                             f"({exc.orig})") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"could not seal the audit chain: {exc}") from exc
        return SealResult(sealed=sealed, head_seq=last_seq, head_hash=last_hash, checkpoints=checkpoints)

    def checkpoints(self) -> list[Checkpoint]:
        with self._db.read() as conn:
            rows = conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq)).all()
        return [Checkpoint(seq=r.seq, head_hash=r.head_hash, created_at=r.created_at, signature=r.signature)
                for r in rows]

    # -- verifying -------------------------------------------------------------
    def verify(self, from_checkpoint: bool = False, expect_head: str | None = None) -> Verification:
        """Recompute every link from the log (from the last checkpoint when ``from_checkpoint``:
        its hash is trusted, so only the links after it are walked) and report the first break.
        ``expect_head``: a head hash published earlier; the chain must pass through it."""
        checkpoints = self.checkpoints()
        marks = {c.seq: c.head_hash for c in checkpoints}
        if self._key is not None:
            for c in checkpoints:
                if c.signature is None or not hmac.compare_digest(c.signature, self.sign(c.seq, c.head_hash) or ""):
                    return Verification(checked=0, from_seq=1, head_seq=0, head_hash=GENESIS, unsealed=0, broken=Break(
                        seq=c.seq, kind="checkpoint",
                        message=f"checkpoint {c.seq} is {'unsigned' if c.signature is None else 'not signed by this key'}"
                                ": it was forged or altered (or sealed without the key)"))
        start, running = 0, GENESIS
        if from_checkpoint and marks:
            start = max(marks)
            running = marks[start]
        expected_seen = expect_head is None
        checked = 0
        seq = start
        with self._db.read() as conn:
            last_issued = int(conn.execute(select(decision_seq.c.last_seq)
                                           .where(decision_seq.c.id == 1)).scalar_one())
            top = conn.execute(select(func.max(_d.c.seq))).scalar()
        max_logged = int(top or 0)

        def result(broken: Break | None, unsealed: int = 0) -> Verification:
            return Verification(checked=checked, from_seq=start + 1, head_seq=seq, head_hash=running,
                                unsealed=unsealed, broken=broken)

        for link, row in self._walk(start):
            want = seq + 1
            if link is None:
                break
            if link.seq != want:
                return result(Break(seq=want, kind="deleted",
                                    message=f"the chain has no link at seq {want} (next link is {link.seq}): "
                                            "a sealed record and its link were removed"))
            if link.prev_hash != running:
                return result(Break(seq=want, kind="chain",
                                    message=f"link {want}'s prev_hash {link.prev_hash[:16]} is not link "
                                            f"{want - 1}'s hash {running[:16]}: the chain table was altered"))
            if row is None:
                return result(Break(seq=want, kind="deleted",
                                    message=f"the record at seq {want} (decision {link.decision_id}) is missing "
                                            "from the log"))
            if row.decision_id != link.decision_id:
                return result(Break(seq=want, kind="reordered",
                                    message=f"seq {want} holds decision {row.decision_id}, but the chain sealed "
                                            f"{link.decision_id} there: records were moved or replaced"))
            payload = json.loads(row.payload)
            for column in _COLUMNS:
                if payload.get(column) != getattr(row, column):
                    return result(Break(seq=want, kind="edited",
                                        message=f"record {want} (decision {row.decision_id}): column {column!r} "
                                                f"is {getattr(row, column)!r} but its payload says "
                                                f"{payload.get(column)!r}"))
            if link.format not in FORMATS:
                return result(Break(seq=want, kind="chain",
                                    message=f"link {want} names format {link.format}, which this release does "
                                            f"not know ({FORMATS}): the chain table was altered, or it was "
                                            "sealed by a newer referee"))
            computed = link_hash(running, want, record_bytes(want, row.recorded_at, row.payload, link.format))
            if computed != link.record_hash:
                return result(Break(seq=want, kind="edited",
                                    message=f"record {want} (decision {row.decision_id}) hashes to "
                                            f"{computed[:16]}, but it was sealed as {link.record_hash[:16]}: "
                                            "it was edited after sealing"))
            running, seq = computed, want
            checked += 1
            if seq in marks and marks[seq] != running:
                return result(Break(seq=seq, kind="checkpoint",
                                    message=f"the chain's head at seq {seq} is {running[:16]}, but checkpoint "
                                            f"{seq} recorded {marks[seq][:16]}: the chain was rewritten"))
            if expect_head is not None and running == expect_head:
                expected_seen = True
        beyond = [s for s in marks if s > seq]
        if beyond:
            first = min(beyond)
            return result(Break(seq=seq + 1, kind="deleted",
                                message=f"checkpoint {first} is past the chain's last link {seq}: links were "
                                        "removed from its end"))
        if max_logged < last_issued and seq < last_issued:
            return result(Break(seq=max(seq, max_logged) + 1, kind="truncated",
                                message=f"the log's counter handed out seq {last_issued} but the log ends at "
                                        f"{max_logged}: records were removed from its end"))
        if self._key is not None and seq > 0 and not marks:
            return result(Break(seq=seq, kind="checkpoint",
                                message="the chain has links but no signed checkpoint: its checkpoints were removed"))
        if not expected_seen:
            return result(Break(seq=seq, kind="checkpoint",
                                message=f"the published head {expect_head[:16] if expect_head else ''} is not on "
                                        "the chain: the chain was rewritten, or that head is from another log"))
        return result(None, unsealed=max(0, max_logged - seq))

    def _walk(self, after: int) -> Iterator[tuple[Any, Any]]:
        """(link, record at the link's seq or None) in seq order; (None, None) at the end."""
        while True:
            with self._db.read() as conn:
                links = conn.execute(_LINKS, {"after": after, "page": PAGE}).all()
                if not links:
                    yield None, None
                    return
                rows = {r.seq: r for r in conn.execute(_RECORDS, {"after": links[0].seq - 1,
                                                                  "upto": links[-1].seq}).all()}
            for link in links:
                yield link, rows.get(link.seq)
            after = links[-1].seq


def _as_utc(value: datetime) -> datetime:
    # SQLite gives back the UTC time it stored without its offset.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _utc_iso(value: datetime) -> str:
    return _as_utc(value).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
