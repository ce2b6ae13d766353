"""The priority policy engine: a declared vocabulary of indicators, named rules over them, a pure evaluator.

A policy is a YAML document (read with ``yaml.safe_load`` only)::

    name: icac-default
    version: 1
    description: ...
    default_tier: 3
    indicators:
      escalated: {type: bool, kind: risk, description: The provider escalated the report}
    rules:
      - id: provider-escalation
        when: {indicator: escalated, is: true}
        tier_floor: 1
        points: 40
        reason: The provider escalated the report as urgent
        source: S44 level 1; S46

Tiers: 1 = a child may be in imminent danger, 2 = contact or production risk, 3 = possession or
distribution, 4 = informational. ``tier_floor: F`` means "at least this urgent" (tier = min(tier, F));
``tier_cap: C`` means "no more urgent than this" (tier = max(tier, C)). Evaluation starts at
``default_tier``, applies every fired cap, then every fired floor, so a floor always overrides a cap:
a child at risk outranks an informational label. The score is the sum of the points of the fired rules,
so every point comes from a named rule with its reason, source and evidence.

Conditions: ``{indicator: N, is: true}``, ``{indicator: N, eq|ne|lt|le|gt|ge: V}``,
``{indicator: N, in: [..]}``, ``{indicator: N, present: true}``, ``{all: [..]}``, ``{any: [..]}``,
``{not: {..}}``. An indicator that is missing (absent, ``None``, NaN, or of the wrong type) makes every
comparison on it false; evaluation never fails.

Indicators are declared with a type (bool, int, float, str) and a kind: *risk* (true / a higher value
means more urgent), *mitigating* (may lower a score) or *context*. Validation guarantees monotonicity:
a rule that raises priority (a floor or positive points) may read a risk indicator only in a way where a
higher value can never stop it firing (no ``not``, no ``lt``/``le``/``ne``/``eq`` on numbers, no
``is: false``); a cap rule may read a risk indicator only in a way where a higher value can never make
it fire; negative points are allowed only on rules that read mitigating indicators alone. So raising a
risk indicator never makes a report's tier less urgent, nor its score lower.

Columnar fast path (``evaluate_columns``): ``columns`` maps indicator names to 1-D numpy arrays of length
``n``. A missing value is NaN in a float array, ``None`` (or any value of another type) in an object
array, or a masked entry of a ``numpy.ma.MaskedArray``; bool arrays and integer arrays have no missing
entries; an indicator without a column is missing everywhere. Numbers are compared as float64.
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import json
import math
import re
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

import numpy as np
import yaml
from numpy.typing import NDArray
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "AllOf",
    "AnyOf",
    "Assessment",
    "Condition",
    "FiredRule",
    "Indicator",
    "IndicatorSpec",
    "Leaf",
    "NotOf",
    "Policy",
    "PolicyError",
    "Rule",
    "check_policy",
    "compact_fired_json",
    "diff_rankings",
    "error_line",
    "evaluate",
    "evaluate_columns",
    "evaluate_many",
    "expand_fired",
    "fired_reads",
    "indicators_to_columns",
    "load_default_policy",
    "load_policy",
    "parse_policy",
    "policy_fingerprint",
    "policy_to_yaml",
    "policy_version",
    "rule_supports",
]

DEFAULT_POLICY_RESOURCE = "policy_default.yaml"

IndicatorValue: TypeAlias = bool | int | float | str | None
Scalar: TypeAlias = StrictBool | StrictInt | StrictFloat | StrictStr
IndicatorType: TypeAlias = Literal["bool", "int", "float", "str"]
IndicatorKind: TypeAlias = Literal["risk", "mitigating", "context"]
Op: TypeAlias = Literal["is", "eq", "ne", "lt", "le", "gt", "ge", "in", "present"]
TierNumber: TypeAlias = Annotated[StrictInt, Field(ge=1, le=4)]
Values: TypeAlias = Mapping[str, object]
Predicate: TypeAlias = Callable[[Values], bool]
BoolArray: TypeAlias = NDArray[np.bool_]
_M = TypeVar("_M", bound=BaseModel)

OPS: tuple[str, ...] = ("is", "eq", "ne", "lt", "le", "gt", "ge", "in", "present")
ORDER_OPS = frozenset({"lt", "le", "gt", "ge"})
TIERS = (1, 2, 3, 4)
_MODEL = ConfigDict(extra="forbid", frozen=True)
_KNOWN_KEYS = (
    "name", "version", "description", "default_tier", "indicators", "rules", "type", "kind", "id", "when",
    "tier_floor", "tier_cap", "points", "reason", "source", "indicator", "all", "any", "not", *OPS,
)


class PolicyError(ValueError):
    """A policy that cannot be used; ``errors`` holds one message per problem, each naming its YAML path."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


# -- data model ---------------------------------------------------------------------------------------


class Indicator(BaseModel):
    """A fact about one report, with pointers to where it came from (report element, file, linked report)."""

    model_config = _MODEL
    name: str
    value: bool | int | float | str | None
    evidence: list[str] = Field(default_factory=list)


class IndicatorSpec(BaseModel):
    model_config = _MODEL
    type: IndicatorType
    kind: IndicatorKind
    description: StrictStr = ""


