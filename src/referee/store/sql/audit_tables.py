"""Tables of the compliance pipeline (the tamper-evident chain, statements of reasons).

Registered on the store's one ``metadata``, so the migrations and the tables are
compared as a whole (tests/store/test_migrations.py). Created by migration 0003.
"""

from __future__ import annotations

from referee.store.sql.tables import metadata  # noqa: F401  (tables are declared on it)
