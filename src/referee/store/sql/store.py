"""``Store``: the three roles over one SQL database."""

from __future__ import annotations

from referee.store.roles import Roles
from referee.store.sql.content import SQLContentStore
from referee.store.sql.database import Database
from referee.store.sql.keys import SQLKeyStore
from referee.store.sql.log import SQLDecisionLog


class Store(Roles):
    """The decision log, the content store and the key store on the database at ``url``.

    Opening does not migrate, except the embedded SQLite file, which is
    upgraded once when it is behind; a PostgreSQL database that is behind
    raises StoreError naming ``referee db upgrade``.
    """

    log: SQLDecisionLog
    content: SQLContentStore
    keys: SQLKeyStore

    def __init__(self, url: str = "sqlite:///referee.db") -> None:
        self.url = url
        self.db = Database(url)
        try:
            self.db.require_current()
        except BaseException:
            self.db.close()
            raise
        self.log = SQLDecisionLog(self.db)
        self.content = SQLContentStore(self.db)
        self.keys = SQLKeyStore(self.db)

    def ping(self) -> None:
        self.db.ping()

    def close(self) -> None:
        self.db.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"
