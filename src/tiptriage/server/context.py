"""What every route of the service shares: the store, the authenticator, the agency-scoped views, and the three checks
every handler makes before it touches case data (may this role do it; may this agency see this report; is this case the
agency's own). Each refusal is audited with outcome "denied" before it is answered."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from tiptriage.server.auth import Action, Authenticator, Principal, allowed
from tiptriage.server.problems import Problem
from tiptriage.store import Store
from tiptriage.store.users import ReportAccessRepository, ReportReads
from tiptriage.store.views import ServiceViews
from tiptriage.work import cases

HIDDEN_REPORT: Final = "(a report of another agency)"
_ID_TOKEN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{2,127}")  # anything that may be a report id


@dataclass
class Context:
    store: Store
    auth: Authenticator
    access: ReportAccessRepository
    views: ServiceViews
    intake: Store  # writes that come before any agency owns the data (submissions, hash-set imports), and re-assessment across agencies after an outcome

    def audit(self, who: Principal, action: str, outcome: str = "ok", *, object_type: str, object_id: str | None, **detail: Any) -> None:
        # an action on no one object (the whole chain, every bank) names "all": the log needs a type and an id together
        self.auth.audit(who.user.username, action, outcome, object_type=object_type, object_id=object_id if object_id is not None else "all",
                        agency=who.user.agency_id,
                        source_address=who.source_address, **detail)

    def actor(self, who: Principal) -> cases.Actor:
        return cases.Actor(who.user.username, who.user.agency_id, who.source_address)

    def require(self, who: Principal, action: Action, object_type: str, object_id: str | None, verb: str = "change") -> None:
        """403 unless the caller's role may do ``action``."""
        if not allowed(who.user.role, action):
            self.audit(who, verb, "denied", object_type=object_type, object_id=object_id, reason=f"role may not {action.value}")
            raise Problem(403, "forbidden", "Forbidden", f"The role {who.user.role.value} may not do this.")

    def visible_report(self, who: Principal, report_id: str, object_type: str, verb: str = "read") -> str:
        """How the caller's agency sees the report, or a 404 (audited as denied) when it may not: the same answer whether the
        report exists or not, so one agency never learns of another's report."""
        may_read = allowed(who.user.role, Action.READ_REPORT)
        via = self.access.via(report_id, who.user.agency_id) if may_read else None
        if via is None:
            self._hidden(who, report_id, object_type, verb, may_read)
        return via

    def readable_report(self, who: Principal, report_id: str, reads: ReportReads | None = None) -> tuple[str, str | None]:
        """``visible_report`` and the report's JSON (None: not stored) in one query: the check and the read the report
        endpoint makes on every call. ``reads``: where to read (the session check's transaction); ``access`` by default."""
        may_read = allowed(who.user.role, Action.READ_REPORT)
        via, text = (reads or self.access).readable_report(report_id, who.user.agency_id) if may_read else (None, None)
        if via is None:
            self._hidden(who, report_id, "report", "read", may_read)
        return via, text

    def _hidden(self, who: Principal, report_id: str, object_type: str, verb: str, may_read: bool) -> NoReturn:
        reason = "role may not read case data" if not may_read else "report not visible to the agency"
        self.audit(who, verb, "denied", object_type=object_type, object_id=report_id, reason=reason)
        raise Problem(404, "not-found", "Not found", "No such report.")

    def own_case(self, who: Principal, ref: str, verb: str = "change") -> dict[str, Any]:
        """The agency's own case by id or report id, or a 404 (audited as denied)."""
        try:
            return cases.find(self.store, ref, scope=who.user.agency_id)
        except cases.CaseNotFound:
            self.audit(who, verb, "denied", object_type="case", object_id=ref, reason="no such case in the agency")
            raise Problem(404, "not-found", "Not found", "No such case.") from None

    def redact(self, who: Principal, text: str) -> str:
        """``text`` with the id of every stored report the caller's agency may not see replaced by a neutral phrase. Evidence
        names linked reports (same subject, same viral bundle) that may belong to another agency; deconfliction shares the
        agency and case, nothing more, so their ids never leave."""
        hidden = self.views.hidden_among(who.user.agency_id, set(_ID_TOKEN.findall(text)))
        for rid in sorted(hidden, key=len, reverse=True):
            text = re.sub(rf"(?<![\w.:-]){re.escape(rid)}(?![\w.:-])", HIDDEN_REPORT, text)
        return text

    def visible_subject(self, who: Principal, subject_id: str) -> dict[str, Any]:
        """A subject as the caller's agency may see it: only the reports the agency sees and the accounts named in them.
        Another agency's part of the subject shows only as the deconfliction notices already sent."""
        subj = self.store.links.subject(subject_id) if allowed(who.user.role, Action.READ_REPORT) else None
        visible: list[dict[str, Any]] = []
        if subj is not None:
            seen = {r["report_id"] for r in subj["report_accounts"]}
            mine = {rid for rid in seen if self.access.via(rid, who.user.agency_id) is not None}
            visible = [r for r in subj["report_accounts"] if r["report_id"] in mine]
        if subj is None or not visible:
            self.audit(who, "read", "denied", object_type="subject", object_id=subject_id, reason="subject not visible to the agency")
            raise Problem(404, "not-found", "Not found", "No such subject.")
        accounts = sorted({r["account"] for r in visible})
        links = [lk for lk in subj["links"] if lk["a"] in accounts and lk["b"] in accounts]
        notices = [n for rid in sorted({r["report_id"] for r in visible})
                   for n in self.store.work.notices_for(agency_id=who.user.agency_id, report_id=rid)]
        return {"id": subj["id"], "accounts": accounts, "report_accounts": visible, "links": links, "deconfliction": notices}
