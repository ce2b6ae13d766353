"""Assessing a batch of reports: which policy each report falls under, and the two ways of producing its assessment.

* the **stored-indicator path** (``assess_stored``): the static indicators arrive as columns (stored once per report),
  the context indicators are derived from the batch's context, every policy evaluates its reports as vectors
  (``evaluate_columns``), and the reasons are written from the fired matrix;
* the **per-report path** (``assess_report``): indicators extracted from the report itself and evaluated one report at a
  time. It is the reference the stored path is tested against, and the baseline of ``bench/assess.py``.

Both give rows for the ``assessments`` table, identical to the byte for the same inputs. A row is compact: the fired rules
without their evidence (``compact_fired_json``) and only the context indicators; the static indicators are stored once
with the report's facts (``report_indicators``) and the evidence is written back on reading (``expand_fired``). Writing
every indicator and every rule's evidence again on each assessment made rows of ~7 KB, most of them copies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from tiptriage.assess.indicators import (
    CONDITIONAL_CONTEXT,
    CONTEXT_INDICATORS,
    STATIC_INDICATORS,
    VOCABULARY,
    Context,
    ReportFacts,
    Value,
    context_values,
    to_microseconds,
)
from tiptriage.assess.policy import (
    Indicator,
    IndicatorValue,
    Policy,
    compact_fired_json,
    evaluate,
    evaluate_columns,
    fired_reads,
    reasons_json,
    rule_supports,
)


@dataclass(frozen=True)
class PolicyChoice:
    policy: Policy
    version: str  # content hash
    agency: str | None  # whose policy; None: the default


@dataclass
class Policies:
    """The default policy and the agencies' own: a report routed to an agency with its own policy is assessed under it."""

    default: PolicyChoice
    agencies: dict[str, PolicyChoice] = field(default_factory=dict)

    def for_route(self, agency: str | None) -> PolicyChoice:
        return self.agencies.get(agency, self.default) if agency is not None else self.default

    def expected(self, agency: str | None) -> tuple[str, str | None]:
        """(policy version, policy agency) an assessment of a report routed to ``agency`` should carry."""
        c = self.for_route(agency)
        return c.version, c.agency


def row(report_id: str, tier: int, score: int, choice: PolicyChoice, fired: str, reasons: str, indicators: str, now: datetime) -> dict[str, Any]:
    """An ``assessments`` row; ``own_tier`` is the tier until a linked report's tier lifts it (``pipeline.assess``)."""
    return {"report_id": report_id, "tier": tier, "score": score, "policy_name": choice.policy.name, "policy_version": choice.version,
            "fired": fired, "reasons": reasons, "indicators": indicators, "assessed_at": now, "policy_agency": choice.agency,
            "own_tier": tier}


def context_digest(reads: Sequence[str], values: Mapping[str, tuple[Value, Sequence[str]]]) -> str | None:
    """A digest of the evidence of the context indicators a fired rule read (None: it read none). The static ones come
    from the report alone and cannot change; with this a re-assessment tells that a rule has new evidence (one more linked
    report, another match) without the evidence being stored in the rule."""
    return _digest([_digest_part(n, values[n][1]) for n in reads if n in CONTEXT_INDICATORS and n in values])


def _digest_part(name: str, evidence: Sequence[str]) -> str:
    return name + "\x1f" + "\x1f".join(evidence)


def _digest(parts: Sequence[str]) -> str | None:
    return hashlib.blake2b("\x1e".join(parts).encode(), digest_size=8).hexdigest() if parts else None


_CONTEXT_READS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _context_reads(reads: tuple[str, ...]) -> tuple[str, ...]:
    """The context indicators among those a rule read (a few distinct tuples per policy, so kept)."""
    found = _CONTEXT_READS.get(reads)
    if found is None:
        found = _CONTEXT_READS[reads] = tuple(n for n in reads if n in CONTEXT_INDICATORS)
    return found


class _Digests:
    """``context_digest`` for the fired rules of one report: several rules read the same context indicators, and most
    read none, so each indicator's part and each distinct digest is made once."""

    __slots__ = ("done", "parts", "values")

    def __init__(self, values: Mapping[str, tuple[Value, Sequence[str]]]) -> None:
        self.values = values
        self.parts: dict[str, str] = {}
        self.done: dict[tuple[str, ...], str | None] = {}

    def of(self, reads: tuple[str, ...]) -> str | None:
        names = _CONTEXT_READS.get(reads)
        if names is None:
            names = _context_reads(reads)
        if not names:
            return None
        done = self.done.get(names, _UNSET)
        if done is not _UNSET:
            return done  # type: ignore[return-value]
        parts = []
        for n in names:
            if n in self.values:
                part = self.parts.get(n)
                if part is None:
                    part = self.parts[n] = _digest_part(n, self.values[n][1])
                parts.append(part)
        digest = _digest(parts)
        self.done[names] = digest
        return digest


_UNSET = object()


