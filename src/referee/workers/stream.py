"""The Redis side of a stream worker: a consumer group on an item stream.

Items arrive as entries of a Redis stream (one JSON ``ContentItem`` in the
field ``item``), read through a consumer group so that several workers share
the stream and an entry a worker read but never acknowledged stays *pending*
until someone finishes it. What this module guarantees, and why:

- **At-least-once in, once out per entry.** An entry is acknowledged only by
  :meth:`ItemStream.finish`, a Lua script that, atomically, checks that this
  consumer still owns the entry, appends its decision to the output stream and
  acknowledges it. A worker that dies before the script runs leaves the entry
  pending (another worker claims it and, the engine being idempotent, gets the
  same stored decision); one that dies after it has published and acknowledged
  in one step. An entry another worker claimed meanwhile is left to that worker,
  so a slow worker cannot publish a second copy. Retrying the script after a
  lost reply is safe for the same reason: an acknowledged entry is not pending.
- **Every call is bounded.** Sockets have timeouts; a call that fails on the
  connection is retried a few times with backoff and then raises
  :class:`StreamError`, which the worker's loop turns into a longer, bounded,
  logged wait. Nothing here waits forever.
- **Dead consumers are forgotten.** XAUTOCLAIM takes a dead worker's entries but
  leaves its name in the group; :meth:`ItemStream.forget_idle_consumers` removes
  consumers idle past a threshold with nothing pending (XGROUP DELCONSUMER), in
  one script, so no entry can be delivered to one between the check and the
  removal. A live worker removed that way is harmless: its next read adds it back.
- **Redis Cluster** is not supported: the script touches the item and the
  output stream together, which needs them on one node.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
from pydantic import BaseModel, ConfigDict, Field, model_validator

from referee.errors import RefereeError
from referee.model import ContentItem

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Field of an item entry that holds the item's JSON.
ITEM_FIELD = "item"

#: Publish each finished entry's fields to ``KEYS[2]`` and acknowledge it, if this
#: consumer still owns it. ARGV: group, consumer, maxlen (0: no trimming), entry
#: count, then per entry its id, its number of fields and the fields (name, value).
#: Returns the ids acknowledged.
_FINISH = """
local group, consumer, maxlen = ARGV[1], ARGV[2], tonumber(ARGV[3])
local done, at = {}, 5
for _ = 1, tonumber(ARGV[4]) do
  local id, n = ARGV[at], tonumber(ARGV[at + 1])
  local owner = redis.call('XPENDING', KEYS[1], group, id, id, 1)
  if #owner == 1 and owner[1][2] == consumer then
    local add = {'XADD', KEYS[2]}
    if maxlen > 0 then
      table.insert(add, 'MAXLEN'); table.insert(add, '~'); table.insert(add, maxlen)
    end
    table.insert(add, '*')
    for k = at + 2, at + 1 + 2 * n do table.insert(add, ARGV[k]) end
    redis.call(unpack(add))
    redis.call('XACK', KEYS[1], group, id)
    table.insert(done, id)
  end
  at = at + 2 + 2 * n
end
return done
"""


#: Remove consumers of group ARGV[1] on stream KEYS[1] idle at least ARGV[3] ms with no
#: pending entry, at most ARGV[4] of them, never ARGV[2] (the caller). Checked and removed in
#: one script: DELCONSUMER drops a consumer's pending entries with it, so an entry delivered
#: between a check and a removal would be lost to XAUTOCLAIM. Returns the names removed.
_FORGET = """
local group, me, idle_ms, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local gone = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], group)) do
  if #gone >= limit then break end
  local f = {}
  for k = 1, #c, 2 do f[c[k]] = c[k + 1] end
  if f['name'] ~= me and tonumber(f['pending']) == 0 and tonumber(f['idle']) >= idle_ms then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], group, f['name'])
    table.insert(gone, f['name'])
  end
