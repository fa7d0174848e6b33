"""Alembic environment: runs against the connection the store hands over."""

from alembic import context

from referee.store.sql.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic -c src/referee/store/alembic.ini upgrade head -x url=...`
    from referee.store.sql.database import upgrade

    upgrade(context.get_x_argument(as_dictionary=True).get("url", "sqlite:///referee.db"))
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
