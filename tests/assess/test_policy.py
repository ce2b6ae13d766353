"""The policy engine: validation with precise errors, evaluation, the columnar fast path, ranking diffs,
and properties (monotonicity of the default policy, YAML round trip, closure/column agreement)."""

from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiptriage.assess.policy import (
    Indicator,
    Policy,
    PolicyError,
    check_policy,
    diff_rankings,
    evaluate,
    evaluate_columns,
    evaluate_many,
    indicators_to_columns,
    load_default_policy,
    load_policy,
    parse_policy,
    policy_fingerprint,
    policy_to_yaml,
    policy_version,
)

DEFAULT, DEFAULT_VERSION = load_default_policy()

# the names the indicator extractor produces (the lead's contract), with their types
EXPECTED_INDICATORS = {
    "escalated": "bool", "sextortion": "bool", "csam_solicitation": "bool", "minor_to_minor": "bool",
    "sadistic_online_exploitation": "bool", "informational": "bool", "spam": "bool", "incident_type": "str",
    "enticement": "bool", "planned_meeting": "bool", "victim_age_min": "int", "victim_band": "str", "industry_a1": "bool",
    "industry_prepubescent": "bool", "file_infant": "bool", "file_physical_harm": "bool", "file_live_streaming": "bool",
    "file_self_production": "bool", "file_generative_ai": "bool", "file_anime": "bool", "file_meme_or_viral": "bool",
    "novel_uploaded_files": "int", "known_files": "int", "unidentified_victim_series": "bool", "image_equivalents": "int",
    "offence_production": "bool", "offence_distribution": "bool", "offence_possession": "bool", "offence_viewing": "bool",
    "days_since_incident": "int", "repeat_subject": "bool", "subject_reports": "int", "subject_services": "int",
    "viral_bundle": "bool", "location_resolved": "bool", "location_confidence": "float", "access_to_children": "bool",
    "prior_contact_offence": "bool", "deconfliction": "bool", "subject_tier1_reports": "int", "subject_arrest": "bool",
}


def ind(name: str, value: bool | int | float | str | None, *evidence: str) -> Indicator:
    return Indicator(name=name, value=value, evidence=list(evidence) or [f"report R1 /{name}"])


def inds(**values: bool | int | float | str | None) -> dict[str, Indicator]:
    return {k: ind(k, v) for k, v in values.items()}


def fired_ids(a: Any) -> list[str]:
    return [f.rule_id for f in a.fired]


# -- the default policy -------------------------------------------------------------------------------


def test_default_policy_loads_validates_and_declares_the_extractor_vocabulary() -> None:
    path = Path(str(resources.files("tiptriage.data").joinpath("policy_default.yaml")))
    assert check_policy(path) == []
    assert DEFAULT_VERSION.startswith("sha256:") and len(DEFAULT_VERSION) == len("sha256:") + 16
    assert {k: s.type for k, s in DEFAULT.indicators.items()} == EXPECTED_INDICATORS
    read = {leaf for r in DEFAULT.rules for leaf in re.findall(r"'indicator': '(\w+)'", str(r.when.model_dump()))}
    assert read == set(EXPECTED_INDICATORS), "every declared indicator is used by a rule"
    for r in DEFAULT.rules:
        assert re.search(r"\bS\d\d\b", r.source) or "design choice" in r.source, r.id
        assert len(r.reason) <= 80 and r.reason[0].isupper() and not r.reason.endswith("."), r.id
    tiers = {r.tier_floor for r in DEFAULT.rules} | {r.tier_cap for r in DEFAULT.rules}
    assert tiers == {None, 1, 2, 4}


# -- validation: precise errors ----------------------------------------------------------------------

HEAD = """\
name: t
version: 1
default_tier: 3
indicators:
  victim_age: {type: int, kind: context}
  escalated: {type: bool, kind: risk}
  files: {type: int, kind: risk}
  informational: {type: bool, kind: mitigating}
  label: {type: str, kind: context}
rules:
"""


def errors_of(rules: str, head: str = HEAD) -> list[str]:
    with pytest.raises(PolicyError) as exc:
        load_policy(head + rules)
    return exc.value.errors


