"""Read models for the service: one agency's work list with filters, its supervisor figures, what a user has not opened yet,
and its part of the audit log. Every query here is scoped to one agency through ``report_agency`` or ``cases.agency_id``;
nothing here returns a row another agency owns.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from pydantic_core import from_json

from tiptriage.store.audit import audit_log
from tiptriage.store.rls import scoped
from tiptriage.store.schema import assessments, cases, reports
from tiptriage.store.times import aware
from tiptriage.store.users import access_row_page, report_agency

_HIDDEN_PG: Final = sa.text("SELECT * FROM tiptriage_hidden_reports(CAST(:ids AS text[]))")
AGE_BUCKETS: Final = (("under 1 day", timedelta(days=1)), ("1–7 days", timedelta(days=7)), ("7–30 days", timedelta(days=30)),
                      ("over 30 days", timedelta.max))


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` literally anywhere (``\\`` escapes the wildcards)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class ServiceViews:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def work_list(self, agency_id: str, *, tier: int | None = None, state: str | None = None, assignee: str | None = None,
                  search: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """The agency's assessed reports, most urgent first, with its own case's state (none for a report it sees only by
        deconfliction), filtered; and how many match in all."""
        own_case = sa.and_(cases.c.report_id == assessments.c.report_id, cases.c.agency_id == agency_id)
        joined = (assessments.join(reports, reports.c.id == assessments.c.report_id)
                  .join(report_agency, sa.and_(report_agency.c.report_id == assessments.c.report_id, report_agency.c.agency_id == agency_id))
                  .outerjoin(cases, own_case))
        where: list[sa.ColumnElement[bool]] = []
        if tier is not None:
            where.append(assessments.c.tier == tier)
        if state == "open":
            where.append(sa.or_(cases.c.state.is_(None), cases.c.state != "closed"))
        elif state:
            where.append(cases.c.state == state)
        if assignee:
            where.append(cases.c.assignee == assignee)
        if search and search.strip():
            pattern = _like(search.strip())
            where.append(sa.or_(assessments.c.report_id.like(pattern, escape="\\"), reports.c.incident_type.like(pattern, escape="\\"),
                                assessments.c.reasons.like(pattern, escape="\\"), cases.c.id.like(pattern, escape="\\")))
        with self.engine.connect() as conn:
            if state in (None, "open") and not assignee and not (search and search.strip()):
                ids, total = access_row_page(conn, agency_id, tier=tier, open_only=state == "open", limit=limit, offset=offset)
            else:
                total = int(conn.execute(sa.select(sa.func.count()).select_from(joined).where(*where)).scalar_one())
                # the order on narrow columns, then the page's rows whole
                order = (sa.select(assessments.c.report_id).select_from(joined).where(*where)
                         .order_by(assessments.c.tier, assessments.c.score.desc(), reports.c.received_at, reports.c.id)
                         .limit(limit).offset(offset))
                ids = [str(r[0]) for r in conn.execute(order)]
            q = (sa.select(assessments.c.report_id, assessments.c.tier, assessments.c.score, assessments.c.reasons, reports.c.incident_type,
                           reports.c.received_at, report_agency.c.via, cases.c.id.label("case_id"), cases.c.state, cases.c.assignee,
                           cases.c.due_at)
                 .select_from(joined).where(assessments.c.report_id.in_(ids)))
            found = {r["report_id"]: {**dict(r), "received_at": aware(r["received_at"]), "due_at": aware(r["due_at"]),
                                      "reasons": from_json(r["reasons"])} for r in conn.execute(q).mappings()} if ids else {}
        return [found[i] for i in ids if i in found], total

    def hidden_among(self, agency_id: str, candidates: set[str]) -> set[str]:
        """Which of ``candidates`` are ids of stored reports the agency may not see.

        On PostgreSQL the owner's function answers (migration 0013), for the agency the transaction is bound to: under
        row-level security another agency's report is invisible, so looking it up here would find nothing to hide and its id
        would go out in the evidence. The function tells only which of the given ids to hide."""
        hidden: set[str] = set()
        ids = sorted(candidates)
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                scoped(conn, agency_id)
                for i in range(0, len(ids), 500):
                    hidden.update(str(r[0]) for r in conn.execute(_HIDDEN_PG, {"ids": ids[i : i + 500]}))
                return hidden
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                known = {str(r[0]) for r in conn.execute(sa.select(reports.c.id).where(reports.c.id.in_(chunk)))}
                if known:
                    seen = {str(r[0]) for r in conn.execute(sa.select(report_agency.c.report_id).where(
                        report_agency.c.agency_id == agency_id, report_agency.c.report_id.in_(sorted(known))))}
                    hidden |= known - seen
        return hidden

    def opened_by(self, username: str, report_ids: list[str]) -> set[str]:
        """Which of these reports the user has opened before: the audit log already records every read."""
        if not report_ids:
            return set()
        with self.engine.connect() as conn:
            q = sa.select(audit_log.c.object_id).distinct().where(
                audit_log.c.username == username, audit_log.c.action == "read", audit_log.c.object_type == "report",
                audit_log.c.outcome == "ok", audit_log.c.object_id.in_(report_ids))
            return {str(r[0]) for r in conn.execute(q)}

    def dashboard(self, agency_id: str, now: datetime, days: int = 30, capacity: int = 25) -> dict[str, Any]:
        """A supervisor's figures: reports by tier per day, open cases by age, overdue cases by tier, open cases per
        investigator and who carries more than ``capacity``."""
        since = now - timedelta(days=days)
        with self.engine.connect() as conn:
            seen = (sa.select(reports.c.received_at, assessments.c.tier)
                    .select_from(assessments.join(reports, reports.c.id == assessments.c.report_id)
                                 .join(report_agency, sa.and_(report_agency.c.report_id == assessments.c.report_id,
                                                              report_agency.c.agency_id == agency_id)))
                    .where(reports.c.received_at >= since))
            volume: Counter[tuple[str, int]] = Counter()
            for received, tier in conn.execute(seen):
                volume[(aware(received).date().isoformat(), int(tier))] += 1
            open_cases = (sa.select(cases.c.opened_at, cases.c.due_at, cases.c.assignee, cases.c.state, assessments.c.tier)
                          .select_from(cases.join(assessments, assessments.c.report_id == cases.c.report_id))
                          .where(cases.c.agency_id == agency_id, cases.c.state != "closed"))
            aging: Counter[str] = Counter()
            overdue: Counter[int] = Counter()
            load: Counter[str] = Counter()
            unassigned = 0
            for opened, due, assignee, _state, tier in conn.execute(open_cases):
                age = now - aware(opened)
                aging[next(label for label, limit in AGE_BUCKETS if age < limit)] += 1
                d = aware(due)
                if d is not None and d < now:
                    overdue[int(tier)] += 1
                if assignee:
                    load[str(assignee)] += 1
                else:
                    unassigned += 1
        day_list = [(since + timedelta(days=i + 1)).date().isoformat() for i in range(days)]
        return {
            "days": day_list,
            "volume_by_tier": {t: [volume.get((d, t), 0) for d in day_list] for t in (1, 2, 3, 4)},
            "backlog_aging": [(label, aging.get(label, 0)) for label, _ in AGE_BUCKETS],
            "overdue_by_tier": {t: overdue.get(t, 0) for t in (1, 2, 3, 4)},
            "load": sorted(load.items(), key=lambda kv: (-kv[1], kv[0])),
            "unassigned": unassigned,
            "capacity": capacity,
            "over_capacity": sorted(name for name, n in load.items() if n > capacity),
        }

    def audit_page(self, agency_id: str | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """The newest audit entries first: of one agency, or all of them (``agency_id`` None, for a system auditor)."""
        where = [audit_log.c.agency == agency_id] if agency_id is not None else []
        with self.engine.connect() as conn:
            total = int(conn.execute(sa.select(sa.func.count()).select_from(audit_log).where(*where)).scalar_one())
            q = (sa.select(audit_log.c.seq, audit_log.c.at, audit_log.c.username, audit_log.c.agency, audit_log.c.source_address,
                           audit_log.c.object_type, audit_log.c.object_id, audit_log.c.action, audit_log.c.outcome, audit_log.c.detail)
                 .where(*where).order_by(audit_log.c.seq.desc()).limit(limit).offset(offset))
            rows = [{**dict(r), "at": aware(r["at"]), "detail": json.loads(r["detail"])} for r in conn.execute(q).mappings()]
        return rows, total