def _suggest(word: str, candidates: Sequence[str] | Mapping[str, object]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _is_scalar(v: object) -> bool:
    if type(v) is float:
        return math.isfinite(v)
    return type(v) in (bool, int, str)


class Leaf(BaseModel):
    """A comparison on one indicator. Written in YAML as ``{indicator: NAME, OP: VALUE}``."""

    model_config = _MODEL
    indicator: StrictStr
    op: Op
    value: Scalar | list[Scalar]

    @model_validator(mode="before")
    @classmethod
    def _from_grammar(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if set(data) == {"indicator", "op", "value"}:  # the internal form, when built from Python
            return data
        keys = [k for k in data if k != "indicator"]
        problems = [f"unknown key '{k}'{_suggest(str(k), OPS)}" for k in keys if k not in OPS]
        ops = [k for k in keys if k in OPS]
        if not ops and not problems:
            problems.append("a comparison needs one operator: " + ", ".join(OPS))
        if len(ops) > 1:
            problems.append("a comparison takes one operator, got " + " and ".join(f"'{o}'" for o in ops))
        if not problems:
            op = ops[0]
            value = data[op]
            if op == "in":
                if not isinstance(value, list) or not value:
                    problems.append("'in' takes a non-empty list of values")
                elif not all(_is_scalar(v) for v in value):
                    problems.append("'in' values must be true/false, finite numbers or texts")
            elif not _is_scalar(value):
                problems.append(f"'{op}' takes one value: true/false, a finite number or a text (got {value!r})")
        if problems:
            raise PydanticCustomError("condition", "; ".join(problems))
        return {"indicator": data.get("indicator"), "op": ops[0], "value": data[ops[0]]}

    @model_serializer(mode="plain")
    def _to_grammar(self) -> dict[str, Any]:
        return {"indicator": self.indicator, self.op: list(self.value) if isinstance(self.value, list) else self.value}


class AllOf(BaseModel):
    model_config = _MODEL
    all: list[Condition] = Field(min_length=1)


class AnyOf(BaseModel):
    model_config = _MODEL
    any: list[Condition] = Field(min_length=1)


class NotOf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)
    not_: Condition = Field(alias="not")


def _condition_tag(v: Any) -> str | None:
    if isinstance(v, dict):
        for key, tag in (("indicator", "<leaf>"), ("all", "<all>"), ("any", "<any>"), ("not", "<not>")):
            if key in v:
                return tag
        return None
    if isinstance(v, Leaf):
        return "<leaf>"
    if isinstance(v, AllOf):
        return "<all>"
    if isinstance(v, AnyOf):
        return "<any>"
    return "<not>" if isinstance(v, NotOf) else None


Condition: TypeAlias = Annotated[
    Annotated[Leaf, Tag("<leaf>")] | Annotated[AllOf, Tag("<all>")] | Annotated[AnyOf, Tag("<any>")] | Annotated[NotOf, Tag("<not>")],
    Discriminator(
        _condition_tag,
        custom_error_type="condition",
        custom_error_message="a condition is a mapping with 'indicator' and one operator, or 'all', 'any' or 'not'",
    ),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()


class Rule(BaseModel):
    model_config = _MODEL
    id: Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)]
    when: Condition
    tier_floor: TierNumber | None = None
    tier_cap: TierNumber | None = None
    points: StrictInt = 0
    reason: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    source: Annotated[StrictStr, Field(min_length=1)]

    @model_validator(mode="after")
    def _has_effect(self) -> Rule:
        if self.tier_floor is None and self.tier_cap is None and self.points == 0:
            raise PydanticCustomError("no_effect", "a rule needs an effect: tier_floor, tier_cap or non-zero points")
        return self


class Policy(BaseModel):
    """A validated policy. Treat it as immutable: compiled forms are cached per instance."""

    model_config = _MODEL
    name: Annotated[StrictStr, Field(min_length=1)]
    version: Annotated[StrictInt, Field(ge=0)]
    description: StrictStr = ""
    default_tier: TierNumber
    indicators: dict[Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_]*$")], IndicatorSpec]
    rules: list[Rule]

    @model_validator(mode="after")
    def _semantics(self) -> Policy:
        errors = _semantic_errors(self)
        if errors:
            raise PolicyError(errors)
        return self


class FiredRule(BaseModel):
    model_config = _MODEL
    rule_id: str
    points: int
    tier_floor: int | None
    tier_cap: int | None
    reason: str
    source: str
    evidence: list[str]
    indicators: dict[str, bool | int | float | str | None] = Field(default_factory=dict)  # the values the rule relied on


class Assessment(BaseModel):
    model_config = _MODEL
    tier: int
    score: int
    policy_name: str
    policy_version: str
    fired: list[FiredRule]


# -- validation ---------------------------------------------------------------------------------------


def _leaves(cond: Condition, path: str, negated: bool = False) -> Iterator[tuple[Leaf, str, bool]]:
    """Every comparison under ``cond`` with its YAML path and whether an odd number of ``not`` encloses it."""
    if isinstance(cond, Leaf):
        yield cond, path, negated
    elif isinstance(cond, AllOf):
        for i, c in enumerate(cond.all):
            yield from _leaves(c, f"{path}.all[{i}]", negated)
    elif isinstance(cond, AnyOf):
        for i, c in enumerate(cond.any):
            yield from _leaves(c, f"{path}.any[{i}]", negated)
    else:
        yield from _leaves(cond.not_, f"{path}.not", not negated)


def _value_fits(t: str, v: object) -> bool:
    if t == "bool":
        return type(v) is bool
    if t == "int":
        return type(v) is int
    if t == "float":
        return type(v) in (int, float)
    return type(v) is str


def _type_error(leaf: Leaf, spec: IndicatorSpec) -> str | None:
    t, op, v, name = spec.type, leaf.op, leaf.value, leaf.indicator
    if op != "in" and isinstance(v, list):
        return f"'{op}' takes one value, not a list"
    if op == "present":
        return None if type(v) is bool else "'present' takes true or false"
    if op == "is":
        if t != "bool":
            return f"'is' applies to bool indicators; '{name}' is {t} (use 'eq')"
        return None if type(v) is bool else f"'is' takes true or false (got {v!r})"
    if op in ORDER_OPS:
        if t not in ("int", "float"):
            hint = " (use 'is')" if t == "bool" else " (use 'eq' or 'in')"
            return f"cannot compare {t} indicator '{name}' with '{op}'{hint}"
        return None if type(v) in (int, float) else f"'{op}' on {t} indicator '{name}' needs a number (got {v!r})"
    values = v if isinstance(v, list) else [v]
    bad = [x for x in values if not _value_fits(t, x)]
    if bad:
        return f"indicator '{name}' is {t}; {bad[0]!r} is {type(bad[0]).__name__}"
    return None


