"""The SQL store: one SQLAlchemy schema for SQLite and PostgreSQL.

- ``tables``: the schema; ``database``: the engine, writes, the schema revision, upgrades;
- ``log``, ``content``, ``keys``: the three roles; ``store``: ``Store``, holding them;
- ``bulk``: compiled batch inserts for the hot path; ``sqlite``: the embedded file's write lock and checkpointer.
"""

from referee.store.sql.database import HEAD, Database, upgrade
from referee.store.sql.store import Store

__all__ = ["HEAD", "Database", "Store", "upgrade"]
