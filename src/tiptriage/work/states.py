"""Case states, transitions, outcomes and SLA clocks: pure rules over data.

new → assigned → in_progress → legal_process → closed (with an outcome). A case may also go from
assigned or in_progress straight to closed, and back from legal_process to in_progress when the
process returns. Anything else is refused with the allowed moves named.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import cache
from importlib import resources

STATES = ("new", "assigned", "in_progress", "legal_process", "closed")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("assigned",),
    "assigned": ("in_progress", "closed", "new"),
    "in_progress": ("legal_process", "closed"),
    "legal_process": ("in_progress", "closed"),
    "closed": (),
}
OUTCOMES = ("arrest", "child_safeguarded", "unfounded", "referred_elsewhere", "no_action")
OUTCOMES_NEEDING_REASON = ("no_action", "referred_elsewhere")


class TransitionError(ValueError):
    pass


def check_transition(current: str, target: str) -> None:
    if target not in STATES:
        raise TransitionError(f"unknown state {target!r}; states are {', '.join(STATES)}")
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(TRANSITIONS[current]) or "none (the case is closed)"
        raise TransitionError(f"a case in state {current!r} cannot move to {target!r}; allowed: {allowed}")


def check_outcome(outcome: str, reason: str | None) -> None:
    if outcome not in OUTCOMES:
        raise TransitionError(f"unknown outcome {outcome!r}; outcomes are {', '.join(OUTCOMES)}")
    if outcome in OUTCOMES_NEEDING_REASON and not (reason and reason.strip()):
        raise TransitionError(f"outcome {outcome!r} needs a reason")


@cache
def sla_config() -> dict[str, object]:
    data: dict[str, object] = json.loads(resources.files("tiptriage.data").joinpath("sla.json").read_text("utf-8"))
    return data


def due_at(tier: int, opened_at: datetime) -> datetime | None:
    hours = sla_config()["hours_by_tier"]
    assert isinstance(hours, dict)
    h = hours.get(str(tier))
    return opened_at + timedelta(hours=float(h)) if h is not None else None


def retimed_due(old_tier: int, new_tier: int, opened_at: datetime, old_due: datetime | None, at: datetime) -> datetime | None:
    """An open case's SLA deadline after its report's tier changes at ``at``.

    More urgent: the new tier's clock runs from the change (nobody could act on the new tier before it existed), but the
    deadline never moves later than it was. Less urgent: the deadline the case would have had at the new tier from the
    start, never earlier than it was. A tier without a clock (tier 4) has no deadline."""
    if due_at(new_tier, opened_at) is None:
        return None
    if new_tier < old_tier:
        fresh = due_at(new_tier, at)
        assert fresh is not None
        return fresh if old_due is None else min(old_due, fresh)
    relaxed = due_at(new_tier, opened_at)
    assert relaxed is not None
    return relaxed if old_due is None else max(old_due, relaxed)


def aging(due: datetime | None, now: datetime) -> str:
    """"overdue", "due soon" (within a quarter of a day) or "on time"."""
    if due is None:
        return "no clock"
    if now > due:
        return "overdue"
    if due - now < timedelta(hours=6):
        return "due soon"
    return "on time"


def capacity_per_investigator() -> int:
    """Open cases one investigator is expected to carry (data/sla.json; a planning figure, not a limit the software enforces)."""
    value = sla_config().get("capacity_per_investigator", 25)
    return int(value) if isinstance(value, (int, float, str)) else 25
