"""
Alembic's environment for switchboard's migrations. L{switchboard.migrations}
runs it on a connection it has opened (in a transaction, locked): run the
migrations with C{switchboard db upgrade}, not with the C{alembic} command.
"""

from alembic import context

from switchboard.migrations import import_models

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("switchboard's migrations run through `switchboard db upgrade` "
                     "(or `switchboard db revision`), not the alembic command")
context.configure(
    connection=connection,
    target_metadata=import_models(),  # switchboard.storage.Base's, with every table
    # SQLite alters a table by rebuilding it: Alembic's batch mode does that.
    render_as_batch=connection.dialect.name == "sqlite",
    include_object=context.config.attributes.get("include_object"),
)
with context.begin_transaction():
    context.run_migrations()
