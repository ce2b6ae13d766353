"""The queue's counts under row-level security (PostgreSQL): the application role reads only its own agency's count rows and
writes none, while the triggers that keep them still count another agency's access rows the role writes (SECURITY DEFINER)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from tiptriage.store import Store, rls
from tiptriage.store.schema import reports, submissions
from tiptriage.store.users import report_agency, report_agency_counts

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def owner_and_app(db_url: str) -> Iterator[tuple[Store, sa.Engine]]:
    if not db_url.startswith("postgresql"):
        pytest.skip("row-level security is a PostgreSQL feature; on SQLite isolation is the service layer's (tests/server)")
    owner = Store(db_url)
    with owner.engine.begin() as conn:
        conn.execute(submissions.insert(), [{"digest": f"{i:064x}", "format": "csv", "path": "x", "report_id": f"r{i}", "id_from_digest": False,
                                             "container": False, "status": "accepted", "received_at": T0} for i in range(6)])
        conn.execute(reports.insert(), [{"id": f"r{i}", "submission_digest": f"{i:064x}", "incident_type": "x", "incident_datetime": T0,
                                         "received_at": T0, "escalated": False, "file_count": 0, "data": "", "stored_at": T0} for i in range(6)])
        conn.execute(report_agency.insert(), [
            {"report_id": f"r{i}", "agency_id": agency, "via": "routed", "assigned_at": T0, "tier": 1 + i % 2, "score": i, "received_at": T0}
            for i, agency in [(0, "agency-a"), (1, "agency-a"), (2, "agency-b"), (3, "agency-b"), (4, "agency-b")]])
    role = f"tt_app_{uuid.uuid4().hex[:8]}"
    rls.apply(owner.engine, role)
    app = sa.create_engine(sa.engine.make_url(db_url).set(username=role))
    yield owner, app
    app.dispose()
    with owner.engine.begin() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {role}"))
        conn.execute(sa.text(f"DROP ROLE {role}"))
    owner.dispose()


def _visible(conn: sa.Connection) -> dict[str, int]:
    c = report_agency_counts
    q = sa.select(c.c.agency_id, sa.func.sum(c.c.n)).group_by(c.c.agency_id)
    return {str(r[0]): int(r[1]) for r in conn.execute(q)}


def test_the_application_role_sees_only_its_agencys_counts_and_writes_none(owner_and_app: tuple[Store, sa.Engine]) -> None:
    owner, app = owner_and_app
    with owner.engine.connect() as conn:
        assert _visible(conn) == {"agency-a": 2, "agency-b": 3}
    with app.begin() as conn:
        rls.scoped(conn, "agency-a")
        assert _visible(conn) == {"agency-a": 2}
    with app.begin() as conn:
        assert _visible(conn) == {}  # no agency bound: no counts
    for write in (report_agency_counts.update().values(n=0), report_agency_counts.delete(),
                  report_agency_counts.insert().values(agency_id="agency-a", tier=9, score=0, n=1)):
        with app.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"), conn.begin():
            rls.scoped(conn, "agency-a")
            conn.execute(write)

    # sharing a report with another agency (an access row for B, written by A's role): B's counts follow, though A cannot
    # see them, because the trigger function runs as its owner. A may share only a report it holds itself (store.rls): its
    # own row for r5 is not assessed yet, so it counts nowhere
    with owner.engine.begin() as conn:
        conn.execute(report_agency.insert().values(report_id="r5", agency_id="agency-a", via="routed", assigned_at=T0))
    with app.begin() as conn:
        rls.scoped(conn, "agency-a")
        conn.execute(report_agency.insert().values(report_id="r5", agency_id="agency-b", via="deconfliction", assigned_at=T0,
                                                   tier=1, score=5, received_at=T0))
        assert _visible(conn) == {"agency-a": 2}
    with owner.engine.connect() as conn:
        assert _visible(conn) == {"agency-a": 2, "agency-b": 4}
    with app.begin() as conn:
        rls.scoped(conn, "agency-b")
        assert _visible(conn) == {"agency-b": 4}
        conn.execute(report_agency.delete().where(report_agency.c.report_id == "r5", report_agency.c.agency_id == "agency-b"))
        assert _visible(conn) == {"agency-b": 3}
    # and the function itself is no entry point for the role
    with app.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        conn.execute(sa.text("SELECT report_agency_counts_apply()"))