class _PlainColumns(Mapping[str, list[Any]]):
    """The static columns as Python values (``_plain``), each converted when a rule first asks for it: the rules of a
    batch read a few of the forty."""

    def __init__(self, columns: Mapping[str, NDArray[Any]]) -> None:
        self.columns = columns
        self.done: dict[str, list[Any]] = {}

    def get(self, name: str, default: Any = None) -> Any:
        found = self.done.get(name)
        if found is None:
            col = self.columns.get(name)
            if col is None:
                return default
            found = self.done[name] = _plain(STATIC_INDICATORS.get(name, ""), col)
        return found

    def __getitem__(self, name: str) -> list[Any]:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)


class _ReportValues(Mapping[str, IndicatorValue]):
    """One report's indicator values as the per-report path holds them (static ones it has, then its context ones), read
    off the batch's columns only for the names a rule asks about: building the whole map per report cost more than the
    rules that use it (measured)."""

    __slots__ = ("dyn", "j", "plain")

    def __init__(self, plain: Mapping[str, list[Any]], dyn: Mapping[str, tuple[Value, Sequence[str]]], j: int) -> None:
        self.plain, self.dyn, self.j = plain, dyn, j

    def get(self, name: str, default: Any = None) -> Any:
        held = self.dyn.get(name)
        if held is not None:
            return held[0]
        col = self.plain.get(name)
        if col is None:
            return default
        v = col[self.j]
        return default if v is None else v

    def __contains__(self, name: object) -> bool:
        if name in self.dyn:
            return True
        col = self.plain.get(name) if isinstance(name, str) else None
        return col is not None and col[self.j] is not None

    def __getitem__(self, name: str) -> IndicatorValue:
        if name not in self:
            raise KeyError(name)
        return self.get(name)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        yield from (n for n in self.plain if self.plain[n][self.j] is not None and n not in self.dyn)
        yield from self.dyn

    def __len__(self) -> int:
        return sum(1 for _ in self)


def context_json(values: Mapping[str, tuple[Value, Sequence[str]]]) -> str:
    """The context indicators as an assessment row stores them: name -> [value, evidence]. Read back whole by
    ``store.indicators.expand``; the names of the fields are not written 19 times per row (a third of its bytes). orjson
    writes it about ten times faster than ``json.dumps`` (1 against 10 microseconds a report, measured): it is written
    for every report on every assessment."""
    return orjson.dumps(values).decode()


def assess_report(report_id: str, indicators: Mapping[str, Indicator], choice: PolicyChoice, now: datetime) -> dict[str, Any]:
    """The per-report path for one report, from its extracted indicators (``indicators.extract``)."""
    a = evaluate(choice.policy, indicators)
    index = {r.id: i for i, r in enumerate(choice.policy.rules)}
    context = {k: (v.value, v.evidence) for k, v in indicators.items() if k in CONTEXT_INDICATORS}
    fired = [(index[f.rule_id], tuple(f.indicators), context_digest(tuple(f.indicators), context)) for f in a.fired]
    return row(report_id, a.tier, a.score, choice, compact_fired_json(choice.policy, fired),
               reasons_json(choice.policy, [i for i, _, _ in fired]), context_json(context), now)


class _Presence:
    """Which indicators each report of a batch has, as one integer a report: a bit per static indicator (a stored bool
    is always there; a number unless NaN; a string unless None) and one for the conditional context indicators
    (``CONDITIONAL_CONTEXT``: a resolved location). Every other context indicator every report has."""

    def __init__(self, static_columns: Mapping[str, NDArray[Any]], located: Sequence[bool]) -> None:
        n = len(located)
        self.bits: dict[str, int] = {}
        masks = np.zeros(n, np.int64)
        for b, (name, col) in enumerate(static_columns.items()):
            self.bits[name] = 1 << b
            if col.dtype.kind == "f":
                has = ~np.isnan(col)
            elif col.dtype.kind == "b":
                has = np.ones(n, np.bool_)
            else:
                has = np.fromiter((x is not None for x in col), np.bool_, n)
            masks |= has.astype(np.int64) << b
        located_bit = 1 << len(static_columns)
        for name in CONDITIONAL_CONTEXT:
            self.bits[name] = located_bit
        masks |= np.asarray(located, dtype=np.int64) << len(static_columns)
        self.masks = masks
        self.always = frozenset(CONTEXT_INDICATORS) - set(CONDITIONAL_CONTEXT)

    def has(self, name: str, mask: int) -> bool:
        return name in self.always or bool(mask & self.bits.get(name, 0))

    def rule_bits(self, names: Sequence[str]) -> int:
        out = 0
        for n in names:
            out |= self.bits.get(n, 0)
        return out


