"""Reviewer accounts for the console: scrypt password hashes, granted queues, wellness settings.

Passwords are hashed with scrypt (``n=2**14, r=8, p=1``, 16-byte random salt), stored as
``scrypt$n$r$p$salt$hash`` (hex), checked in constant time. A reviewer sees only the queues
granted to them (``queues``; ``"*"`` grants every queue); ``senior`` reviewers may also take
the senior queue. ``blur_images`` (default on) blurs and greys images until clicked.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Sequence

from sqlalchemy import select, update

from referee.model.base import Frozen
from referee.records.review import ReviewError
from referee.store.sql.review_tables import console_sessions, reviewers
from referee.store.sql.store import Store

__all__ = ["SESSION_TTL_S", "Reviewer", "add_reviewer", "check_password", "close_session", "get_reviewer",
           "hash_password", "list_reviewers", "open_session", "session", "set_blur", "verify_password"]

#: A console login lasts one shift.
SESSION_TTL_S = 8 * 3600.0

_N, _R, _P = 2**14, 8, 1


class Reviewer(Frozen):
    reviewer_id: str
    queues: tuple[str, ...]
    senior: bool = False
    blur_images: bool = True

    def may_see(self, queue: str) -> bool:
        return "*" in self.queues or queue in self.queues


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                         dklen=len(digest) // 2)
    return hmac.compare_digest(got.hex(), digest)


def add_reviewer(store: Store, reviewer_id: str, password: str, queues: Sequence[str], senior: bool = False) -> Reviewer:
    if len(password) < 8:
        raise ReviewError(f"reviewer {reviewer_id!r}: a password needs at least 8 characters")
    row = {"reviewer_id": reviewer_id, "password_hash": hash_password(password), "queues": list(queues),
           "senior": senior, "blur_images": True, "created_at": time.time()}
    with store.db.write() as conn:
        if conn.execute(select(reviewers.c.reviewer_id).where(reviewers.c.reviewer_id == reviewer_id)).first():
            conn.execute(update(reviewers).where(reviewers.c.reviewer_id == reviewer_id).values(
                password_hash=row["password_hash"], queues=row["queues"], senior=senior))
        else:
            conn.execute(reviewers.insert().values(**row))
    found = get_reviewer(store, reviewer_id)
    assert found is not None
    return found


def get_reviewer(store: Store, reviewer_id: str) -> Reviewer | None:
    with store.db.read() as conn:
        row = conn.execute(select(reviewers).where(reviewers.c.reviewer_id == reviewer_id)).first()
    if row is None:
        return None
    return Reviewer(reviewer_id=row.reviewer_id, queues=tuple(row.queues), senior=row.senior,
                    blur_images=row.blur_images)


def list_reviewers(store: Store) -> list[Reviewer]:
    with store.db.read() as conn:
        rows = conn.execute(select(reviewers).order_by(reviewers.c.reviewer_id)).all()
    return [Reviewer(reviewer_id=r.reviewer_id, queues=tuple(r.queues), senior=r.senior, blur_images=r.blur_images)
            for r in rows]


def check_password(store: Store, reviewer_id: str, password: str) -> Reviewer | None:
    """The reviewer if the password is theirs; None otherwise (unknown ids cost a hash too)."""
    with store.db.read() as conn:
        stored = conn.execute(select(reviewers.c.password_hash).where(reviewers.c.reviewer_id == reviewer_id)).scalar()
    if stored is None:
        verify_password(password, hash_password("not-a-reviewer"))  # same work as a real check
        return None
    return get_reviewer(store, reviewer_id) if verify_password(password, stored) else None


def set_blur(store: Store, reviewer_id: str, blur: bool) -> None:
    with store.db.write() as conn:
        conn.execute(update(reviewers).where(reviewers.c.reviewer_id == reviewer_id).values(blur_images=blur))


# -- console sessions: a random token in the cookie, its sha256 in the store, a CSRF token beside it --
def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(store: Store, reviewer_id: str, ttl_s: float = SESSION_TTL_S) -> tuple[str, str]:
    """A new login: ``(cookie token, CSRF token)``. Expired sessions are swept here."""
    token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(24), time.time()
    with store.db.write() as conn:
        conn.execute(console_sessions.delete().where(console_sessions.c.expires_at < now))
        conn.execute(console_sessions.insert().values(token_hash=_token_hash(token), reviewer_id=reviewer_id,
                                                      csrf=csrf, created_at=now, expires_at=now + ttl_s))
    return token, csrf


def session(store: Store, token: str | None) -> tuple[Reviewer, str] | None:
    """The reviewer behind a cookie token and the session's CSRF token; None if unknown or expired."""
    if not token:
        return None
    with store.db.read() as conn:
        row = conn.execute(select(console_sessions).where(
            console_sessions.c.token_hash == _token_hash(token), console_sessions.c.expires_at > time.time())).first()
    if row is None:
        return None
    reviewer = get_reviewer(store, row.reviewer_id)
    return (reviewer, row.csrf) if reviewer is not None else None


def close_session(store: Store, token: str | None) -> None:
    if token:
        with store.db.write() as conn:
            conn.execute(console_sessions.delete().where(console_sessions.c.token_hash == _token_hash(token)))
