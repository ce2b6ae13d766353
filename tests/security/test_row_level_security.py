"""PostgreSQL row-level security: the application role sees and changes only its agency's reports."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tiptriage import pipeline, synth
from tiptriage.store import Store, rls


@pytest.fixture
def secured(db_url: str, tmp_path: Path) -> tuple[Store, sa.Engine, str, str, list[str]]:
    if not db_url.startswith("postgresql"):
        pytest.skip("row-level security is a PostgreSQL feature; on SQLite isolation is the service layer's (tested in tests/server)")
    store = Store(db_url)
    data = synth.generate(40, seed=9)
    synth.write(data, tmp_path, "xml")
    pipeline.ingest(store, [tmp_path / "submissions"])
    pipeline.triage(store)
    role = f"tt_app_{uuid.uuid4().hex[:8]}"
    rls.apply(store.engine, role)
    app = sa.create_engine(sa.engine.make_url(db_url).set(username=role).render_as_string(hide_password=False))
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("select report_id, agency_id from report_agency order by report_id")).all()
    agencies = sorted({a for _, a in rows})
    a, b = agencies[0], agencies[1]
    yield store, app, a, b, [r for r, ag in rows if ag == b]
    app.dispose()
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {role}"))
        conn.execute(sa.text(f"DROP ROLE {role}"))
    store.dispose()


def test_every_case_table_reads_writes_and_deletes_only_the_agencys_rows(secured: tuple[Store, sa.Engine, str, str, list[str]]) -> None:
    store, app, a, b, b_reports = secured
    with app.begin() as conn:
        rls.scoped(conn, a)
        for table, col in rls.REPORT_SCOPED.items():
            seen = conn.execute(sa.text(f"select {col} from {table}")).scalars().all()
            assert not set(seen) & set(b_reports), f"{table} leaked agency {b}'s rows to {a}"
        # writes and deletes against the other agency's rows touch nothing
        assert conn.execute(sa.text("update cases set assignee = 'x' where report_id = any(:ids)"), {"ids": b_reports}).rowcount == 0
        assert conn.execute(sa.text("delete from assessments where report_id = any(:ids)"), {"ids": b_reports}).rowcount == 0
    with app.begin() as conn:  # no agency set: nothing at all
        assert conn.execute(sa.text("select count(*) from reports")).scalar_one() == 0
    with app.connect() as conn, pytest.raises(sa.exc.DBAPIError, match=r"row-level security|violates"):
        rls.scoped(conn, a)
        conn.execute(sa.text("insert into report_routes (report_id, agency_id, reason, confidence, alternatives, status, routed_at) "
                             "values (:r, 'x', 'x', 0, '[]', 'routed', now())"), {"r": b_reports[0]})
    with store.engine.connect() as conn:  # the owner's view is unchanged
        assert conn.execute(sa.text("select count(*) from assessments where report_id = any(:ids)"), {"ids": b_reports}).scalar_one() == len(b_reports)


def test_the_application_role_cannot_rewrite_the_audit_log(secured: tuple[Store, sa.Engine, str, str, list[str]]) -> None:
    store, app, _, _, _ = secured
    store.audit.append("tester", "read", object_type="report", object_id="R1")
    for stmt in ("update audit_log set username = 'someone'", "delete from audit_log", "truncate audit_log"):
        with app.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="permission denied"):
            conn.execute(sa.text(stmt))
    assert store.audit.verify().ok


def test_the_owner_pipeline_keeps_working_under_force(secured: tuple[Store, sa.Engine, str, str, list[str]], tmp_path: Path) -> None:
    store, _, _, _, _ = secured
    data = synth.generate(10, seed=99)
    synth.write(data, tmp_path / "more", "xml")
    assert pipeline.ingest(store, [tmp_path / "more" / "submissions"]).accepted == 10
    res = pipeline.triage(store)
    assert res.new_reports == 10 and store.count_reports() == 50