class _FiredReads:
    """``fired_reads`` for the reports of a batch: a rule with fixed supporting indicators reads those of them the report
    has, which its presence bits (``_Presence``) tell, so each (rule, presence) is worked out once; a rule under ``any`` or
    ``not`` asks ``fired_reads`` with the report's values."""

    def __init__(self, policy: Policy, presence: _Presence) -> None:
        self.policy = policy
        self.presence = presence
        self.supports = rule_supports(policy)
        self.bits = [None if names is None else presence.rule_bits(names) for names in self.supports]
        self.done: dict[tuple[int, int], tuple[int, tuple[str, ...]]] = {}

    def __call__(self, rules: Sequence[int], mask: int, values: Callable[[], Mapping[str, IndicatorValue]]) -> list[tuple[int, tuple[str, ...]]]:
        out: list[tuple[int, tuple[str, ...]]] = []
        for i in rules:
            bits = self.bits[i]
            if bits is None:
                out.extend(fired_reads(self.policy, [i], values()))
                continue
            key = (i, mask & bits)
            found = self.done.get(key)
            if found is None:
                names = self.supports[i] or ()
                found = self.done[key] = (i, tuple(n for n in names if self.presence.has(n, mask)))
            out.append(found)
        return out


def _column(kind: str, values: Sequence[Value]) -> NDArray[Any]:
    """A context indicator's column: typed when every report has a value, else an object array with None for missing."""
    if any(v is None for v in values):
        if kind in ("int", "float"):
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        return np.array(values, dtype=object)
    if kind == "bool":
        return np.array(values, dtype=np.bool_)
    if kind in ("int", "float"):
        return np.array(values, dtype=np.float64)
    return np.array(values, dtype=object)


def _plain(kind: str, col: NDArray[Any]) -> list[Any]:
    """A stored static column as Python values of the indicator's own type, None where the report does not have it."""
    if col.dtype.kind == "f":
        return [None if x != x else (int(x) if kind == "int" else x) for x in col.tolist()]
    return list(col.tolist())


def _as_declared(native: str, declared: str, col: NDArray[Any]) -> NDArray[Any]:
    """A column as the per-report path would see it under a policy that declares another type than the extractor's: the
    Python values themselves (ints back from float), so a value of the wrong type counts as missing, there as here."""
    if native == declared or (native == "int" and declared == "float"):
        return col
    if native == "int" and col.dtype.kind == "f":
        return np.array([None if x != x else int(x) for x in col.tolist()], dtype=object)
    return np.array(col.tolist(), dtype=object)


def assess_stored(
    ids: Sequence[str],
    static_columns: Mapping[str, NDArray[Any]],
    facts: Sequence[ReportFacts],
    contexts: Mapping[str, Context],
    routes: Mapping[str, str],
    policies: Policies,
    now: datetime,
) -> list[dict[str, Any]]:
    """Assessment rows for a batch from stored static indicators (columns, in ``ids`` order)."""
    n = len(ids)
    now_us = to_microseconds(now)
    dynamic = [context_values(facts[j], contexts[ids[j]], now_us) for j in range(n)]
    columns: dict[str, NDArray[Any]] = dict(static_columns)
    for name, kind in CONTEXT_INDICATORS.items():
        if name in CONDITIONAL_CONTEXT:
            columns[name] = _column(kind, [d[name][0] if name in d else None for d in dynamic])
        else:  # every report has it
            columns[name] = _column(kind, [d[name][0] for d in dynamic])
    plain = _PlainColumns(static_columns)
    presence = _Presence(static_columns, ["location_resolved" in d for d in dynamic])
    choices = [policies.for_route(routes.get(rid)) for rid in ids]
    groups: dict[tuple[str, str | None], list[int]] = {}
    for j, c in enumerate(choices):
        groups.setdefault((c.version, c.agency), []).append(j)
    rows: list[dict[str, Any] | None] = [None] * n
    for members in groups.values():
        choice = choices[members[0]]
        policy = choice.policy
        idx = np.array(members, dtype=np.intp)
        cols = {name: _as_declared(VOCABULARY[name], spec.type, columns[name][idx])
                for name, spec in policy.indicators.items() if name in columns}
        tiers, scores, fired = evaluate_columns(policy, cols, len(members))
        report_pos, rule_idx = np.nonzero(fired.T)  # (report, rule) pairs, by report then rule: policy order
        bounds = np.searchsorted(report_pos, np.arange(len(members) + 1))
        rule_lists = rule_idx.tolist()
        reads_of = _FiredReads(policy, presence)
        masks = presence.masks[idx].tolist()
        for k, j in enumerate(members):
            dyn = dynamic[j]
            fired_rules = rule_lists[bounds[k] : bounds[k + 1]]
            reads = reads_of(fired_rules, masks[k], partial(_ReportValues, plain, dyn, j))
            digests = _Digests(dyn)
            fired_text = compact_fired_json(policy, [(i, names, digests.of(names)) for i, names in reads])
            rows[j] = row(ids[j], int(tiers[k]), int(scores[k]), choice, fired_text, reasons_json(policy, fired_rules), context_json(dyn), now)
    return [r for r in rows if r is not None]