def rule(when: str, effect: str = "points: 1", rid: str = "r") -> str:
    return f"  - {{id: {rid}, when: {when}, {effect}, reason: A reason, source: S44}}\n"


@pytest.mark.parametrize(("rules", "expected"), [
    pytest.param(rule("{all: [{indicator: escalated, is: true}, {indicator: victim_agee, lt: 3}]}"),
                 "rules[0].when.all[1].indicator: unknown indicator 'victim_agee' (did you mean 'victim_age'?)", id="unknown-indicator"),
    pytest.param(rule("{indicator: escalated, lt: 3}"),
                 "rules[0].when.lt: cannot compare bool indicator 'escalated' with 'lt' (use 'is')", id="type-mismatch-order"),
    pytest.param(rule("{indicator: victim_age, eq: 'x'}"), "rules[0].when.eq: indicator 'victim_age' is int; 'x' is str", id="type-mismatch-eq"),
    pytest.param(rule("{indicator: victim_age, is: true}"), "rules[0].when.is: 'is' applies to bool indicators; 'victim_age' is int (use 'eq')",
                 id="is-on-int"),
    pytest.param(rule("{indicator: escalated, is: true}", rid="q") + rule("{indicator: escalated, is: true}", rid="s") + rule("{indicator: files, ge: 1}", rid="t"),
                 None, id="valid-control"),
    pytest.param(rule("{indicator: escalated, is: true}") + rule("{indicator: files, ge: 2}"),
                 "rules[1].id: duplicate rule id 'r' (first used at rules[0])", id="duplicate-id"),
    pytest.param(rule("{indicator: escalated, is: true}", "tier_floor: 5"), "rules[0].tier_floor: a tier is 1, 2, 3 or 4 (got 5)", id="floor-range"),
    pytest.param(rule("{not: {indicator: escalated, is: true}}", "tier_cap: 0"), "rules[0].tier_cap: a tier is 1, 2, 3 or 4 (got 0)", id="cap-range"),
    pytest.param(rule("{indicator: escalated, is: true}", "tier_floor: 1, points: 0"),
                 None, id="floor-without-points-is-fine"),
    pytest.param("  - {id: r, when: {indicator: escalated, is: true}, reason: A reason, source: S44}\n",
                 "rules[0]: a rule needs an effect: tier_floor, tier_cap or non-zero points", id="no-effect"),
    pytest.param(rule("{all: [{indicator: informational, is: true}, {not: {indicator: escalated, is: true}}]}", "tier_floor: 2"),
                 "rules[0].when.all[1].not.indicator: risk indicator 'escalated' is under 'not' in a rule that raises priority", id="risk-under-not-floor"),
    pytest.param(rule("{not: {indicator: escalated, is: true}}", "points: 3"),
                 "rules[0].when.not.indicator: risk indicator 'escalated' is under 'not'", id="risk-under-not-points"),
    pytest.param(rule("{indicator: files, lt: 10}", "tier_floor: 2"),
                 "rules[0].when.lt: risk indicator 'files' read with 'lt: 10' in a rule that raises priority", id="risk-lt-floor"),
    pytest.param(rule("{indicator: escalated, is: false}", "points: 2"),
                 "rules[0].when.is: risk indicator 'escalated' read with 'is: False'", id="risk-is-false-points"),
    pytest.param(rule("{indicator: escalated, is: true}", "points: -3"),
                 "rules[0].points: negative points need a condition that reads mitigating indicators only; rules[0].when reads risk indicator 'escalated'",
                 id="negative-points-on-risk"),
    pytest.param(rule("{indicator: files, ge: 1}", "tier_cap: 4"),
                 "rules[0].when.ge: risk indicator 'files' in a tier_cap rule: a higher risk value could make the cap apply", id="cap-on-risk"),
    pytest.param(rule("{indicator: escalated, iss: true}"), "rules[0].when: unknown key 'iss' (did you mean 'is'?)", id="unknown-operator"),
    pytest.param(rule("{indicator: escalated, is: true, eq: true}"), "rules[0].when: a comparison takes one operator, got 'is' and 'eq'", id="two-operators"),
    pytest.param(rule("{indicator: escalated, is: true}", "pionts: 1"), "rules[0].pionts: unknown key (did you mean 'points'?)", id="unknown-key"),
    pytest.param(rule("{every: []}"), "rules[0].when: a condition is a mapping with 'indicator' and one operator, or 'all', 'any' or 'not'",
                 id="bad-condition"),
    pytest.param(rule("{indicator: label, in: []}"), "rules[0].when: 'in' takes a non-empty list of values", id="empty-in"),
    pytest.param(rule("{indicator: escalated, is: true}", "points: 1, rid: 'Bad Id'").replace("id: r, ", ""),
                 "rules[0].rid: unknown key", id="misspelt-id-key"),
])
def test_malformed_policies_give_precise_errors(rules: str, expected: str | None) -> None:
    if expected is None:
        policy, _ = load_policy(HEAD + rules)
        assert policy.rules
        return
    errors = errors_of(rules)
    assert any(e.startswith(expected) for e in errors), errors