def _direction(leaf: Leaf, spec: IndicatorSpec) -> str:
    """How a rising risk value moves the comparison: 'up' (can only start to hold), 'down', 'none', 'mixed'."""
    op, v = leaf.op, leaf.value
    if op == "present":
        return "none"
    if spec.type == "bool":
        if op in ("is", "eq"):
            return "up" if v is True else "down"
        if op == "ne":
            return "up" if v is False else "down"
        held = set(v) if isinstance(v, list) else {v}
        return "none" if held == {True, False} else ("up" if held == {True} else "down")
    if op in ("gt", "ge"):
        return "up"
    if op in ("lt", "le"):
        return "down"
    return "mixed"


_FLIP = {"up": "down", "down": "up", "none": "none", "mixed": "mixed"}


def _semantic_errors(p: Policy) -> list[str]:
    errors: list[str] = []
    for name, spec in p.indicators.items():
        if spec.kind == "risk" and spec.type == "str":
            errors.append(f"indicators.{name}.kind: a str indicator has no order, so it cannot be a risk indicator (declare it context)")
    first: dict[str, int] = {}
    for i, rule in enumerate(p.rules):
        rp = f"rules[{i}]"
        if rule.id in first:
            errors.append(f"{rp}.id: duplicate rule id '{rule.id}' (first used at rules[{first[rule.id]}])")
        else:
            first[rule.id] = i
        raises = rule.tier_floor is not None or rule.points > 0
        for leaf, path, negated in _leaves(rule.when, f"{rp}.when"):
            name = leaf.indicator
            found = p.indicators.get(name)
            if found is None:
                errors.append(f"{path}.indicator: unknown indicator '{name}'{_suggest(name, p.indicators)}")
                continue
            spec = found
            problem = _type_error(leaf, spec)
            if problem:
                errors.append(f"{path}.{leaf.op}: {problem}")
                continue
            if rule.points < 0 and spec.kind != "mitigating":
                errors.append(f"{rp}.points: negative points need a condition that reads mitigating indicators only; "
                              f"{path} reads {spec.kind} indicator '{name}'")
            if spec.kind != "risk" or spec.type == "str":
                continue
            d = _direction(leaf, spec)
            hint = "is: true" if spec.type == "bool" else "gt or ge"
            if raises and negated:
                errors.append(f"{path}.indicator: risk indicator '{name}' is under 'not' in a rule that raises priority "
                              "(tier_floor or positive points): a higher risk value could stop the rule from firing")
            elif raises and d in ("down", "mixed"):
                errors.append(f"{path}.{leaf.op}: risk indicator '{name}' read with '{leaf.op}: {leaf.value}' in a rule that raises "
                              f"priority: a higher risk value could stop the rule from firing (use {hint})")
            if rule.tier_cap is not None and (_FLIP[d] if negated else d) in ("up", "mixed"):
                errors.append(f"{path}.{leaf.op}: risk indicator '{name}' in a tier_cap rule: a higher risk value could make the cap "
                              "apply (read risk indicators in a cap rule only under 'not', e.g. to say 'without other risk')")
    return errors


def _loc_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif (part.startswith("<") and part.endswith(">")) or part == "[key]":
            continue
        else:
            out += f".{part}" if out else part
    return out or "(policy)"


def _error_messages(exc: ValidationError) -> list[str]:
    out: list[str] = []
    for err in exc.errors():
        loc = err["loc"]
        ctx = err.get("ctx") or {}
        if err["type"] == "value_error" and isinstance(ctx.get("error"), PolicyError):
            prefix = _loc_path(loc) + "." if loc else ""
            out.extend(prefix + m for m in ctx["error"].errors)
            continue
        path = _loc_path(loc)
        last = loc[-1] if loc else ""
        given = err.get("input")
        shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = f"unknown key{_suggest(str(last), _KNOWN_KEYS)}"
        elif kind == "missing":
            msg = "missing required key"
        elif kind in ("less_than_equal", "greater_than_equal") and last in ("tier_floor", "tier_cap", "default_tier"):
            msg = f"a tier is 1, 2, 3 or 4{shown}"
        elif kind == "string_pattern_mismatch" and last == "id":
            msg = f"a rule id is a slug of lower-case letters, digits, '_', '-' and '.'{shown}"
        elif kind == "string_pattern_mismatch":
            msg = f"an indicator name is a slug of lower-case letters, digits and '_'{shown}"
        elif kind in ("condition", "no_effect"):
            msg = err["msg"]
        else:
            msg = err["msg"] + shown
        out.append(f"{path}: {msg}")
    return out


# libyaml's loader, where PyYAML was built with it: the default policy parses in about a tenth of the time, on every
# assessment run and every page that explains one. Its error messages differ from PyYAML's own, so a document it rejects
# is read again by the pure loader for the message.
_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def _parse_yaml(text: str) -> Any:
    if _FAST_LOADER is not None:
        try:
            return yaml.load(text, Loader=_FAST_LOADER)  # libyaml's SafeLoader: no arbitrary objects
        except yaml.YAMLError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
        context = f" ({e.context})" if e.context else ""
        raise PolicyError([f"(yaml) {where}: {e.problem or 'syntax error'}{context}"]) from None
    except yaml.YAMLError as e:
        raise PolicyError([f"(yaml): {e}"]) from None


def parse_policy(data: Any) -> Policy:
    """A Policy from already-parsed YAML/JSON data; PolicyError lists every problem with its path."""
    if not isinstance(data, dict):
        raise PolicyError([f"(policy): a policy is a mapping with name, version, default_tier, indicators and rules (got {type(data).__name__})"])
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        raise PolicyError(_error_messages(e)) from None


