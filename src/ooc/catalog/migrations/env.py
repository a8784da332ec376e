"""Alembic environment: runs the catalog's migrations on the connection ``ooc.catalog`` passes.

The caller (:func:`ooc.catalog.engine.migrate`) holds a transaction and a lock on the database, so
the migrations run inside it and two processes opening a new catalog never migrate it twice.
"""

from alembic import context

context.configure(
    connection=context.config.attributes["connection"],
    render_as_batch=True,  # SQLite alters a table by copying it; batch mode does that
)
with context.begin_transaction():
    context.run_migrations()