def test_syntax_error_names_the_line_and_column() -> None:
    text = HEAD + "  - id: r\n    when: {indicator: escalated, is: true}\n   points: 2\n"
    with pytest.raises(PolicyError) as exc:
        load_policy(text)
    (message,) = exc.value.errors
    assert message.startswith("(yaml) line 13, column 4:"), message


def test_every_problem_is_reported_at_once_and_check_policy_lists_them(tmp_path: Path) -> None:
    rules = (rule("{indicator: escalatd, is: true}") + rule("{indicator: escalated, gt: 1}", rid="b")
             + rule("{indicator: escalated, is: true}", rid="b"))
    errors = errors_of(rules)
    assert errors == [
        "rules[0].when.indicator: unknown indicator 'escalatd' (did you mean 'escalated'?)",
        "rules[1].when.gt: cannot compare bool indicator 'escalated' with 'gt' (use 'is')",
        "rules[2].id: duplicate rule id 'b' (first used at rules[1])",
    ]
    f = tmp_path / "p.yaml"
    f.write_text(HEAD + rules)
    assert check_policy(f) == errors
    assert check_policy(tmp_path / "missing.yaml")[0].startswith("(file): cannot read")


def test_structural_errors_name_their_path() -> None:
    bad_head = HEAD.replace("default_tier: 3", "default_tier: 7").replace("kind: context}\n  escalated", "kind: contxt}\n  escalated")
    errors = errors_of(rule("{indicator: escalated, is: true}"), bad_head)
    assert "default_tier: a tier is 1, 2, 3 or 4 (got 7)" in errors
    assert any(e.startswith("indicators.victim_age.kind: Input should be 'risk', 'mitigating' or 'context'") for e in errors), errors
    assert errors_of(rule("{indicator: label, eq: a}"), HEAD.replace("  label: {type: str, kind: context}\n", "  label: {type: str, kind: risk}\n")) == [
        "indicators.label.kind: a str indicator has no order, so it cannot be a risk indicator (declare it context)"]
    with pytest.raises(PolicyError, match=r"\(policy\): a policy is a mapping"):
        load_policy("- just\n- a list\n")


# -- evaluation ---------------------------------------------------------------------------------------


def test_escalated_is_tier_one_with_its_evidence() -> None:
    a = evaluate(DEFAULT, {"escalated": ind("escalated", True, "report R1 /incident_summary/escalate_to_high_priority")})
    assert (a.tier, a.policy_name, a.policy_version) == (1, "icac-default", DEFAULT_VERSION)
    (f,) = a.fired
    assert f.rule_id == "provider-escalation" and f.tier_floor == 1 and a.score == f.points > 0
    assert f.evidence == ["report R1 /incident_summary/escalate_to_high_priority"] and f.indicators == {"escalated": True}
    assert "S44" in f.source


def test_informational_alone_is_tier_four() -> None:
    a = evaluate(DEFAULT, inds(informational=True, escalated=False))
    assert a.tier == 4 and fired_ids(a) == ["informational-report"]


def test_floors_override_caps() -> None:
    a = evaluate(DEFAULT, inds(informational=True, escalated=True))
    assert a.tier == 1
    assert fired_ids(a) == ["provider-escalation", "informational-report"]  # both listed, in policy order


