"""Routes, cases, their events, and deconfliction notices.

Free text and what quotes identifiers are sealed (``store.crypto``): route reasons (they name the phones and addresses a place
came from), outcome reasons and case-event notes. The methods take and return them in clear.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tiptriage.audit.chain import AuditEvent
from tiptriage.store import queue_keys
from tiptriage.store.audit import AuditRepository
from tiptriage.store.bulk import insert_rows
from tiptriage.store.crypto import aad, cipher_of
from tiptriage.store.schema import (
    assessments,
    case_events,
    cases,
    deconfliction_notices,
    report_accounts,
    report_locations,
    report_routes,
    reports,
    route_events,
    subject_accounts,
)
from tiptriage.store.times import aware as _aware
from tiptriage.store.users import report_agency
from tiptriage.work.states import retimed_due


class CaseConflict(RuntimeError):
    """The case moved since the caller read it."""


def case_id(report_id: str) -> str:
    return "C-" + hashlib.sha1(report_id.encode()).hexdigest()[:10]


def _minutes(d: datetime | None) -> str:
    return d.isoformat(timespec="minutes") if d is not None else "none"


class WorkRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.cipher = cipher_of(engine)

    def _seal(self, table: str, column: str, key: str, text: str | None) -> str | None:
        return self.cipher.seal_opt(text, aad(table, column, key))

    def _open(self, table: str, column: str, key: str, sealed: str | None) -> str | None:
        return self.cipher.open_opt(sealed, aad(table, column, key))

    def _open_case(self, r: Any) -> dict[str, Any]:
        return {**dict(r), "outcome_reason": self._open("cases", "outcome_reason", r["id"], r["outcome_reason"])}

    def unrouted(self, limit: int) -> list[dict[str, Any]]:
        """Assessed reports with a location estimate and no route yet."""
        with self.engine.connect() as conn:
            q = (
                sa.select(assessments.c.report_id, assessments.c.tier, report_locations.c.estimate)
                .select_from(assessments.join(report_locations, report_locations.c.report_id == assessments.c.report_id)
                             .outerjoin(report_routes, report_routes.c.report_id == assessments.c.report_id))
                .where(report_routes.c.report_id.is_(None))
                .order_by(assessments.c.report_id)
                .limit(limit)
            )
            return [{**dict(r), "estimate": self._open("report_locations", "estimate", r["report_id"], r["estimate"])}
                    for r in conn.execute(q).mappings()]

    def open_routed(self, rows: list[dict[str, Any]], by: str, now: datetime) -> None:
        """Store routes and open a case for each (state new, SLA clock from ``now``), in one transaction."""
        with self.engine.begin() as conn:
            insert_rows(conn, report_routes, [{k: r[k] for k in ("report_id", "agency_id", "confidence")}
                                              | {"reason": self._seal("report_routes", "reason", r["report_id"], r["reason"]),
                                                 "alternatives": json.dumps(r["alternatives"]), "status": "routed", "routed_at": now} for r in rows])
            insert_rows(conn, route_events, [{"report_id": r["report_id"], "agency_id": r["agency_id"], "action": "route", "to_agency_id": None,
                                              "reason": self._seal("route_events", "reason", r["report_id"], r["reason"]), "by": by, "at": now}
                                             for r in rows])
            # what the service lets each agency see follows the route
            insert_rows(conn, report_agency, [{"report_id": r["report_id"], "agency_id": r["agency_id"], "via": "routed", "assigned_at": now} for r in rows])
            insert_rows(conn, cases, [{"id": case_id(r["report_id"]), "report_id": r["report_id"], "agency_id": r["agency_id"], "state": "new",
                                       "assignee": None, "outcome": None, "outcome_reason": None, "opened_at": now, "due_at": r["due_at"],
                                       "updated_at": now} for r in rows])
            queue_keys.refresh(conn, [r["report_id"] for r in rows])

    def case(self, cid: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(cases).where(sa.or_(cases.c.id == cid, cases.c.report_id == cid))).mappings().one_or_none()
            if r is None:
                return None
            events = [{**dict(e), "note": self._open("case_events", "note", e["case_id"], e["note"])}
                      for e in conn.execute(sa.select(case_events).where(case_events.c.case_id == r["id"]).order_by(case_events.c.id)).mappings()]
            return {**self._open_case(r), "due_at": _aware(r["due_at"]), "events": events}

    def update_case(self, cid: str, expected_state: str, values: dict[str, Any], event: dict[str, Any],
                    audit: tuple[AuditRepository, AuditEvent] | None = None) -> None:
        """Move a case only if it is still in the state the caller saw (no lost updates). The audit entry, when given, is
        written in the same transaction, so a change never commits without its entry."""
        now = datetime.now(UTC)
        if "outcome_reason" in values:
            values = {**values, "outcome_reason": self._seal("cases", "outcome_reason", cid, values["outcome_reason"])}
        if "note" in event:
            event = {**event, "note": self._seal("case_events", "note", cid, event["note"])}
        with self.engine.begin() as conn:
            res = conn.execute(cases.update().where(cases.c.id == cid, cases.c.state == expected_state).values(**values, updated_at=now))
            if res.rowcount != 1:
                raise CaseConflict(f"case {cid} changed meanwhile; read it again")
            conn.execute(case_events.insert().values(case_id=cid, at=now, **event))
            if audit is not None:
                audit[0].append_in(conn, [audit[1]])

    def retime(self, moved: list[tuple[str, int, int]], trigger: str, at: datetime) -> int:
        """Move the SLA deadline of the open cases of reports whose tier changed ((report, old tier, new tier)), each with a
        case event that says why; returns how many cases moved."""
        tiers = {rid: (old, new) for rid, old, new in moved}
        n = 0
        with self.engine.begin() as conn:
            ids = sorted(tiers)
            for part in (ids[i : i + 900] for i in range(0, len(ids), 900)):
                q = sa.select(cases.c.id, cases.c.report_id, cases.c.state, cases.c.opened_at, cases.c.due_at).where(
                    cases.c.report_id.in_(part), cases.c.state != "closed")
                for c in conn.execute(q).mappings().all():
                    old, new = tiers[c["report_id"]]
                    due = _aware(c["due_at"])
                    fresh = retimed_due(old, new, _aware(c["opened_at"]), due, at)
                    if fresh == due:
                        continue
                    conn.execute(cases.update().where(cases.c.id == c["id"]).values(due_at=fresh, updated_at=at))
                    note = f"tier {old} -> {new}: due {_minutes(due)} -> {_minutes(fresh)} ({trigger[:500]})"
                    conn.execute(case_events.insert().values(case_id=c["id"], from_state=c["state"], to_state=c["state"],
                                                             by="tiptriage (re-assessment)", at=at,
                                                             note=self._seal("case_events", "note", c["id"], note)))
                    n += 1
        return n

    def route_action(self, report_id: str, action: str, by: str, reason: str, to_agency: str | None, due: datetime | None) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            current = conn.execute(sa.select(report_routes).where(report_routes.c.report_id == report_id)).mappings().one()
            conn.execute(route_events.insert().values(report_id=report_id, agency_id=current["agency_id"], action=action, to_agency_id=to_agency,
                                                      reason=self._seal("route_events", "reason", report_id, reason), by=by, at=now))
            status = {"accept": "accepted", "decline": "declined", "transfer": "routed"}[action]
            values: dict[str, Any] = {"status": status}
            if action in ("decline", "transfer"):
                target = to_agency or "review"  # a declined report goes back to the clearinghouse's review queue
                values["agency_id"] = target
                conn.execute(cases.update().where(cases.c.report_id == report_id).values(agency_id=target, state="new", assignee=None,
                                                                                         updated_at=now, due_at=due))
                conn.execute(report_agency.delete().where(report_agency.c.report_id == report_id, report_agency.c.via == "routed"))
                conn.execute(report_agency.insert().values(report_id=report_id, agency_id=target, via="routed", assigned_at=now))
                queue_keys.refresh(conn, [report_id])
            conn.execute(report_routes.update().where(report_routes.c.report_id == report_id).values(**values))

    def route_of(self, report_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(report_routes).where(report_routes.c.report_id == report_id)).mappings().one_or_none()
            if r is None:
                return None
            events = [{**dict(e), "reason": self._open("route_events", "reason", report_id, e["reason"])}
                      for e in conn.execute(sa.select(route_events).where(route_events.c.report_id == report_id).order_by(route_events.c.id)).mappings()]
            return {**dict(r), "reason": self._open("report_routes", "reason", report_id, r["reason"]), "alternatives": json.loads(r["alternatives"]),
                    "events": events}

    def agency_queue(self, agency_id: str | None, limit: int | None = None, include_closed: bool = False) -> list[dict[str, Any]]:
        """An agency's cases, most urgent first (tier, score, oldest), with the SLA clock."""
        with self.engine.connect() as conn:
            q = (
                sa.select(cases, assessments.c.tier, assessments.c.score, assessments.c.reasons, reports.c.incident_type, reports.c.received_at)
                .select_from(cases.join(assessments, assessments.c.report_id == cases.c.report_id).join(reports, reports.c.id == cases.c.report_id))
                .order_by(assessments.c.tier, assessments.c.score.desc(), reports.c.received_at, cases.c.id)
            )
            if agency_id is not None:
                q = q.where(cases.c.agency_id == agency_id)
            if not include_closed:
                q = q.where(cases.c.state != "closed")
            if limit is not None:
                q = q.limit(limit)
            return [{**self._open_case(r), "due_at": _aware(r["due_at"]), "reasons": json.loads(r["reasons"])}
                    for r in conn.execute(q).mappings()]

    def open_count(self, agency_id: str | None) -> int:
        """How many open cases the agency (every agency: None) has, for the queue's total."""
        q = sa.select(sa.func.count()).select_from(cases).where(cases.c.state != "closed")
        if agency_id is not None:
            q = q.where(cases.c.agency_id == agency_id)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def agency_summary(self) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            q = (
                sa.select(cases.c.agency_id, assessments.c.tier, cases.c.state, cases.c.due_at)
                .select_from(cases.join(assessments, assessments.c.report_id == cases.c.report_id))
            )
            out: dict[str, dict[str, Any]] = {}
            for agency, tier, state, due in conn.execute(q):
                s = out.setdefault(agency, {"agency_id": agency, "open": 0, "closed": 0, "overdue": 0, "by_tier": {}})
                if state == "closed":
                    s["closed"] += 1
                    continue
                s["open"] += 1
                s["by_tier"][str(tier)] = s["by_tier"].get(str(tier), 0) + 1
                d = _aware(due)
                if d is not None and d < now:
                    s["overdue"] += 1
            return sorted(out.values(), key=lambda s: -int(s["open"]))

    def replace_deconfliction(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(deconfliction_notices.delete())
            insert_rows(conn, deconfliction_notices, rows)

    def subject_routes(self) -> list[tuple[str, str, str, str]]:
        """(subject, report, agency, case id) for every routed report whose account belongs to a subject."""
        with self.engine.connect() as conn:
            q = (
                sa.select(subject_accounts.c.subject_id, report_routes.c.report_id, cases.c.agency_id, cases.c.id)
                .select_from(
                    subject_accounts.join(report_accounts, report_accounts.c.account_key == subject_accounts.c.account_key)
                    .join(report_routes, report_routes.c.report_id == report_accounts.c.report_id)
                    .join(cases, cases.c.report_id == report_routes.c.report_id)
                )
                .where(cases.c.state != "closed")
            )
            return [(r[0], r[1], r[2], r[3]) for r in conn.execute(q)]

    def notices_for(self, agency_id: str | None = None, report_id: str | None = None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            q = sa.select(deconfliction_notices).order_by(deconfliction_notices.c.id)
            if agency_id is not None:
                q = q.where(deconfliction_notices.c.agency_id == agency_id)
            if report_id is not None:
                q = q.where(deconfliction_notices.c.report_id == report_id)
            return [dict(r) for r in conn.execute(q).mappings()]

    def deconflicted_reports(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.select(deconfliction_notices.c.report_id).distinct())}
