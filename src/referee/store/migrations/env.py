"""Alembic environment: runs against the connection the store hands over."""

from alembic import context
from sqlalchemy import Connection

from referee.store.sql.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # `alembic -c src/referee/store/alembic.ini -x url=... upgrade head` (`referee db upgrade` is the same)
    from referee.store.sql.database import Database

    db = Database(context.get_x_argument(as_dictionary=True).get("url", "sqlite:///referee.db"))
    try:
        with db.migration() as conn:
            _run(conn)
    finally:
        db.close()
