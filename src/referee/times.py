"""When a window starts or ends, as people type it: ``30m``, ``24h``, ``7d`` back from now, or an ISO time.

One parser for every ``--since``/``--until`` option and ``since``/``until`` query
parameter, so the CLI and the HTTP API accept the same things and say the same
thing about what they refuse. A naive time is UTC: every stored time is.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from referee.errors import InputError

_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_when(text: str, where: str | None = None, now: datetime | None = None) -> datetime:
    """``text`` as an aware time; InputError (naming ``where``) when it is neither form."""
    amount, unit = text[:-1], text[-1:]
    if amount.isascii() and amount.isdigit() and unit in _UNITS:
        try:
            return (now or datetime.now(timezone.utc)) - timedelta(**{_UNITS[unit]: int(amount)})
        except OverflowError:
            raise InputError(f"{text!r} reaches back before the year 1; use a shorter duration (e.g. 365d) "
                             "or an ISO time", where=where) from None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"expected an ISO time (2026-11-01, 2026-11-01T12:00Z) or a duration like 24h or 7d, "
                         f"got {text!r}", where=where) from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def parse_optional(text: str | None, where: str | None = None, now: datetime | None = None) -> datetime | None:
    return None if text is None else parse_when(text, where, now)


__all__ = ["parse_optional", "parse_when"]