def test_possession_only_is_tier_three_with_points() -> None:
    a = evaluate(DEFAULT, inds(offence_possession=True, known_files=2, image_equivalents=160, days_since_incident=90))
    assert a.tier == 3
    assert fired_ids(a) == ["possession", "known-files", "volume-10", "volume-150"]
    assert a.score == 4 + 4 + 2 + 1 == sum(f.points for f in a.fired)


def test_nothing_known_gives_the_default_tier_and_wrong_types_count_as_missing() -> None:
    assert (evaluate(DEFAULT, {}).tier, evaluate(DEFAULT, {}).fired) == (3, [])
    odd = {"escalated": ind("escalated", 1), "known_files": ind("known_files", "3"), "image_equivalents": ind("image_equivalents", math.nan),
           "planned_meeting": ind("planned_meeting", None)}
    a = evaluate(DEFAULT, odd)
    assert (a.tier, a.score, a.fired) == (3, 0, [])


def test_production_contact_and_viral_cases() -> None:
    assert evaluate(DEFAULT, inds(novel_uploaded_files=2, offence_production=True)).tier == 2
    assert evaluate(DEFAULT, inds(access_to_children=True, offence_possession=True)).tier == 2
    assert evaluate(DEFAULT, inds(file_physical_harm=True, victim_band="prepubescent")).tier == 2
    assert evaluate(DEFAULT, inds(file_physical_harm=True, victim_band="pubescent")).tier == 3
    viral = evaluate(DEFAULT, inds(viral_bundle=True, offence_distribution=True, known_files=1, novel_uploaded_files=0))
    assert viral.tier == 4 and "viral-reshare" in fired_ids(viral)
    cap = next(f for f in viral.fired if f.rule_id == "viral-reshare")
    assert cap.evidence == ["report R1 /viral_bundle", "report R1 /novel_uploaded_files"]  # what it saw, and the absence it relied on
    assert evaluate(DEFAULT, inds(viral_bundle=True, novel_uploaded_files=1)).tier == 2
    assert evaluate(DEFAULT, inds(spam=True, known_files=0)).tier == 4
    assert evaluate(DEFAULT, inds(spam=True, known_files=3)).tier == 3


def test_any_reports_the_branches_that_held_only() -> None:
    a = evaluate(DEFAULT, inds(file_physical_harm=True, file_infant=False, victim_age_min=9, victim_band="prepubescent"))
    f = next(f for f in a.fired if f.rule_id == "young-child-physical-harm")
    assert f.indicators == {"file_physical_harm": True, "victim_band": "prepubescent", "victim_age_min": 9}


def test_mitigating_points_lower_the_score_but_not_the_tier() -> None:
    base = evaluate(DEFAULT, inds(sextortion=True))
    lower = evaluate(DEFAULT, inds(sextortion=True, minor_to_minor=True))
    assert base.tier == lower.tier == 1 and lower.score == base.score - 5


def test_evaluate_many_matches_evaluate() -> None:
    reports = [inds(escalated=True), inds(informational=True), {}, inds(offence_distribution=True, repeat_subject=True)]
    assert evaluate_many(DEFAULT, reports) == [evaluate(DEFAULT, r) for r in reports]


def test_assessments_serialise() -> None:
    a = evaluate(DEFAULT, inds(escalated=True, informational=True))
    dumped = a.model_dump()
    assert dumped["fired"][0]["rule_id"] == "provider-escalation"
    assert type(a).model_validate(dumped) == a


# -- versions, loading ---------------------------------------------------------------------------------


def test_policy_version_ignores_layout_and_comments_but_not_content() -> None:
    text = HEAD + rule("{indicator: escalated, is: true}")
    v = policy_version(text)
    assert v == policy_version("# a comment\n" + text.replace("version: 1", "version:    1   # same"))
    assert v == policy_version(text.replace("points: 1,", "points: 1, tier_cap: null,"))  # a spelled-out default
    assert v != policy_version(text.replace("points: 1", "points: 2"))
    assert load_policy(text)[1] == v


