"""Bearer API keys with scopes, as a FastAPI dependency.

Keys are minted by ``referee keys create`` and checked against the decision
store, which keeps only their hash. A route declares the one scope it needs
(``Depends(require("moderate"))``); ``admin`` satisfies every scope. A missing
or bad key is 401 with ``WWW-Authenticate: Bearer`` (the client should send or
fix credentials); a good key without the scope is 403 (credentials will not
help, a different key will).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from referee.errors import AuthError
from referee.serve.problems import ScopeError
from referee.serve.state import ServeState
from referee.store.repo import SCOPES


@dataclass(frozen=True)
class Principal:
    """Who is calling. ``key_id`` is None only when auth is switched off."""

    key_id: str | None
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


#: Stands in for every caller when ``Settings.auth`` is False (local development only).
ANONYMOUS_ADMIN = Principal(key_id=None, scopes=frozenset({"admin"}))


def bearer_token(header: str | None) -> str:
    if not header:
        raise AuthError("missing API key: send 'Authorization: Bearer <key>' (create one with `referee keys create`)")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(f"Authorization header must be 'Bearer <key>', got a {scheme!r} credential")
    return token.strip()


def require(scope: str) -> Callable[[Request], Principal]:
    """A dependency that admits callers holding ``scope`` (or ``admin``).

    It is a plain ``def`` on purpose: the key lookup is a blocking database
    read, and FastAPI runs sync dependencies in its threadpool, off the loop.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {SCOPES}")

    def dependency(request: Request) -> Principal:
        state: ServeState = request.app.state.referee
        if not state.settings.auth:
            return ANONYMOUS_ADMIN
        key_id, scopes = state.store.check_key(bearer_token(request.headers.get("authorization")))
        principal = Principal(key_id=key_id, scopes=scopes)
        if not principal.allows(scope):
            held = ", ".join(sorted(scopes)) or "none"
            raise ScopeError(
                f"API key {key_id} lacks the {scope!r} scope (it has: {held}); "
                f"create a key with `referee keys create --scope {scope}`",
                missing=scope,
            )
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency
