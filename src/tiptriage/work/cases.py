"""Moving a case through its workflow: one place for the checks, the change and its audit entry.

The CLI and the service both call these, so a case moves by the same rules whoever moves it, and the audit entry commits in
the same transaction as the change it describes. ``scope`` is the agency the caller works for: a case of another agency is
reported as not found, so the answer never tells one agency that another agency's case exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tiptriage import pipeline
from tiptriage.audit.chain import AuditEvent
from tiptriage.store import Store
from tiptriage.work.states import TransitionError, check_outcome, check_transition

__all__ = ["Actor", "CaseNotFound", "TransitionError", "assign", "close", "find", "move"]


class CaseNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Actor:
    """Who acts, for the audit entry: a user of an agency, from an address (``cli`` for the command line)."""

    user: str
    agency: str | None = None
    source: str | None = None


def find(store: Store, ref: str, scope: str | None = None) -> dict[str, Any]:
    """The case by its id (C-...) or its report id; ``scope`` limits it to one agency's cases."""
    case = store.work.case(ref)
    if case is None or (scope is not None and case["agency_id"] != scope):
        raise CaseNotFound(f"no case {ref!r}")
    return case


def _event(actor: Actor, case: dict[str, Any], **detail: Any) -> AuditEvent:
    return AuditEvent(user=actor.user[:128], action="change", object_type="case", object_id=str(case["id"]), agency=actor.agency,
                      source_address=(actor.source or "")[:64] or None, detail={k: v for k, v in detail.items() if v is not None})


def _apply(store: Store, case: dict[str, Any], target: str, values: dict[str, Any], actor: Actor, note: str | None,
           **detail: Any) -> dict[str, Any]:
    current = str(case["state"])
    store.work.update_case(str(case["id"]), current, {"state": target, **values},
                           {"from_state": current, "to_state": target, "by": actor.user, "note": note},
                           audit=(store.audit, _event(actor, case, transition=f"{current}->{target}", report_id=case["report_id"], **detail)))
    return find(store, str(case["id"]))


def assign(store: Store, ref: str, assignee: str, actor: Actor, scope: str | None = None) -> dict[str, Any]:
    """new → assigned, or a reassignment of an assigned case."""
    case = find(store, ref, scope)
    if not assignee.strip():
        raise TransitionError("name the investigator to assign")
    state = str(case["state"])
    if state != "assigned":
        check_transition(state, "assigned")
    return _apply(store, case, "assigned", {"assignee": assignee}, actor, f"assigned to {assignee}", assignee=assignee)


def move(store: Store, ref: str, target: str, actor: Actor, note: str | None = None, scope: str | None = None) -> dict[str, Any]:
    """Any move the workflow allows except closing, which needs an outcome (``close``)."""
    case = find(store, ref, scope)
    check_transition(str(case["state"]), target)
    if target == "closed":
        raise TransitionError("close a case with its outcome, which records why")
    values: dict[str, Any] = {"assignee": None} if target == "new" else {}
    return _apply(store, case, target, values, actor, note)


def close(store: Store, ref: str, outcome: str, reason: str | None, actor: Actor, scope: str | None = None,
          reassess_in: Store | None = None) -> dict[str, Any]:
    """Close a case with its outcome; outcomes feed the evaluation and the statistics, and the reports of the same subject
    are assessed again with it (in ``reassess_in``, default ``store``: the service passes its owner store, since the
    subject's other reports may be routed to other agencies, whose rows an agency's connection cannot see)."""
    case = find(store, ref, scope)
    check_transition(str(case["state"]), "closed")
    check_outcome(outcome, reason)
    note = f"outcome {outcome}" + (f": {reason}" if reason else "")
    closed = _apply(store, case, "closed", {"outcome": outcome, "outcome_reason": reason}, actor, note, case_outcome=outcome)
    pipeline.reassess_subjects(reassess_in or store, [str(case["report_id"])], f"case {case['id']} closed with outcome {outcome} by {actor.user}")
    return closed