end
return gone
"""


class StreamError(RefereeError):
    """Redis did not answer (after the bounded retries), or answered with an error."""


class StreamConfig(BaseModel):
    """Where a worker reads, writes and parks entries, and how hard it tries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream: str = Field(default="items", min_length=1, description="Stream the items arrive on.")
    group: str = Field(default="moderators", min_length=1, description="Consumer group the workers share.")
    consumer: str = Field(min_length=1, description="This worker's name in the group (unique per process).")
    out_stream: str = Field(default="decisions", min_length=1, description="Stream decisions are published to.")
    dead_stream: str = Field(default="items:dead", min_length=1, description="Stream poison entries are moved to.")
    batch: int = Field(default=64, ge=1, le=4096, description="Most entries in hand at once.")
    block_ms: int = Field(default=2000, ge=1, le=60_000, description="How long one read waits for new entries.")
    claim_idle_ms: int = Field(
        default=60_000, ge=100, le=86_400_000,
        description="A pending entry idle this long (its worker died or gave up on it) is claimed.")
    forget_idle_ms: int | None = Field(
        default=None, ge=0, le=30 * 86_400_000,
        description="A consumer idle this long with nothing pending is removed from the group (a dead "
                    "worker's name, once its entries were claimed); default 10 x claim_idle_ms, 0: never.")
    max_attempts: int = Field(default=5, ge=1, le=1000, description="Deliveries before an entry is dead-lettered.")
    out_maxlen: int = Field(
        default=100_000, ge=0, description="Approximate cap of the output stream (MAXLEN ~); 0: uncapped.")
    start_id: str = Field(default="0", description="Where a new group starts: 0 = the whole stream, $ = new only.")
    retries: int = Field(default=3, ge=0, le=10, description="Retries of one Redis call before StreamError.")
    retry_max_s: float = Field(default=5.0, gt=0, le=300, description="Longest wait between reconnect attempts.")

    @model_validator(mode="after")
    def _forget_after_claims(self) -> StreamConfig:
        # Below the claim timeout a consumer would be dropped before its entries could even be
        # claimed from it (it keeps them: only empty ones go), and live workers between reads
        # would be removed and re-added all the time.
        if self.forget_idle_ms and self.forget_idle_ms < self.claim_idle_ms:
            raise ValueError(f"forget_idle_ms must be 0 (never) or at least claim_idle_ms ({self.claim_idle_ms}), "
                             f"got {self.forget_idle_ms}; leave it unset for 10 x claim_idle_ms")
        return self

    @property
    def forget_after_ms(self) -> int:
        """How long a consumer with nothing pending may stay idle before it is removed (0: never)."""
        return 10 * self.claim_idle_ms if self.forget_idle_ms is None else self.forget_idle_ms


@dataclass(frozen=True)
class Entry:
    """One stream entry as read: its id, raw fields, and how often it was delivered."""

    id: str
    fields: dict[bytes, bytes]
    deliveries: int = 1


@dataclass
class Backoff:
    """Exponential backoff with full jitter, capped: 0.05 s, 0.1 s, ... up to ``cap_s``."""

    base_s: float = 0.05
    cap_s: float = 5.0
    attempt: int = field(default=0)

    def next_s(self) -> float:
        delay = min(self.cap_s, self.base_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


def connect(url: str, block_ms: int = 2000) -> redis.Redis:
    """A client whose every call times out: connecting after 2 s, a reply after the
    longest read's block plus 5 s (a blocked XREADGROUP must not count as a dead socket)."""
    try:
        return redis.Redis.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=block_ms / 1000 + 5.0,
            health_check_interval=15, decode_responses=False,
        )
    except ValueError as exc:
        raise StreamError(f"--redis-url {url!r} is not a Redis URL ({exc}); "
                          "use redis://HOST:PORT/DB, e.g. redis://127.0.0.1:6379/0") from exc


class ItemStream:
    """A consumer group on an item stream, with an output and a dead-letter stream."""

    def __init__(self, client: redis.Redis, config: StreamConfig) -> None:
        self.client = client
        self.config = config
        self._finish = client.register_script(_FINISH)
        self._forget = client.register_script(_FORGET)
        self._claim_cursor = "0-0"

    # -- calls, bounded ----------------------------------------------------------
    def call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried ``config.retries`` times with backoff on connection errors
        and timeouts; then StreamError. A lost consumer group (a Redis that restarted
        without its data) is recreated, loudly, and the call tried again."""
        backoff = Backoff(cap_s=min(1.0, self.config.retry_max_s))
        for attempt in range(self.config.retries + 1):
            try:
                return fn()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if attempt == self.config.retries:
                    raise StreamError(f"redis: {what} failed {attempt + 1} time(s): {exc}") from exc
                time.sleep(backoff.next_s())
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc) or attempt == self.config.retries:
                    raise StreamError(f"redis: {what}: {exc}") from exc
                log.warning("consumer group %r on %r is gone (Redis lost its data?); recreating it at %s",
                            self.config.group, self.config.stream, self.config.start_id)
                self.ensure_group()
        raise AssertionError("unreachable")

    def ensure_group(self) -> None:
        """Create the stream and the group if missing (XGROUP CREATE ... MKSTREAM), and this
        consumer in it, so XINFO CONSUMERS lists a worker from its start (a blocked read on an
        empty stream does not create it)."""
        cfg = self.config
        try:
            self.client.xgroup_create(cfg.stream, cfg.group, id=cfg.start_id, mkstream=True)
            log.info("created consumer group %r on %r at %s", cfg.group, cfg.stream, cfg.start_id)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StreamError(f"redis: cannot create group {cfg.group!r} on {cfg.stream!r}: {exc}") from exc
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StreamError(f"redis: XGROUP CREATE failed: {exc}") from exc
        self.call("XGROUP CREATECONSUMER", lambda: self.client.xgroup_createconsumer(cfg.stream, cfg.group,
                                                                                      cfg.consumer))

    def ping(self) -> None:
        self.call("PING", self.client.ping)

    # -- reading -------------------------------------------------------------------
    def read(self, count: int, block_ms: int | None) -> list[Entry]:
        """Up to ``count`` new entries (XREADGROUP >), waiting up to ``block_ms`` for them."""
        cfg = self.config
        reply: Any = self.call("XREADGROUP", lambda: self.client.xreadgroup(
            cfg.group, cfg.consumer, {cfg.stream: ">"}, count=count, block=block_ms))
        entries: list[Entry] = []
        for _, rows in reply or []:
            entries.extend(Entry(_id(i), dict(f or {})) for i, f in rows)
        return entries

    def claim(self, count: int) -> list[Entry]:
        """Up to ``count`` entries other consumers (or this one) left pending for longer
        than ``claim_idle_ms`` (XAUTOCLAIM), with their delivery counts (XPENDING)."""
        cfg = self.config
        reply: Any = self.call("XAUTOCLAIM", lambda: self.client.xautoclaim(
            cfg.stream, cfg.group, cfg.consumer, cfg.claim_idle_ms, start_id=self._claim_cursor, count=count))
        self._claim_cursor = _id(reply[0])
        rows = [(i, f) for i, f in reply[1] if f is not None]
        if not rows:
            return []
        counts = self.deliveries([_id(i) for i, _ in rows])
        return [Entry(_id(i), dict(f), counts.get(_id(i), 1)) for i, f in rows]

    @property
    def claim_scan_done(self) -> bool:
        """True when the last XAUTOCLAIM reached the end of the pending list."""
        return self._claim_cursor == "0-0"

    def deliveries(self, ids: Sequence[str]) -> dict[str, int]:
        """How often each pending entry was delivered (XPENDING's counter)."""
        cfg = self.config

        def ask() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for i in ids:
                pipe.xpending_range(cfg.stream, cfg.group, min=i, max=i, count=1)
            return pipe.execute()

        out: dict[str, int] = {}
        for rows in self.call("XPENDING", ask):
            for row in rows:
                out[_id(row["message_id"])] = int(row["times_delivered"])
        return out

    def touch(self, ids: Sequence[str]) -> None:
        """Reset the idle time of entries in hand (XCLAIM ... JUSTID, which does not count
        a delivery), so no other worker claims them while this one waits on the database."""
        if ids:
            cfg = self.config
            self.call("XCLAIM", lambda: self.client.xclaim(
                cfg.stream, cfg.group, cfg.consumer, 0, list(ids), justid=True))

    # -- finishing -----------------------------------------------------------------
    def finish(self, results: Sequence[tuple[Entry, dict[str, str]]]) -> set[str]:
        """Publish each entry's fields to the output stream and acknowledge it, atomically,
        for the entries this consumer still owns; returns the ids acknowledged."""
        return self._run_finish(self.config.out_stream, results, self.config.out_maxlen)

    def dead_letter(self, failures: Sequence[tuple[Entry, str]]) -> set[str]:
        """Move entries to the dead-letter stream with the error, their delivery count and
        their original fields (as ``orig.<field>``), and acknowledge them. Never trimmed."""
        rows = []
        for entry, error in failures:
            fields = {"error": error, "source": self.config.stream, "source_id": entry.id,
                      "deliveries": str(entry.deliveries), "consumer": self.config.consumer}
            raw: dict[str, bytes | str] = dict(fields)
            raw.update({"orig." + k.decode("utf-8", "replace"): v for k, v in entry.fields.items()})
            rows.append((entry, raw))
        return self._run_finish(self.config.dead_stream, rows, 0)

    def _run_finish(self, target: str, rows: Sequence[tuple[Entry, dict[str, Any]]], maxlen: int) -> set[str]:
        if not rows:
            return set()
        args: list[Any] = [self.config.group, self.config.consumer, maxlen, len(rows)]
        for entry, fields in rows:
            args += [entry.id, len(fields)]
            for name, value in fields.items():
                args += [name, value]
        done = self.call("finish", lambda: self._finish(keys=[self.config.stream, target], args=args))
        return {_id(i) for i in done}

    def publish(self, fields: dict[str, str]) -> None:
        """One entry on the output stream that answers no input entry (an async stage's
        follow-up decision, which supersedes one published before)."""
        maxlen = self.config.out_maxlen or None
        self.call("publish", lambda: self.client.xadd(self.config.out_stream, fields,  # type: ignore[arg-type]
                                                      maxlen=maxlen, approximate=True))

    # -- the group's members -----------------------------------------------------------
    def forget_idle_consumers(self, idle_ms: int, limit: int = 100) -> list[str]:
        """Remove up to ``limit`` consumers idle at least ``idle_ms`` with no pending entry
        (never this one); returns their names. A consumer holding entries stays, however
        long idle: its entries are claimed first, and it goes on a later call."""
        cfg = self.config
        gone = self.call("XGROUP DELCONSUMER", lambda: self._forget(
            keys=[cfg.stream], args=[cfg.group, cfg.consumer, idle_ms, limit]))
        return [_text(name) for name in gone]

    # -- observing ------------------------------------------------------------------
    def group_info(self) -> dict[str, int]:
        """The group's ``lag`` (entries not yet delivered; Redis 7+) and ``pending``."""
        groups = self.call("XINFO GROUPS", lambda: self.client.xinfo_groups(self.config.stream))
        for g in groups:
            if _text(g.get("name")) == self.config.group:
                lag = g.get("lag")
                return {"lag": int(lag) if lag is not None else -1, "pending": int(g.get("pending") or 0)}
        return {"lag": -1, "pending": 0}


def produce(client: redis.Redis, stream: str, items: Iterable[ContentItem], chunk: int = 500,
            retries: int = 3) -> int:
    """Append items to ``stream`` (one entry each, field ``item``), pipelined by ``chunk``;
    a chunk that fails on the connection is sent again (at-least-once: a lost reply can
    duplicate a chunk, which the engine's idempotency absorbs). Returns the count sent."""
    sent = 0
    batch: list[ContentItem] = []

    def flush() -> None:
        backoff = Backoff(cap_s=1.0)
        for attempt in range(retries + 1):
            try:
                pipe = client.pipeline(transaction=False)
                for item in batch:
                    pipe.xadd(stream, {ITEM_FIELD: item.model_dump_json(exclude_none=True)})
                pipe.execute()
                return
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if attempt == retries:
                    raise StreamError(f"redis: XADD to {stream!r} failed {attempt + 1} time(s): {exc}") from exc
                time.sleep(backoff.next_s())

    for item in items:
        batch.append(item)
        if len(batch) >= chunk:
            flush()
            sent += len(batch)
            batch = []
    if batch:
        flush()
        sent += len(batch)
    return sent


def _id(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _text(raw: object) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