def _canonical_json(policy: Policy) -> str:
    return json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def policy_fingerprint(policy: Policy) -> str:
    """"sha256:" + 16 hex digits of the canonical JSON of the validated policy."""
    return "sha256:" + hashlib.sha256(_canonical_json(policy).encode("utf-8")).hexdigest()[:16]


def policy_version(policy_text: str) -> str:
    """The content version of a policy text: comments, layout, key order and spelled-out defaults do not change it."""
    return policy_fingerprint(parse_policy(_parse_yaml(policy_text)))


def policy_to_yaml(policy: Policy) -> str:
    return yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False, width=120)  # escapes non-ASCII: exact round trip


def _read(path_or_text: str | Path) -> str:
    if isinstance(path_or_text, Path):
        return path_or_text.read_text("utf-8")
    text = path_or_text
    if "\n" not in text and (text.endswith((".yaml", ".yml")) or Path(text).is_file()):
        return Path(text).read_text("utf-8")
    return text


def load_policy(path_or_text: str | Path) -> tuple[Policy, str]:
    """A policy and its content version from a Path, a file name ending .yaml/.yml, or the YAML text itself."""
    try:
        text = _read(path_or_text)
    except OSError as e:
        raise PolicyError([f"(file): cannot read {path_or_text}: {e.strerror or e}"]) from None
    policy = parse_policy(_parse_yaml(text))
    return policy, policy_fingerprint(policy)


def load_default_policy() -> tuple[Policy, str]:
    return load_policy(resources.files("tiptriage.data").joinpath(DEFAULT_POLICY_RESOURCE).read_text("utf-8"))


_PATH_PART = re.compile(r"[^.\[\]]+|\[\d+\]")


def error_line(text: str, error: str) -> int | None:
    """The line (1-based) of the policy text that an error message from ``PolicyError`` points at: the YAML path before
    its first ': ' is followed through the document as far as it exists (a missing key points at its parent)."""
    path = error.split(": ", 1)[0]
    if path.startswith("("):
        found = re.match(r"\(yaml\) line (\d+)", error)
        return int(found.group(1)) if found else None
    try:
        node: yaml.Node | None = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line = node.start_mark.line
    for part in _PATH_PART.findall(path):
        nxt: yaml.Node | None = None
        if part.startswith("[") and isinstance(node, yaml.SequenceNode):
            k = int(part[1:-1])
            nxt = node.value[k] if k < len(node.value) else None
            if nxt is not None:
                line = nxt.start_mark.line
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    nxt, line = value, key.start_mark.line
                    break
        if nxt is None:
            break
        node = nxt
    return line + 1


def check_policy(path: str | Path) -> list[str]:
    """Every problem in a policy file, each naming its YAML path; empty when the policy is valid."""
    try:
        load_policy(Path(path))
    except PolicyError as e:
        return e.errors
    return []


# -- compilation and evaluation ---------------------------------------------------------------------------


_NUM = frozenset({int, float})


def _num_ok(v: object) -> bool:
    return type(v) in _NUM and v == v


def _compile_leaf(leaf: Leaf, t: str) -> Predicate:
    """A closure for one comparison; a missing or mistyped value makes it false (and ``present`` false)."""
    name, op, c = leaf.indicator, leaf.op, leaf.value
    if op == "present":
        want = c is True
        if t == "bool":
            return lambda vals: (type(vals.get(name)) is bool) is want
        if t == "str":
            return lambda vals: (type(vals.get(name)) is str) is want
        return lambda vals: _num_ok(vals.get(name)) is want
    if t == "bool":
        held = set(c) if isinstance(c, list) else {c}
        if op == "ne":
            held = {not c}
        if held == {True, False}:
            return lambda vals: type(vals.get(name)) is bool
        one = True in held
        return lambda vals: vals.get(name) is one
    if t == "str":
        strs = frozenset(str(x) for x in (c if isinstance(c, list) else [c]))
        if op == "ne":
            return lambda vals: type(v := vals.get(name)) is str and v not in strs
        return lambda vals: type(v := vals.get(name)) is str and v in strs
    nums = [float(x) for x in (c if isinstance(c, list) else [c])]
    x = nums[0]
    num = _NUM
    # NaN compares false with every threshold, so only 'ne' and 'in' need the explicit v == v test
    if op == "gt":
        return lambda vals: type(v := vals.get(name)) in num and v > x  # type: ignore[operator]
    if op == "ge":
        return lambda vals: type(v := vals.get(name)) in num and v >= x  # type: ignore[operator]
    if op == "lt":
        return lambda vals: type(v := vals.get(name)) in num and v < x  # type: ignore[operator]
    if op == "le":
        return lambda vals: type(v := vals.get(name)) in num and v <= x  # type: ignore[operator]
    if op == "eq":
        return lambda vals: type(v := vals.get(name)) in num and v == x
    if op == "ne":
        return lambda vals: type(v := vals.get(name)) in num and v == v and v != x
    held_nums = frozenset(nums)
    return lambda vals: type(v := vals.get(name)) in num and v == v and v in held_nums


@dataclass(frozen=True, slots=True)
class _Node:
    kind: str
    fn: Predicate
    children: tuple[_Node, ...]
    names: tuple[str, ...]  # the indicators read under this node, in order of first appearance
    static: bool  # True when the indicators that support a true node do not depend on the values (leaf, all of static)


def _all_of(fns: tuple[Predicate, ...]) -> Predicate:
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns
        return lambda vals: a(vals) and b(vals)
    if len(fns) == 3:
        a, b, c = fns
        return lambda vals: a(vals) and b(vals) and c(vals)

    def all_of(vals: Values) -> bool:
        for g in fns:  # noqa: SIM110  (a plain loop is faster than all() over a generator)
            if not g(vals):
                return False
        return True

    return all_of