def test_load_policy_from_a_path(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(HEAD + rule("{indicator: escalated, is: true}"))
    assert load_policy(f) == load_policy(str(f)) == load_policy(f.read_text())


# -- columnar fast path ---------------------------------------------------------------------------------


def test_evaluate_columns_with_typed_and_masked_columns() -> None:
    n = 5
    cols: dict[str, Any] = {
        "escalated": np.array([True, False, False, False, False]),
        "informational": np.ma.MaskedArray([True, True, False, True, False], mask=[False, False, False, True, False]),
        "offence_possession": np.array([False, False, True, False, False]),
        "known_files": np.array([0, 0, 3, 0, np.nan]),
        "incident_type": np.array(["Child Sex Trafficking", "x", "x", "x", "x"]),
    }
    tiers, scores, fired = evaluate_columns(DEFAULT, cols, n)
    assert tiers.tolist() == [1, 4, 3, 3, 3]
    assert fired.shape == (len(DEFAULT.rules), n) and fired.dtype == np.bool_
    ids = [r.id for r in DEFAULT.rules]
    assert fired[ids.index("informational-report")].tolist() == [True, True, False, False, False]
    assert scores[2] == 4 + 4
    with pytest.raises(ValueError, match="shape"):
        evaluate_columns(DEFAULT, {"escalated": np.array([True])}, n)


# -- comparing policies ---------------------------------------------------------------------------------


def test_diff_rankings_counts_moves_and_names_the_rules() -> None:
    data = DEFAULT.model_dump()
    for r in data["rules"]:
        if r["id"] == "access-to-children":
            r["tier_floor"] = 1
        if r["id"] == "informational-report":
            r["tier_cap"] = 3
    b = parse_policy(data)
    reports = [
        ("R1", inds(access_to_children=True)),
        ("R2", inds(informational=True)),
        ("R3", inds(escalated=True)),
        ("R4", inds(offence_possession=True)),
    ]
    d = diff_rankings(DEFAULT, b, reports)
    assert d["reports"] == 4
    assert d["tier_counts"]["a"] == {"1": 1, "2": 1, "3": 1, "4": 1}
    assert d["tier_counts"]["b"] == {"1": 2, "2": 0, "3": 2, "4": 0}
    assert d["moved_up"] == {"1": 0, "2": 1, "3": 0, "4": 1} and d["moved_down"] == {"1": 0, "2": 0, "3": 0, "4": 0}
    assert d["transitions"] == {"2->1": 1, "4->3": 1}
    top = {c["report_id"]: c for c in d["top_changes"]}
    assert top["R1"]["rules_changed"] == ["access-to-children"] and top["R1"]["tier_rules"]["b"] == ["access-to-children"]
    assert top["R2"]["tier"] == {"a": 4, "b": 3}
    assert d["policy_a"]["fingerprint"] == DEFAULT_VERSION != d["policy_b"]["fingerprint"]
    assert diff_rankings(DEFAULT, DEFAULT, reports)["changed_reports"] == 0


# -- properties -----------------------------------------------------------------------------------------

STRS = ["Child Sex Trafficking", "Child Sexual Molestation", "Online Enticement of Children for Sexual Acts",
        "Unsolicited Obscene Material Sent to a Child", "infant_toddler", "prepubescent", "pubescent", "unknown", "x"]


def typed_value(t: str) -> st.SearchStrategy[Any]:
    if t == "bool":
        return st.booleans()
    if t == "int":
        return st.integers(-3, 1000)
    if t == "float":
        return st.floats(-1, 2, allow_nan=False) | st.integers(0, 2)
    return st.sampled_from(STRS)


def any_value(t: str) -> st.SearchStrategy[Any]:
    """A value of the declared type mostly; sometimes None, NaN or another type (all of which count as missing)."""
    odd = st.sampled_from([None, math.nan, "1", 1, 2.5, True])
    return st.one_of(typed_value(t), typed_value(t), typed_value(t), odd)


@st.composite
def indicator_sets(draw: st.DrawFn, policy: Policy) -> dict[str, Indicator]:
    out = {}
    for name, spec in policy.indicators.items():
        if draw(st.integers(0, 4)) == 0:
            continue  # missing
        out[name] = ind(name, draw(any_value(spec.type)), f"e:{name}")
    return out


RISK_BOOLS = [k for k, s in DEFAULT.indicators.items() if s.kind == "risk" and s.type == "bool"]
RISK_INTS = [k for k, s in DEFAULT.indicators.items() if s.kind == "risk" and s.type == "int"]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_raising_a_risk_indicator_never_makes_a_report_less_urgent(data: st.DataObject) -> None:
    base = data.draw(indicator_sets(DEFAULT))
    name = data.draw(st.sampled_from(RISK_BOOLS + RISK_INTS))
    before, after = dict(base), dict(base)
    if name in RISK_BOOLS:
        if data.draw(st.booleans()):
            before[name] = ind(name, False)
        else:
            before.pop(name, None)
        after[name] = ind(name, True)
    else:
        v = data.draw(st.integers(0, 1000))
        before[name] = ind(name, v)
        after[name] = ind(name, v + data.draw(st.integers(1, 1000)))
    a, b = evaluate(DEFAULT, before), evaluate(DEFAULT, after)
    assert b.tier <= a.tier, (name, fired_ids(a), fired_ids(b))
    assert b.score >= a.score, (name, fired_ids(a), fired_ids(b))


# random valid policies over a small vocabulary: name -> (type, kind)
VOCAB = {
    "rb1": ("bool", "risk"), "rb2": ("bool", "risk"), "ri": ("int", "risk"), "rf": ("float", "risk"),
    "mb": ("bool", "mitigating"), "mi": ("int", "mitigating"), "cs": ("str", "context"), "ci": ("int", "context"),
    "cf": ("float", "context"), "cb": ("bool", "context"),
}


def scalar(t: str) -> st.SearchStrategy[Any]:
    if t == "bool":
        return st.booleans()
    if t == "int":
        return st.integers(-5, 50)
    if t == "float":
        return st.floats(-5, 50, allow_nan=False, allow_infinity=False) | st.integers(-5, 50)
    return st.sampled_from(["a", "b", "yes", "null", "1", ""])


@st.composite
def leaves(draw: st.DrawFn, mode: str, negated: bool) -> dict[str, Any]:
    names = [n for n, (_, k) in VOCAB.items() if (k == "mitigating" if mode == "neg" else not (k == "risk" and mode == "raise" and negated))]
    name = draw(st.sampled_from(names))
    t, kind = VOCAB[name]
    numeric = t in ("int", "float")
    if kind == "risk" and mode in ("raise", "cap"):
        up = mode == "raise" or negated  # a cap reads risk so that a higher value cannot make it fire
        if numeric:
            op = draw(st.sampled_from(["gt", "ge", "present"] if up else ["lt", "le", "present"]))
            value: Any = True if op == "present" else draw(scalar("int"))
        else:
            op = draw(st.sampled_from(["is", "eq", "ne", "in", "present"]))
            truth = up if op != "ne" else not up
            value = [truth] if op == "in" else True if op == "present" else truth
        return {"indicator": name, op: value}
    ops = ["eq", "ne", "in", "present"] + (["lt", "le", "gt", "ge"] if numeric else []) + (["is"] if t == "bool" else [])
    op = draw(st.sampled_from(ops))
    if op == "present":
        value = draw(st.booleans())
    elif op == "in":
        value = draw(st.lists(scalar("int" if t == "int" else t), min_size=1, max_size=3))
    elif op in ("lt", "le", "gt", "ge"):
        value = draw(scalar("float"))
    else:
        value = draw(scalar(t))
    return {"indicator": name, op: value}


@st.composite
def conditions(draw: st.DrawFn, mode: str, negated: bool = False, depth: int = 0) -> dict[str, Any]:
    kind = draw(st.sampled_from(["leaf", "leaf", "all", "any", "not"] if depth < 3 else ["leaf"]))
    if kind == "leaf":
        return draw(leaves(mode, negated))
    if kind == "not":
        return {"not": draw(conditions(mode, not negated, depth + 1))}
    return {kind: draw(st.lists(conditions(mode, negated, depth + 1), min_size=1, max_size=3))}


@st.composite
def rules_(draw: st.DrawFn, i: int) -> dict[str, Any]:
    mode = draw(st.sampled_from(["raise", "raise", "cap", "neg"]))
    r: dict[str, Any] = {"id": f"rule-{i}", "when": draw(conditions(mode)), "reason": "A reason", "source": draw(st.sampled_from(["S44", "S19; S20"]))}
    if mode == "raise":
        floor = draw(st.none() | st.integers(1, 4))
        r["points"] = draw(st.integers(1 if floor is None else 0, 30))
        if floor is not None:
            r["tier_floor"] = floor
    elif mode == "cap":
        r["tier_cap"] = draw(st.integers(1, 4))
    else:
        r["points"] = draw(st.integers(-10, -1))
    return r


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    n = draw(st.integers(1, 8))
    data = {
        "name": "random", "version": draw(st.integers(0, 9)), "description": draw(st.text(max_size=20)),
        "default_tier": draw(st.integers(1, 4)),
        "indicators": {k: {"type": t, "kind": kind, "description": ""} for k, (t, kind) in VOCAB.items()},
        "rules": [draw(rules_(i)) for i in range(n)],
    }
    return parse_policy(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies())
def test_policy_round_trips_through_yaml(policy: Policy) -> None:
    text = yaml.safe_dump(policy.model_dump())
    again, version = load_policy(text)
    assert again == policy
    assert version == policy_fingerprint(policy) == policy_version(policy_to_yaml(policy))


def test_default_policy_round_trips_through_yaml() -> None:
    again, version = load_policy(yaml.safe_dump(DEFAULT.model_dump()))
    assert again == DEFAULT and version == DEFAULT_VERSION


def typed_columns(policy: Policy, reports: list[dict[str, Indicator]]) -> dict[str, Any]:
    """The same data as typed arrays: masked bool, float with NaN, object str."""
    n = len(reports)
    out: dict[str, Any] = {}
    for name, spec in policy.indicators.items():
        vals = [r[name].value if name in r else None for r in reports]
        if spec.type == "bool":
            ok = [type(v) is bool for v in vals]
            out[name] = np.ma.MaskedArray([v if o else False for v, o in zip(vals, ok, strict=True)], mask=[not o for o in ok], dtype=bool)
        elif spec.type in ("int", "float"):
            out[name] = np.array([float(v) if type(v) in (int, float) else math.nan for v in vals], dtype=np.float64)
        else:
            out[name] = np.array(vals, dtype=object)
        assert len(out[name]) == n
    return out


def check_agreement(policy: Policy, reports: list[dict[str, Indicator]]) -> None:
    expected = evaluate_many(policy, reports)
    ids = [r.id for r in policy.rules]
    for cols in (indicators_to_columns(policy, reports), typed_columns(policy, reports)):
        tiers, scores, fired = evaluate_columns(policy, cols, len(reports))
        assert tiers.tolist() == [a.tier for a in expected]
        assert scores.tolist() == [a.score for a in expected]
        for j, a in enumerate(expected):
            assert [ids[i] for i in np.flatnonzero(fired[:, j])] == fired_ids(a)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_evaluate_and_evaluate_columns_agree_on_the_default_policy(data: st.DataObject) -> None:
    reports = data.draw(st.lists(indicator_sets(DEFAULT), min_size=1, max_size=12))
    check_agreement(DEFAULT, reports)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_evaluate_and_evaluate_columns_agree_on_random_policies(data: st.DataObject) -> None:
    policy = data.draw(policies())
    reports = data.draw(st.lists(indicator_sets(policy), min_size=1, max_size=12))
    check_agreement(policy, reports)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_valid_policies_are_monotone_too(data: st.DataObject) -> None:
    policy = data.draw(policies())
    base = data.draw(indicator_sets(policy))
    name = data.draw(st.sampled_from(["rb1", "rb2", "ri", "rf"]))
    before, after = dict(base), dict(base)
    if VOCAB[name][0] == "bool":
        before[name], after[name] = ind(name, False), ind(name, True)
    else:
        v = data.draw(st.integers(-5, 60))
        before[name], after[name] = ind(name, v), ind(name, v + data.draw(st.integers(1, 60)))
    a, b = evaluate(policy, before), evaluate(policy, after)
    assert b.tier <= a.tier and b.score >= a.score
