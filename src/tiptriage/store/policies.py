"""Per-agency priority policies: every policy an agency has put into service, who set it and when.

Nothing is overwritten: setting a policy, or going back to the default, adds a row, and an agency's newest row says
which policy it runs now. The policy text is kept as given (comments included) with its content hash, which is the
version every assessment made under it records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tiptriage.store.schema import agency_policies, report_routes
from tiptriage.store.times import aware


@dataclass(frozen=True)
class AgencyPolicy:
    id: int
    agency_id: str
    action: str  # set | reset
    policy_name: str | None
    policy_number: int | None
    version: str | None
    text: str | None
    set_by: str
    set_at: datetime
    note: str | None

    def as_json(self, with_text: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "agency_id": self.agency_id, "action": self.action, "policy_name": self.policy_name,
                               "policy_number": self.policy_number, "version": self.version, "set_by": self.set_by,
                               "set_at": self.set_at.isoformat(), "note": self.note}
        if with_text:
            out["text"] = self.text
        return out


def _row(r: Any) -> AgencyPolicy:
    at = aware(r["set_at"])
    assert at is not None
    return AgencyPolicy(id=int(r["id"]), agency_id=r["agency_id"], action=r["action"], policy_name=r["policy_name"],
                        policy_number=r["policy_number"], version=r["version"], text=r["text"], set_by=r["set_by"], set_at=at,
                        note=r["note"])


class PolicyRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, agency_id: str, action: str, by: str, at: datetime, *, text: str | None = None, name: str | None = None,
            number: int | None = None, version: str | None = None, note: str | None = None) -> AgencyPolicy:
        with self.engine.begin() as conn:
            new_id = conn.execute(agency_policies.insert().values(
                agency_id=agency_id, action=action, policy_name=name, policy_number=number, version=version, text=text,
                set_by=by, set_at=at, note=note,
            )).inserted_primary_key
            assert new_id is not None
            r = conn.execute(sa.select(agency_policies).where(agency_policies.c.id == new_id[0])).mappings().one()
        return _row(r)

    def latest(self) -> dict[str, AgencyPolicy]:
        """Every agency's newest row (a reset too), by agency."""
        newest = sa.select(sa.func.max(agency_policies.c.id)).group_by(agency_policies.c.agency_id)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(agency_policies).where(agency_policies.c.id.in_(newest)).order_by(agency_policies.c.agency_id))
            return {r["agency_id"]: _row(r) for r in rows.mappings()}

    def current(self) -> dict[str, AgencyPolicy]:
        """The agencies that run their own policy now, with it."""
        return {a: p for a, p in self.latest().items() if p.action == "set"}

    def current_of(self, agency_id: str) -> AgencyPolicy | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(agency_policies).where(agency_policies.c.agency_id == agency_id)
                             .order_by(agency_policies.c.id.desc()).limit(1)).mappings().one_or_none()
        return _row(r) if r is not None and r["action"] == "set" else None

    def history(self, agency_id: str | None = None) -> list[AgencyPolicy]:
        """Oldest first."""
        q = sa.select(agency_policies).order_by(agency_policies.c.id)
        if agency_id is not None:
            q = q.where(agency_policies.c.agency_id == agency_id)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q).mappings()]

    def find(self, agency_id: str, version: str) -> AgencyPolicy | None:
        """The newest time ``agency_id`` set the policy with content hash ``version``."""
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(agency_policies).where(agency_policies.c.agency_id == agency_id, agency_policies.c.version == version,
                                                              agency_policies.c.action == "set")
                             .order_by(agency_policies.c.id.desc()).limit(1)).mappings().one_or_none()
        return _row(r) if r is not None else None

    def routed_reports(self, agency_id: str) -> list[str]:
        """The reports routed to an agency now, by id."""
        with self.engine.connect() as conn:
            q = sa.select(report_routes.c.report_id).where(report_routes.c.agency_id == agency_id).order_by(report_routes.c.report_id)
            return [r[0] for r in conn.execute(q)]

    def routed_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            q = sa.select(report_routes.c.agency_id, sa.func.count()).group_by(report_routes.c.agency_id)
            return {r[0]: int(r[1]) for r in conn.execute(q)}