def _any_of(fns: tuple[Predicate, ...]) -> Predicate:
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns
        return lambda vals: a(vals) or b(vals)
    if len(fns) == 3:
        a, b, c = fns
        return lambda vals: a(vals) or b(vals) or c(vals)

    def any_of(vals: Values) -> bool:
        for g in fns:  # noqa: SIM110
            if g(vals):
                return True
        return False

    return any_of


def _compile_node(cond: Condition, specs: Mapping[str, IndicatorSpec]) -> _Node:
    if isinstance(cond, Leaf):
        return _Node("leaf", _compile_leaf(cond, specs[cond.indicator].type), (), (cond.indicator,), True)
    if isinstance(cond, NotOf):
        inner = _compile_node(cond.not_, specs)
        f = inner.fn
        return _Node("not", lambda vals: not f(vals), (inner,), inner.names, False)
    is_all = isinstance(cond, AllOf)
    kids = tuple(_compile_node(c, specs) for c in (cond.all if isinstance(cond, AllOf) else cond.any))
    names = tuple(dict.fromkeys(n for k in kids for n in k.names))
    fns = tuple(k.fn for k in kids)
    if is_all:
        return _Node("all", _all_of(fns), kids, names, all(k.static for k in kids))
    return _Node("any", _any_of(fns), kids, names, False)


@dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    version: str
    default_tier: int
    rules: tuple[Rule, ...]
    nodes: tuple[_Node, ...]
    checks: tuple[tuple[int, Predicate], ...]  # (rule index, predicate), in policy order
    caps: tuple[int | None, ...]  # per rule
    floors: tuple[int | None, ...]  # per rule
    statics: tuple[tuple[str, ...] | None, ...]  # per rule: the supporting indicators when they are fixed
    templates: tuple[dict[str, Any], ...]  # per rule: the fixed fields of its FiredRule
    compact_heads: dict[tuple[int, tuple[str, ...]], str]  # (rule, indicators read) -> its stored entry up to the digest
    reason_lists: dict[tuple[int, ...], str]  # rules that fired -> their reasons as a JSON array


_CACHE: dict[int, tuple[weakref.ref[Policy], _Compiled]] = {}


def _compiled(policy: Policy) -> _Compiled:
    key = id(policy)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is policy:
        return hit[1]
    rules = tuple(policy.rules)
    nodes = tuple(_compile_node(r.when, policy.indicators) for r in rules)
    comp = _Compiled(
        name=policy.name,
        version=policy_fingerprint(policy),
        default_tier=policy.default_tier,
        rules=rules,
        nodes=nodes,
        checks=tuple((i, node.fn) for i, node in enumerate(nodes)),
        caps=tuple(r.tier_cap for r in rules),
        floors=tuple(r.tier_floor for r in rules),
        statics=tuple(node.names if node.static else None for node in nodes),
        templates=tuple({"rule_id": r.id, "points": r.points, "tier_floor": r.tier_floor, "tier_cap": r.tier_cap, "reason": r.reason,
                         "source": r.source, "evidence": [], "indicators": {}} for r in rules),
        compact_heads={},
        reason_lists={},
    )

    def forget(_ref: weakref.ref[Policy]) -> None:
        _CACHE.pop(key, None)

    _CACHE[key] = (weakref.ref(policy, forget), comp)
    return comp


def _support(node: _Node, vals: Values, out: dict[str, None]) -> None:
    """The indicators that make a true node true: for ``not``, every indicator it read that the report has."""
    if node.kind == "leaf":
        out[node.names[0]] = None
    elif node.kind == "all":
        for k in node.children:
            _support(k, vals, out)
    elif node.kind == "any":
        for k in node.children:
            if k.fn(vals):
                _support(k, vals, out)
    else:
        for n in node.names:
            if n in vals:
                out[n] = None


# one shared fields-set per class: the models are frozen, and pydantic copies the set before changing a copy
_FIRED_FIELDS = set(FiredRule.model_fields)
_ASSESSMENT_FIELDS = set(Assessment.model_fields)


def _trusted(cls: type[_M], values: dict[str, Any], fields: set[str]) -> _M:
    """``cls.model_construct(**values)`` without its per-field loop: ``values`` holds every field, already valid."""
    m = cls.__new__(cls)
    object.__setattr__(m, "__dict__", values)
    object.__setattr__(m, "__pydantic_fields_set__", fields)
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m


def _assess(c: _Compiled, vals: Values, indicators: Mapping[str, Indicator]) -> Assessment:
    fired = [i for i, fn in c.checks if fn(vals)]
    tier = c.default_tier
    caps, floors = c.caps, c.floors
    for i in fired:
        cap = caps[i]
        if cap is not None and cap > tier:
            tier = cap
    for i in fired:
        floor = floors[i]
        if floor is not None and floor < tier:
            tier = floor
    out: list[FiredRule] = []
    score = 0
    for i in fired:
        rule = c.rules[i]
        names = c.statics[i]
        if names is None:
            found: dict[str, None] = {}
            _support(c.nodes[i], vals, found)
            names = tuple(found)
        if len(names) == 1:
            ind = indicators.get(names[0])  # absent only under 'present: false'
            evidence = [] if ind is None else list(ind.evidence)
            used: dict[str, IndicatorValue] = {} if ind is None else {names[0]: ind.value}
        else:
            held = [indicators[n] for n in names if n in indicators]
            evidence = list(dict.fromkeys([e for x in held for e in x.evidence]))
            used = {n: indicators[n].value for n in names if n in indicators}
        score += rule.points
        fields = c.templates[i].copy()
        fields["evidence"] = evidence
        fields["indicators"] = used
        out.append(_trusted(FiredRule, fields, _FIRED_FIELDS))
    return _trusted(Assessment, {"tier": tier, "score": score, "policy_name": c.name, "policy_version": c.version, "fired": out},
                    _ASSESSMENT_FIELDS)


