"""Alembic environment: runs on the connection tiptriage hands it, or on TIPTRIAGE_DATABASE_URL."""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

import tiptriage.store.audit
import tiptriage.store.preservation
import tiptriage.store.users  # noqa: F401  (registers the user, session and report-agency tables)
from tiptriage.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    engine = sa.create_engine(os.environ.get("TIPTRIAGE_DATABASE_URL", "sqlite:///tiptriage.db"))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
