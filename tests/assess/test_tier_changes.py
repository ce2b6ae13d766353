"""What would change a tier (for explain): the rules that set it, the tier without them, and the rules that would move it."""

from __future__ import annotations

from tiptriage.assess.policy import Indicator, load_default_policy, what_would_change


def _ind(**values: object) -> dict[str, Indicator]:
    return {k: Indicator(name=k, value=v, evidence=[f"test {k}"]) for k, v in values.items()}  # type: ignore[arg-type]


def test_a_possession_report_names_what_would_make_it_more_urgent() -> None:
    policy, _ = load_default_policy()
    out = what_would_change(policy, _ind(escalated=False, sextortion=False, known_files=2, offence_possession=True))
    assert out["tier"] == 3 and out["set_by"] == [] and out["without"] == 3  # the default tier: no rule sets it
    more = {e["rule_id"]: e["tier"] for e in out["more_urgent"]}
    assert more["provider-escalation"] == 1 and more["sextortion"] == 1 and more["enticement"] == 2
    assert [e["tier"] for e in out["more_urgent"]] == sorted(e["tier"] for e in out["more_urgent"])  # most urgent first
    less = {e["rule_id"]: e["tier"] for e in out["less_urgent"]}
    assert less.get("informational-report") == 4


def test_a_floor_over_a_cap_names_both() -> None:
    policy, _ = load_default_policy()
    out = what_would_change(policy, _ind(sextortion=True, informational=True))
    assert out["tier"] == 1 and out["set_by"] == ["sextortion"] and out["without"] == 4  # the informational cap takes over
    assert out["more_urgent"] == []  # nothing is more urgent than tier 1
    assert out["less_urgent"] == []  # a cap cannot lower a tier a floor holds