def rule_supports(policy: Policy) -> tuple[tuple[str, ...] | None, ...]:
    """Per rule, the indicators that support it when it fires, where they do not depend on the values (None: a rule
    under ``any`` or ``not``, whose supporting indicators ``fired_reads`` works out from the report's values)."""
    return _compiled(policy).statics


def fired_reads(policy: Policy, rules: Sequence[int], values: Mapping[str, IndicatorValue]) -> list[tuple[int, tuple[str, ...]]]:
    """Per fired rule (indices into ``policy.rules``): the indicators the report has that it read, as ``evaluate`` names
    them in ``FiredRule.indicators``. ``values`` holds the report's values (a name is in it when the report has the
    indicator); only a rule under ``any`` or ``not`` reads the values themselves, so a lazy mapping serves well."""
    c = _compiled(policy)
    out: list[tuple[int, tuple[str, ...]]] = []
    for i in rules:
        names = c.statics[i]
        if names is None:
            found: dict[str, None] = {}
            _support(c.nodes[i], values, found)
            names = tuple(found)
        out.append((i, tuple(n for n in names if n in values)))
    return out


def compact_fired_json(policy: Policy, fired: Sequence[tuple[int, tuple[str, ...], str | None]]) -> str:
    """The fired rules as an assessment stores them: per rule (index, indicators read, digest of their context evidence)
    the fixed fields of its ``FiredRule``, ``reads`` and ``context_evidence``, as ``json.dumps`` writes such a list. The
    evidence and values themselves are written back on reading (``expand_fired``) from the report's indicators, which
    are stored once (static ones with the report's facts, context ones with the assessment) instead of once more per rule."""
    c = _compiled(policy)
    parts = []
    for i, reads, digest in fired:
        head = c.compact_heads.get((i, reads))
        if head is None:
            fields = {k: v for k, v in c.templates[i].items() if k not in ("evidence", "indicators")}
            head = json.dumps({**fields, "reads": list(reads), "context_evidence": None})[: -len("null}")]
            c.compact_heads[(i, reads)] = head
        parts.append(head + ("null" if digest is None else f'"{digest}"') + "}")  # a hex digest: nothing to escape
    return "[" + ", ".join(parts) + "]"


def reasons_json(policy: Policy, rules: Sequence[int]) -> str:
    """The reasons of the rules that fired (indices into ``policy.rules``, in policy order), as the JSON array an
    assessment stores beside its fired rules: what the queue shows of each report, read without parsing every rule's
    entry (a page of fired rules is about 90 kB at the default policy; its reasons, a tenth of that). A batch has few
    distinct sets of fired rules, so each array is written once."""
    c = _compiled(policy)
    key = tuple(rules)
    found = c.reason_lists.get(key)
    if found is None:
        found = c.reason_lists[key] = json.dumps([c.rules[i].reason for i in key])
    return found


