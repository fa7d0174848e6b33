"""The store, split by role: the decision log, the content store and the key store.

``Store(url)`` holds the three over one SQL database (SQLite or PostgreSQL),
``MemoryStore()`` the same in memory for unit tests: ``.log``, ``.content``,
``.keys``. Either one is also the engine's ``DecisionSink`` (``heads`` and
``append`` delegate to ``.log``). ``DecisionStore`` is ``Store`` under the name
earlier callers import. See docs/store.md.
"""

from referee.store.apikeys import SCOPES
from referee.store.memory import MemoryContentStore, MemoryDecisionLog, MemoryKeyStore, MemoryStore
from referee.store.protocols import ContentStore, DecisionLog, KeyStore
from referee.store.sql import Store, upgrade

#: The SQL store under its earlier name.
DecisionStore = Store

__all__ = [
    "SCOPES",
    "ContentStore",
    "DecisionLog",
    "DecisionStore",
    "KeyStore",
    "MemoryContentStore",
    "MemoryDecisionLog",
    "MemoryKeyStore",
    "MemoryStore",
    "Store",
    "upgrade",
]
