"""Assessing a batch of reports: which policy each report falls under, and the two ways of producing its assessment.

* the **stored-indicator path** (``assess_stored``): the static indicators arrive as columns (stored once per report),
  the context indicators are derived from the batch's context, every policy evaluates its reports as vectors
  (``evaluate_columns``), and the reasons are written from the fired matrix;
* the **per-report path** (``assess_report``): indicators extracted from the report itself and evaluated one report at a
  time. It is the reference the stored path is tested against, and the baseline of ``bench/assess.py``.

Both give rows for the ``assessments`` table, identical to the byte for the same inputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tiptriage.assess.indicators import (
    CONTEXT_INDICATORS,
    VOCABULARY,
    Context,
    ReportFacts,
    Value,
    context_values,
    to_microseconds,
)
from tiptriage.assess.policy import Indicator, Policy, evaluate, evaluate_columns, fired_json


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


def row(report_id: str, tier: int, score: int, choice: PolicyChoice, fired: str, indicators: str, now: datetime) -> dict[str, Any]:
    """An ``assessments`` row; ``own_tier`` is the tier until a linked report's tier lifts it (``pipeline.assess``)."""
    return {"report_id": report_id, "tier": tier, "score": score, "policy_name": choice.policy.name, "policy_version": choice.version,
            "fired": fired, "indicators": indicators, "assessed_at": now, "policy_agency": choice.agency, "own_tier": tier}


def assess_report(report_id: str, indicators: Mapping[str, Indicator], choice: PolicyChoice, now: datetime) -> dict[str, Any]:
    """The per-report path for one report, from its extracted indicators (``indicators.extract``)."""
    a = evaluate(choice.policy, indicators)
    return row(report_id, a.tier, a.score, choice, json.dumps([f.model_dump() for f in a.fired]),
               json.dumps({k: v.model_dump() for k, v in indicators.items()}), now)


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
    static_json: Sequence[str],
    facts: Sequence[ReportFacts],
    contexts: Mapping[str, Context],
    routes: Mapping[str, str],
    policies: Policies,
    now: datetime,
) -> list[dict[str, Any]]:
    """Assessment rows for a batch from stored static indicators (columns and their JSON, in ``ids`` order)."""
    n = len(ids)
    now_us = to_microseconds(now)
    dynamic = [context_values(facts[j], contexts[ids[j]], now_us) for j in range(n)]
    columns: dict[str, NDArray[Any]] = dict(static_columns)
    for name, kind in CONTEXT_INDICATORS.items():
        columns[name] = _column(kind, [d[name][0] if name in d else None for d in dynamic])
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
        for k, j in enumerate(members):
            static = json.loads(static_json[j])
            values = {name: ind["value"] for name, ind in static.items()}
            evidence = {name: ind["evidence"] for name, ind in static.items()}
            dyn = dynamic[j]
            for name, (v, ev) in dyn.items():
                values[name] = v
                evidence[name] = ev
            fired_text = fired_json(policy, rule_lists[bounds[k] : bounds[k + 1]], values, evidence)
            # the static part is stored as the assessment writes it: only the context part is encoded here
            dyn_json = json.dumps({name: {"name": name, "value": v, "evidence": ev} for name, (v, ev) in dyn.items()})
            rows[j] = row(ids[j], int(tiers[k]), int(scores[k]), choice, fired_text, static_json[j][:-1] + ", " + dyn_json[1:], now)
    return [r for r in rows if r is not None]