def expand_fired(entries: Sequence[Mapping[str, Any]], values: Mapping[str, Any], evidence: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """Stored fired rules with their evidence and values written back (``FiredRule.model_dump()`` each, as ``evaluate``
    gives them), from the report's indicators. An entry stored whole (before assessments were stored compact) is kept."""
    out: list[dict[str, Any]] = []
    for e in entries:
        if "reads" not in e:
            out.append(dict(e))
            continue
        reads = [n for n in e["reads"] if n in values]
        ev = list(evidence.get(reads[0], ())) if len(reads) == 1 else list(dict.fromkeys(x for n in reads for x in evidence.get(n, ())))
        out.append({"rule_id": e["rule_id"], "points": e["points"], "tier_floor": e["tier_floor"], "tier_cap": e["tier_cap"],
                    "reason": e["reason"], "source": e["source"], "evidence": ev, "indicators": {n: values[n] for n in reads}})
    return out


def evaluate(policy: Policy, indicators: Mapping[str, Indicator]) -> Assessment:
    """Tier, score and the fired rules (in policy order, each with its evidence) for one report."""
    c = _compiled(policy)
    return _assess(c, {k: ind.value for k, ind in indicators.items()}, indicators)


def evaluate_many(policy: Policy, reports: Sequence[Mapping[str, Indicator]]) -> list[Assessment]:
    """``evaluate`` for many reports; the policy is compiled once (to closures) and reused.

    The cyclic garbage collector is paused while the batch runs: the results are trees without cycles,
    and with millions of live objects its repeated scans would otherwise cost more than the evaluation.
    """
    c = _compiled(policy)
    paused = gc.isenabled()
    gc.disable()
    try:
        return [_assess(c, {k: ind.value for k, ind in ind_map.items()}, ind_map) for ind_map in reports]
    finally:
        if paused:
            gc.enable()


# -- columnar fast path ---------------------------------------------------------------------------------


def _column(t: str, raw: Any, n: int, name: str) -> tuple[BoolArray, NDArray[Any]]:
    """(present mask, data) for one column; see the module docstring for the missing-value conventions."""
    given: BoolArray | None = None
    if isinstance(raw, np.ma.MaskedArray):
        given = ~np.ma.getmaskarray(raw)
        arr = np.asarray(raw.data)
    else:
        arr = np.asarray(raw)
    if arr.shape != (n,):
        raise ValueError(f"column '{name}' has shape {arr.shape}, expected ({n},)")
    kind = arr.dtype.kind
    if t == "bool":
        if kind == "b":
            present, data = np.ones(n, np.bool_), arr.astype(np.bool_, copy=False)
        elif kind == "O":
            present = np.fromiter((type(x) is bool for x in arr), np.bool_, n)
            data = np.fromiter((x is True for x in arr), np.bool_, n)
        else:
            raise TypeError(f"column '{name}' (bool) must be a bool or object array, not {arr.dtype}")
    elif t in ("int", "float"):
        if kind in "iuf":
            data = arr.astype(np.float64)
            present = ~np.isnan(data)
        elif kind == "O":
            present = np.fromiter((_num_ok(x) for x in arr), np.bool_, n)
            data = np.fromiter((float(x) if ok else math.nan for x, ok in zip(arr, present, strict=True)), np.float64, n)
        else:
            raise TypeError(f"column '{name}' ({t}) must be a numeric or object array, not {arr.dtype}")
    else:
        if kind == "U":
            present, data = np.ones(n, np.bool_), arr.astype(object)
        elif kind == "O":
            present = np.fromiter((type(x) is str for x in arr), np.bool_, n)
            data = arr
        else:
            raise TypeError(f"column '{name}' (str) must be a str or object array, not {arr.dtype}")
    if given is not None:
        present = present & given
    return present, data


def _leaf_mask_raw(leaf: Leaf, t: str, col: tuple[BoolArray, NDArray[Any]] | None, n: int) -> Any:
    op, c = leaf.op, leaf.value
    if col is None:
        return np.zeros(n, np.bool_) if op != "present" or c is True else np.ones(n, np.bool_)
    present, data = col
    if op == "present":
        return present.copy() if c is True else ~present
    values = c if isinstance(c, list) else [c]
    if t == "bool":
        if op in ("is", "eq"):
            return present & (data if c is True else ~data)
        if op == "ne":
            return present & (~data if c is True else data)
        held = set(values)
        if held == {True, False}:
            return present.copy()
        return present & (data if True in held else ~data)
    if t == "str":
        hits = np.zeros(len(data), np.bool_)
        for v in values:
            hits |= np.asarray(data == v, dtype=np.bool_)
        return present & (~hits if op == "ne" else hits)
    x = float(values[0])
    with np.errstate(invalid="ignore"):
        if op == "gt":
            return present & (data > x)
        if op == "ge":
            return present & (data >= x)
        if op == "lt":
            return present & (data < x)
        if op == "le":
            return present & (data <= x)
        if op == "eq":
            return present & (data == x)
        if op == "ne":
            return present & (data != x)
        return present & np.isin(data, np.array([float(v) for v in values]))


def _leaf_mask(leaf: Leaf, t: str, col: tuple[BoolArray, NDArray[Any]] | None, n: int) -> BoolArray:
    return np.asarray(_leaf_mask_raw(leaf, t, col, n), dtype=np.bool_)


def _cond_mask(cond: Condition, specs: Mapping[str, IndicatorSpec], cols: dict[str, tuple[BoolArray, NDArray[Any]] | None], n: int) -> BoolArray:
    if isinstance(cond, Leaf):
        return _leaf_mask(cond, specs[cond.indicator].type, cols[cond.indicator], n)
    if isinstance(cond, NotOf):
        return ~_cond_mask(cond.not_, specs, cols, n)
    kids = cond.all if isinstance(cond, AllOf) else cond.any
    acc = _cond_mask(kids[0], specs, cols, n)
    for k in kids[1:]:
        m = _cond_mask(k, specs, cols, n)
        acc = acc & m if isinstance(cond, AllOf) else acc | m
    return acc


def evaluate_columns(policy: Policy, columns: Mapping[str, Any], n: int) -> tuple[NDArray[np.int8], NDArray[np.int64], BoolArray]:
    """Tiers (int8), scores (int64) and the fired matrix (bool, n_rules × n) for ``n`` reports given as columns."""
    cols: dict[str, tuple[BoolArray, NDArray[Any]] | None] = {}
    for name, spec in policy.indicators.items():
        raw = columns.get(name)
        cols[name] = None if raw is None else _column(spec.type, raw, n, name)
    fired = np.zeros((len(policy.rules), n), np.bool_)
    for i, rule in enumerate(policy.rules):
        fired[i] = _cond_mask(rule.when, policy.indicators, cols, n)
    tiers = np.full(n, policy.default_tier, np.int8)
    for i, rule in enumerate(policy.rules):
        if rule.tier_cap is not None:
            np.maximum(tiers, np.where(fired[i], np.int8(rule.tier_cap), np.int8(0)), out=tiers)
    for i, rule in enumerate(policy.rules):
        if rule.tier_floor is not None:
            np.minimum(tiers, np.where(fired[i], np.int8(rule.tier_floor), np.int8(127)), out=tiers)
    scores = np.zeros(n, np.int64)
    for i, rule in enumerate(policy.rules):
        if rule.points:
            scores += np.int64(rule.points) * fired[i]
    return tiers, scores, fired


def indicators_to_columns(policy: Policy, reports: Sequence[Mapping[str, Indicator]]) -> dict[str, NDArray[Any]]:
    """Object columns (``None`` = missing) for the policy's indicators, for ``evaluate_columns``."""
    n = len(reports)
    out: dict[str, NDArray[Any]] = {}
    for name in policy.indicators:
        col = np.empty(n, dtype=object)
        for j, r in enumerate(reports):
            ind = r.get(name)
            col[j] = None if ind is None else ind.value
        out[name] = col
    return out


# -- comparing two policies ------------------------------------------------------------------------------


def _positions(ids: Sequence[str], results: Sequence[Assessment]) -> list[int]:
    order = sorted(range(len(ids)), key=lambda i: (results[i].tier, -results[i].score, ids[i]))
    pos = [0] * len(ids)
    for rank, i in enumerate(order, start=1):
        pos[i] = rank
    return pos


def _tier_rules(a: Assessment, default_tier: int) -> list[str]:
    """The fired rules that set the final tier (floors first, then caps); empty when it is the default."""
    floors = [f.rule_id for f in a.fired if f.tier_floor == a.tier]
    if floors:
        return floors
    return [f.rule_id for f in a.fired if f.tier_cap == a.tier] if a.tier != default_tier else []


def _tier_with(default_tier: int, caps: Sequence[int], floors: Sequence[int]) -> int:
    """The tier from fired caps and floors, as ``_assess`` combines them: caps first, then floors override them."""
    tier = max([default_tier, *caps])
    return min([tier, *floors])


def what_would_change(policy: Policy, indicators: Mapping[str, Indicator]) -> dict[str, Any]:
    """What sets a report's tier under ``policy`` and what would change it, for ``explain``:

    - ``set_by``: the fired rules that set the tier (floors, else caps; none: the policy's default tier);
    - ``without``: the tier if none of those rules fired (the next rules take over);
    - ``more_urgent``: every rule that did not fire and would make the tier more urgent if it did, with that tier and the
      condition it needs; ``less_urgent``: likewise for caps that would make it less urgent.
    """
    a = evaluate(policy, indicators)
    fired = {f.rule_id for f in a.fired}
    caps = [f.tier_cap for f in a.fired if f.tier_cap is not None]
    floors = [f.tier_floor for f in a.fired if f.tier_floor is not None]
    set_by = _tier_rules(a, policy.default_tier)
    without = _tier_with(policy.default_tier, [f.tier_cap for f in a.fired if f.tier_cap is not None and f.rule_id not in set_by],
                         [f.tier_floor for f in a.fired if f.tier_floor is not None and f.rule_id not in set_by])
    more: list[dict[str, Any]] = []
    less: list[dict[str, Any]] = []
    for r in policy.rules:
        if r.id in fired:
            continue
        t = _tier_with(policy.default_tier, caps + ([r.tier_cap] if r.tier_cap is not None else []),
                       floors + ([r.tier_floor] if r.tier_floor is not None else []))
        if t != a.tier:
            entry = {"rule_id": r.id, "tier": t, "reason": r.reason, "when": json.dumps(r.when.model_dump(), separators=(", ", ": "))}
            (more if t < a.tier else less).append(entry)
    more.sort(key=lambda e: e["tier"])
    return {"tier": a.tier, "set_by": set_by, "without": without, "more_urgent": more, "less_urgent": less}


def _effect(f: FiredRule) -> tuple[int, int | None, int | None]:
    return f.points, f.tier_floor, f.tier_cap


def diff_rankings(a: Policy, b: Policy, reports: Sequence[tuple[str, Mapping[str, Indicator]]], top: int = 20) -> dict[str, Any]:
    """How tiers and queue positions change from policy ``a`` to policy ``b`` over the same reports.

    Position = place in the queue ordered by tier, then score (higher first), then report id. "up" means
    more urgent under ``b``. ``top_changes`` lists the largest moves with the rules that explain them.
    """
    ids = [rid for rid, _ in reports]
    ra = evaluate_many(a, [ind for _, ind in reports])
    rb = evaluate_many(b, [ind for _, ind in reports])
    pa, pb = _positions(ids, ra), _positions(ids, rb)
    keys = [str(t) for t in TIERS]
    tier_counts = {"a": dict.fromkeys(keys, 0), "b": dict.fromkeys(keys, 0)}
    up, down = dict.fromkeys(keys, 0), dict.fromkeys(keys, 0)
    transitions: dict[str, int] = {}
    rank = {"up": 0, "down": 0, "same": 0}
    changes: list[tuple[tuple[int, int, str], dict[str, Any]]] = []
    for i, rid in enumerate(ids):
        x, y = ra[i], rb[i]
        tier_counts["a"][str(x.tier)] += 1
        tier_counts["b"][str(y.tier)] += 1
        if y.tier < x.tier:
            up[str(x.tier)] += 1
        elif y.tier > x.tier:
            down[str(x.tier)] += 1
        if y.tier != x.tier:
            key = f"{x.tier}->{y.tier}"
            transitions[key] = transitions.get(key, 0) + 1
        rank["up" if pb[i] < pa[i] else "down" if pb[i] > pa[i] else "same"] += 1
        if (x.tier, x.score, pa[i]) == (y.tier, y.score, pb[i]):
            continue
        fa = {f.rule_id: f for f in x.fired}
        fb = {f.rule_id: f for f in y.fired}
        only_a = [r for r in fa if r not in fb]
        only_b = [r for r in fb if r not in fa]
        changed = [r for r in fa if r in fb and _effect(fa[r]) != _effect(fb[r])]
        parts = [f"tier {x.tier} -> {y.tier}" if x.tier != y.tier else f"tier {x.tier}", f"score {x.score} -> {y.score}"]
        if only_b:
            parts.append("fires only under B: " + ", ".join(only_b))
        if only_a:
            parts.append("fires only under A: " + ", ".join(only_a))
        if changed:
            parts.append("effect changed: " + ", ".join(changed))
        entry = {
            "report_id": rid,
            "tier": {"a": x.tier, "b": y.tier},
            "score": {"a": x.score, "b": y.score},
            "position": {"a": pa[i], "b": pb[i]},
            "tier_rules": {"a": _tier_rules(x, a.default_tier), "b": _tier_rules(y, b.default_tier)},
            "rules_only_a": only_a,
            "rules_only_b": only_b,
            "rules_changed": changed,
            "explanation": "; ".join(parts),
        }
        changes.append(((-abs(x.tier - y.tier), -abs(pa[i] - pb[i]), rid), entry))
    changes.sort(key=lambda c: c[0])
    return {
        "policy_a": {"name": a.name, "version": a.version, "fingerprint": policy_fingerprint(a)},
        "policy_b": {"name": b.name, "version": b.version, "fingerprint": policy_fingerprint(b)},
        "reports": len(ids),
        "tier_counts": tier_counts,
        "moved_up": up,
        "moved_down": down,
        "tier_unchanged": sum(1 for i in range(len(ids)) if ra[i].tier == rb[i].tier),
        "transitions": dict(sorted(transitions.items())),
        "positions": rank,
        "changed_reports": len(changes),
        "top_changes": [e for _, e in changes[:top]],
    }
