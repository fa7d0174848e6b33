"""API keys as both key stores make and check them: ``rk_<id>_<secret>``, stored hashed."""

from __future__ import annotations

import hashlib
import secrets

from referee.errors import AuthError

#: Scopes an API key can carry. ``admin`` implies the others; ``metrics`` only lets a
#: Prometheus scraper read ``GET /metrics`` (no decisions, no content).
SCOPES = ("moderate", "read", "admin", "metrics", "trusted_flagger")


def check_scopes(scopes: list[str]) -> str:
    """The scopes as stored (sorted, comma-separated), or AuthError naming the choices."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise AuthError(f"scopes must be some of {', '.join(SCOPES)}; got {scopes}")
    return ",".join(sorted(set(scopes)))


def new_key() -> tuple[str, str, str]:
    """(key id, secret, the key as printed once)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    return key_id, secret, f"rk_{key_id}_{secret}"


def parse_key(key: str) -> tuple[str, str]:
    """(key id, secret) of a key, or AuthError saying what a key looks like."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "rk":
        raise AuthError("malformed API key: expected 'rk_<id>_<secret>' as printed by `referee keys create`")
    return parts[1], parts[2]


def hash_secret(secret: str) -> str:
    # Keys are long random tokens, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(secret.encode()).hexdigest()
