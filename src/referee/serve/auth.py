"""Bearer API keys with scopes, as a FastAPI dependency.

Keys are minted by ``referee keys create`` and checked against the decision
store, which keeps only their hash. A route declares the one scope it needs
(``Depends(require("moderate"))``); ``admin`` satisfies every scope. A missing
or bad key is 401 with ``WWW-Authenticate: Bearer`` (the client should send or
fix credentials); a good key without the scope is 403 (credentials will not
help, a different key will).

A checked key is remembered for ``KEY_CACHE_TTL_S`` seconds, so a busy client
does not cost a database read per request; the price is that revoking a key
takes up to that long to reach a running server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from referee.errors import AuthError
from referee.serve.problems import ScopeError
from referee.serve.state import ServeState
from referee.store import SCOPES


@dataclass(frozen=True)
class Principal:
    """Who is calling. ``key_id`` is None only when auth is switched off."""

    key_id: str | None
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


#: How long a verified key is trusted without asking the store again.
KEY_CACHE_TTL_S = 5.0
#: Bound on remembered keys, so random bearer tokens cannot grow memory.
KEY_CACHE_MAX = 1024

#: Stands in for every caller when ``Settings.auth`` is False (local development only).
ANONYMOUS_ADMIN = Principal(key_id=None, scopes=frozenset({"admin"}))


def bearer_token(header: str | None) -> str:
    if not header:
        raise AuthError("missing API key: send 'Authorization: Bearer <key>' (create one with `referee keys create`)")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(f"Authorization header must be 'Bearer <key>', got a {scheme!r} credential")
    return token.strip()


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that admits callers holding ``scope`` (or ``admin``)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {SCOPES}")

    async def dependency(request: Request) -> Principal:
        return await authorise(request.app.state.referee, request.headers.get("authorization"), scope)

    dependency.__name__ = f"require_{scope}"
    return dependency


async def authorise(state: ServeState, authorization: str | None, scope: str) -> Principal:
    """The caller behind an ``Authorization`` header, if it holds ``scope`` (or ``admin``)."""
    if not state.settings.auth:
        return ANONYMOUS_ADMIN
    principal = await _check(state, bearer_token(authorization))
    if not principal.allows(scope):
        held = ", ".join(sorted(principal.scopes)) or "none"
        raise ScopeError(
            f"API key {principal.key_id} lacks the {scope!r} scope (it has: {held}); "
            f"create a key with `referee keys create --scope {scope}`",
            missing=scope,
        )
    return principal


async def _check(state: ServeState, key: str) -> Principal:
    now = time.monotonic()
    cached = state.key_cache.get(key)
    if cached is not None and cached[0] > now:
        return Principal(key_id=cached[1], scopes=cached[2])
    # Concurrent misses for one key share one lookup: when a busy client's cached key
    # expired, every one of its 50 open requests went to the store at once (py-spy),
    # each on a threadpool thread and most on a fresh connection: a stall every 5 s.
    loop = asyncio.get_running_loop()
    pending = state.key_lookups.get(key)
    if pending is None or pending.get_loop() is not loop:
        pending = loop.create_task(_lookup(state, key, now))
        state.key_lookups[key] = pending
    # shield: one caller hanging up must not cancel the lookup the others wait on
    key_id, scopes = await asyncio.shield(pending)
    return Principal(key_id=key_id, scopes=scopes)


async def _lookup(state: ServeState, key: str, now: float) -> tuple[str, frozenset[str]]:
    try:
        # Only successes are cached: a bad key always reaches the store (and its constant-time compare).
        key_id, scopes = await run_in_threadpool(state.store.check_key, key)
    finally:
        state.key_lookups.pop(key, None)
    if len(state.key_cache) >= KEY_CACHE_MAX:
        state.key_cache.clear()
    state.key_cache[key] = (now + KEY_CACHE_TTL_S, key_id, scopes)
    return key_id, scopes
