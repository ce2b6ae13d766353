"""Persistence: SQLAlchemy schema, Alembic migrations, repositories. SQL stays in here."""

from tiptriage.store.db import database_url
from tiptriage.store.repository import Known, QuarantineEntry, Store, report_row

__all__ = ["Known", "QuarantineEntry", "Store", "database_url", "report_row"]
