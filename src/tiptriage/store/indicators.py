"""Re-assessment in bulk: stored report indicators, every report's context in a few queries, and writes that keep history.

``report_indicators`` holds what a report alone says (``assess.indicators.report_facts``): one column per static
indicator, read back as vectors, and the same indicators with their evidence as the JSON an assessment writes. The rest
of an assessment's inputs (matches, subjects, bundles, places, records, deconfliction, routes) is read here for a whole
batch at once, in a fixed order, so the evidence lists come out the same on every backend and on every run.

An assessment is replaced only when it differs from the stored one; when what an investigator sees changes (tier, score,
policy, or the fired rules and their evidence) the previous assessment goes to ``assessment_history`` with the change and
the reason it was assessed again.

An assessment row is compact (``assess.batch``): its fired rules name the indicators they read, and it holds the context
indicators only; ``expand`` joins the report's stored static indicators and writes each rule's evidence and values back.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa
from numpy.typing import NDArray

from tiptriage.assess.indicators import FACTS_VERSION, STATIC_INDICATORS, Context, Match, ReportFacts, StaticIndicators
from tiptriage.assess.policy import expand_fired
from tiptriage.store import queue_keys
from tiptriage.store.bulk import insert_rows, update_rows_sqlite, upsert_rows_sqlite
from tiptriage.store.crypto import Cipher, cipher_of
from tiptriage.store.idlists import among
from tiptriage.store.schema import (
    agency_records,
    assessment_history,
    assessments,
    bundle_reports,
    bundles,
    cases,
    deconfliction_notices,
    file_matches,
    report_accounts,
    report_hash_summary,
    report_indicators,
    report_locations,
    report_routes,
    reports,
    subject_accounts,
)
from tiptriage.store.times import aware

CHUNK = 900  # ids per IN list: under SQLite's oldest limit of 999 bound values per statement
# an assessment is rewritten when any of these differ; it goes to the history when one of the first four does, or a rule
# fires or stops, weighs differently or has other evidence (``_rules``: not when only a value it read moved, as the days
# since the incident do every day)
_COMPARED = ("tier", "score", "policy_version", "policy_agency", "fired", "policy_name", "indicators", "own_tier")
_SHOWN = _COMPARED[:4]
assert _COMPARED[:2] == ("tier", "score"), "replace() tells a move in the queue by the first two"
_MATCH_KEYS = Match._fields
_LOCATION_KEYS = ("city", "region", "country_code", "confidence", "needs_review")
_BUNDLE_KEYS = ("id", "reports", "representative_report_id", "key_kind")
_FACT_COLUMNS = ("file_count", "incident_us", "incident_iso", "upload_candidates", "prior_reports", "record_keys")


def chunks(ids: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def scopes(col: sa.ColumnElement[str], ids: Sequence[str], ranged: bool, dialect: str) -> Iterator[sa.ColumnElement[bool]]:
    """The WHERE clause that covers ``ids``: a range when ``ranged`` (``ids`` sorted, and nearly every report between the
    first and the last wanted), else the list as one value (``idlists.among``). A range is one index scan where a list is
    a lookup per id; rows of reports outside ``ids`` that a range brings are skipped by the caller."""
    if ranged and ids:
        yield col.between(ids[0], ids[-1])
    elif ids:
        yield among(col, ids, dialect)


@dataclass
class Replaced:
    """What ``replace`` did: rows written, assessments kept in the history, and (tier, own tier) of each report before."""

    written: int
    kept: int
    before: dict[str, tuple[int, int | None]]


@dataclass
class FactsBatch:
    """Stored facts of a batch, in ``ids`` order: static indicator columns and what the context indicators need."""

    ids: list[str]
    columns: dict[str, NDArray[Any]]  # bool arrays; float arrays for int indicators (NaN: no value); object arrays for str
    facts: list[ReportFacts]
    record_keys: list[list[str]]  # keyed hashes


def _static_array(kind: str, values: Sequence[Any]) -> NDArray[Any]:
    if kind == "bool":
        return np.array(values, dtype=np.bool_)
    if kind in ("int", "float"):
        return np.array(values, dtype=np.float64)  # None becomes NaN: the column's missing value
    return np.array(values, dtype=object)


def _strings(text: str) -> tuple[str, ...]:
    return () if text == "[]" else tuple(orjson.loads(text))  # most lists are empty: skip the parser


def static_json(static: StaticIndicators) -> str:
    """The static indicators as ``json.dumps({name: Indicator.model_dump()})`` writes them."""
    return json.dumps({k: {"name": k, "value": v, "evidence": ev} for k, (v, ev) in static.items()})


class IndicatorRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._cipher: Cipher | None = None

    @property
    def cipher(self) -> Cipher:
        if self._cipher is None:
            self._cipher = cipher_of(self.engine)
        return self._cipher

    def record_key(self, clear: str) -> str:
        """How a report's identifier is kept for matching agency records: the same keyed hash ``agency_records.key`` holds."""
        return self.cipher.index(clear)

    def facts_version(self) -> str:
        """The extractor's version and a probe of the index key: stored record keys are keyed hashes, so a new index key
        (``keys rotate --rekey-index``) makes every stored row stale and it is derived again."""
        return f"{FACTS_VERSION}.{self.cipher.index('tiptriage report_indicators probe')[-8:]}"

    # -- facts ---------------------------------------------------------------------------------

    def save_facts(self, items: Sequence[tuple[StaticIndicators, ReportFacts, Sequence[str]]], at: datetime) -> None:
        """Store (or replace) the facts of reports: (static indicators, facts, keyed hashes of its identifiers) each."""
        version = self.facts_version()
        rows = []
        for static, f, keys in items:
            row: dict[str, Any] = {"report_id": f.report_id, "facts_version": version}
            for name in STATIC_INDICATORS:
                row[name] = static[name][0] if name in static else None
            row.update(file_count=f.file_count, incident_us=f.incident_us, incident_iso=f.incident_iso,
                       upload_candidates=json.dumps(list(f.upload_candidates)), prior_reports=json.dumps(list(f.prior_reports)),
                       record_keys=json.dumps(sorted(set(keys))), static_json=static_json(static), extracted_at=at)
            rows.append(row)
        with self.engine.begin() as conn:
            for part in chunks([r["report_id"] for r in rows]):
                conn.execute(report_indicators.delete().where(report_indicators.c.report_id.in_(part)))
            insert_rows(conn, report_indicators, rows)

    def dense(self, ids: Sequence[str]) -> bool:
        """Whether ``ids``, in the database's order of report ids (as ``ORDER BY id`` gives them: its collation, not
        Python's), is nearly every report from its first to its last, so that ranges serve better than IN lists."""
        if not ids:
            return False
        with self.engine.connect() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(reports).where(reports.c.id.between(ids[0], ids[-1]))).scalar_one()
        return int(n) <= len(ids) * 1.25

    def with_facts(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` whose stored facts are current."""
        version = self.facts_version()
        out: set[str] = set()
        with self.engine.connect() as conn:
            q = sa.select(report_indicators.c.report_id).where(among(report_indicators.c.report_id, ids, self.dialect),
                                                               report_indicators.c.facts_version == version)
            out.update(str(r[0]) for r in conn.execute(q))
        return out

    def load_facts(self, ids: Sequence[str], ranged: bool = False) -> FactsBatch:
        """The stored, current facts of ``ids`` (those without are left out: derive them and load again)."""
        version = self.facts_version()
        names = list(STATIC_INDICATORS)
        cols = [report_indicators.c.report_id, *[report_indicators.c[n] for n in names], *[report_indicators.c[n] for n in _FACT_COLUMNS]]
        rows: list[Sequence[Any]] = []
        order = {rid: i for i, rid in enumerate(ids)}
        with self.engine.connect() as conn:
            for where in scopes(report_indicators.c.report_id, ids, ranged, self.dialect):
                q = sa.select(*cols).where(where, report_indicators.c.facts_version == version)
                rows.extend(r for r in conn.execute(q).all() if r[0] in order)
        rows.sort(key=lambda r: order[r[0]])
        by_column = list(zip(*rows, strict=True)) if rows else [() for _ in cols]
        k = 1 + len(names)
        file_count, incident_us, incident_iso, candidates, prior, keys = by_column[k:]
        distribution = by_column[1 + names.index("offence_distribution")]
        found = [str(r) for r in by_column[0]]
        facts = [ReportFacts(report_id=found[i], file_count=int(file_count[i]), distribution=bool(distribution[i]), incident_us=int(incident_us[i]),
                             incident_iso=str(incident_iso[i]), upload_candidates=_strings(candidates[i]), prior_reports=_strings(prior[i]))
                 for i in range(len(found))]
        return FactsBatch(
            ids=found,
            columns={n: _static_array(STATIC_INDICATORS[n], by_column[1 + j]) for j, n in enumerate(names)},
            facts=facts,
            record_keys=[list(_strings(x)) for x in keys],
        )

    def record_keys_of(self, record_ids: Sequence[str]) -> set[str]:
        """The keys agency records are matched on now (keyed hashes), for the records named."""
        out: set[str] = set()
        with self.engine.connect() as conn:
            for part in chunks(sorted(set(record_ids))):
                out.update(r[0] for r in conn.execute(sa.select(agency_records.c.key).where(agency_records.c.record_id.in_(part))).all())
        return out

    def reports_with_record_keys(self, keys: set[str]) -> list[str]:
        """The reports (with stored facts) whose reported people have one of ``keys``: those an agency-records change can
        move. The database scans the stored key lists, so no list is parsed here."""
        found: set[str] = set()
        with self.engine.connect() as conn:
            for part in chunks(sorted(keys), 50):
                q = sa.select(report_indicators.c.report_id).where(sa.or_(*[report_indicators.c.record_keys.contains(json.dumps(k), autoescape=True)
                                                                           for k in part]))
                found.update(r[0] for r in conn.execute(q).all())
        return sorted(found)

    # -- context -------------------------------------------------------------------------------

    def contexts(self, ids: Sequence[str], record_keys: Mapping[str, Sequence[str]], ranged: bool = False) -> dict[str, Context]:
        """What later stages know about each report, read for the whole batch: the same contents, in the same order, as
        ``AssessmentRepository.context_rows`` and ``records_for`` give one report at a time."""
        out = {r: Context() for r in ids}
        by_subject: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            for where in scopes(report_hash_summary.c.report_id, ids, ranged, self.dialect):
                for (rid,) in conn.execute(sa.select(report_hash_summary.c.report_id).where(where)).all():
                    if rid in out:
                        out[rid].hash_summary = {"report_id": rid}  # only its presence matters: the report went through matching
            # plain tuples zipped with fixed keys: a RowMapping per row costs more than everything done with it
            for where in scopes(file_matches.c.report_id, ids, ranged, self.dialect):
                # each report's matches in id order, as one report's query gives them; by report first, so the report index
                # gives the order and the database sorts nothing
                q = (sa.select(file_matches.c.report_id, *[file_matches.c[k] for k in _MATCH_KEYS]).where(where)
                     .order_by(file_matches.c.report_id, file_matches.c.id))
                make = Match._make
                for r in conn.execute(q).all():
                    if r[0] in out:
                        out[r[0]].matches.append(make(r[1:]))
            for where in scopes(report_locations.c.report_id, ids, ranged, self.dialect):
                q = sa.select(report_locations.c.report_id, *[report_locations.c[k] for k in _LOCATION_KEYS]).where(where)
                for r in conn.execute(q).all():
                    if r[0] in out:
                        out[r[0]].location = dict(zip(_LOCATION_KEYS, r[1:], strict=True))
            for where in scopes(bundle_reports.c.report_id, ids, ranged, self.dialect):
                q = (sa.select(bundle_reports.c.report_id, *[bundles.c[k] for k in _BUNDLE_KEYS])
                     .select_from(bundle_reports.join(bundles, bundles.c.id == bundle_reports.c.bundle_id))
                     .where(where).order_by(bundle_reports.c.report_id, bundles.c.id))
                for r in conn.execute(q).all():
                    if r[0] in out:
                        out[r[0]].bundle = dict(zip(_BUNDLE_KEYS, r[1:], strict=True))
            for where in scopes(deconfliction_notices.c.report_id, ids, ranged, self.dialect):
                q = sa.select(deconfliction_notices).where(where).order_by(deconfliction_notices.c.id)
                for n in conn.execute(q).mappings().all():
                    if n["report_id"] in out:
                        out[n["report_id"]].deconfliction.append(dict(n))
            for where in scopes(report_accounts.c.report_id, ids, ranged, self.dialect):
                q = (sa.select(report_accounts.c.report_id, subject_accounts.c.subject_id)
                     .select_from(report_accounts.join(subject_accounts, subject_accounts.c.account_key == report_accounts.c.account_key))
                     .where(where).order_by(report_accounts.c.report_id, subject_accounts.c.subject_id, report_accounts.c.account_key))
                for row in conn.execute(q).all():
                    rid, sid = str(row[0]), str(row[1])
                    if rid not in out:
                        continue
                    out[rid].subject_id = sid
                    by_subject.setdefault(sid, []).append(rid)
            if by_subject:
                q = (sa.select(subject_accounts.c.subject_id, report_accounts.c.report_id, report_accounts.c.account_key)
                     .select_from(subject_accounts.join(report_accounts, report_accounts.c.account_key == subject_accounts.c.account_key))
                     .where(among(subject_accounts.c.subject_id, sorted(by_subject), self.dialect))
                     .order_by(subject_accounts.c.subject_id, report_accounts.c.report_id, report_accounts.c.account_key))
                for sid, rid, key in conn.execute(q).all():
                    service = key.partition(":")[0]
                    for own in by_subject[sid]:
                        c = out[own]
                        c.subject_reports.append(rid)
                        c.subject_services.append(service)
            wanted = sorted({k for r in ids for k in record_keys.get(r, ())})
            found: dict[str, list[dict[str, Any]]] = {}
            if wanted:
                q = (sa.select(agency_records.c.record_id, agency_records.c.key, agency_records.c.access_to_children,
                               agency_records.c.prior_contact_offence).where(among(agency_records.c.key, wanted, self.dialect)))
                for rec in conn.execute(q).mappings():
                    found.setdefault(rec["key"], []).append({**dict(rec), "matched_on": str(rec["key"]).partition(":")[0]})
        if found:
            for rid in ids:
                out[rid].records = [rec for k in record_keys.get(rid, ()) for rec in found.get(k, ())]
        return out

    def tiers(self, ids: Sequence[str], ranged: bool = False) -> dict[str, tuple[int, int | None]]:
        """Stored (tier, own tier) of those of ``ids`` that are assessed (``ranged``: as ``scopes`` reads them)."""
        out: dict[str, tuple[int, int | None]] = {}
        wanted = set(ids)
        with self.engine.connect() as conn:
            for where in scopes(assessments.c.report_id, ids if ranged else sorted(wanted), ranged, self.dialect):
                q = sa.select(assessments.c.report_id, assessments.c.tier, assessments.c.own_tier).where(where)
                out.update({str(r[0]): (int(r[1]), None if r[2] is None else int(r[2])) for r in conn.execute(q) if r[0] in wanted})
        return out

    def own_tier1(self) -> set[str]:
        """Every assessed report of own tier 1 (a few per cent of them: a small partial index, ``ix_assessments_own_tier1``)."""
        with self.engine.connect() as conn:
            return {str(r[0]) for r in conn.execute(sa.select(assessments.c.report_id).where(assessments.c.own_tier == 1))}

    def arrested(self, ids: Iterable[str]) -> set[str]:
        """Those of ``ids`` whose case was closed with the outcome arrest."""
        out: set[str] = set()
        with self.engine.connect() as conn:
            wanted = sorted(set(ids))
            if wanted:
                q = sa.select(cases.c.report_id).where(among(cases.c.report_id, wanted, self.dialect), cases.c.outcome == "arrest")
                out.update(str(r[0]) for r in conn.execute(q))
        return out

    def subject_reports(self, ids: Iterable[str]) -> dict[str, set[str]]:
        """Report -> every report of its subject (itself included); a report not linked to a subject maps to itself."""
        wanted = sorted(set(ids))
        out: dict[str, set[str]] = {r: {r} for r in wanted}
        with self.engine.connect() as conn:
            subject_of: dict[str, set[str]] = {}
            for part in chunks(wanted):
                q = (sa.select(report_accounts.c.report_id, subject_accounts.c.subject_id)
                     .select_from(report_accounts.join(subject_accounts, subject_accounts.c.account_key == report_accounts.c.account_key))
                     .where(report_accounts.c.report_id.in_(part)))
                for rid, sid in conn.execute(q):
                    subject_of.setdefault(str(sid), set()).add(str(rid))
            for part in chunks(sorted(subject_of)):
                q = (sa.select(subject_accounts.c.subject_id, report_accounts.c.report_id)
                     .select_from(subject_accounts.join(report_accounts, report_accounts.c.account_key == subject_accounts.c.account_key))
                     .where(subject_accounts.c.subject_id.in_(part)))
                for sid, rid in conn.execute(q):
                    for own in subject_of[str(sid)]:
                        out[own].add(str(rid))
        return out

    def routes(self, ids: Sequence[str], ranged: bool = False) -> dict[str, str]:
        """The agency each routed report is with now."""
        out: dict[str, str] = {}
        wanted = set(ids)
        with self.engine.connect() as conn:
            for where in scopes(report_routes.c.report_id, ids, ranged, self.dialect):
                q = sa.select(report_routes.c.report_id, report_routes.c.agency_id).where(where)
                out.update({r[0]: r[1] for r in conn.execute(q).all() if r[0] in wanted})
        return out

    # -- which reports need assessing ------------------------------------------------------------

    def stale(self, expected: Callable[[str | None], tuple[str, str | None]]) -> list[str]:
        """Reports not assessed, assessed under another policy than ``expected(route agency)`` gives (version, policy
        agency), or whose stored facts are missing or out of date."""
        version = self.facts_version()
        q = (
            sa.select(reports.c.id, assessments.c.policy_version, assessments.c.policy_agency, report_routes.c.agency_id,
                      report_indicators.c.facts_version)
            .select_from(reports.outerjoin(assessments, assessments.c.report_id == reports.c.id)
                         .outerjoin(report_routes, report_routes.c.report_id == reports.c.id)
                         .outerjoin(report_indicators, report_indicators.c.report_id == reports.c.id))
            .order_by(reports.c.id)
        )
        out = []
        with self.engine.connect() as conn:
            for rid, pv, pa, route, fv in conn.execute(q):
                if pv is None or fv != version or (pv, pa) != expected(route):
                    out.append(rid)
        return out

    # -- writing assessments -------------------------------------------------------------------

    def replace(self, rows: Sequence[dict[str, Any]], trigger: str, at: datetime, ranged: bool = False) -> Replaced:
        """Write the assessments that differ from the stored ones; keep the replaced ones whose tier, score, policy or
        reasons changed in the history, with the change and ``trigger``."""
        # plain tuples, (report_id, assessed_at, *_COMPARED): a RowMapping or dict per stored row costs more than comparing
        stored: dict[str, tuple[Any, ...]] = {}
        cols = [assessments.c.report_id, assessments.c.assessed_at, *[assessments.c[k] for k in _COMPARED]]
        with self.engine.begin() as conn:
            wanted = {r["report_id"] for r in rows}
            for where in scopes(assessments.c.report_id, [r["report_id"] for r in rows], ranged, self.dialect):
                for c in conn.execute(sa.select(*cols).where(where)).all():
                    if c[0] in wanted:
                        stored[c[0]] = tuple(c)
            changed: list[dict[str, Any]] = []
            in_place: list[dict[str, Any]] = []  # stored with the same tier, score and own tier: those columns stay
            replaced: list[tuple[dict[str, Any], dict[str, Any]]] = []
            moved: list[str] = []  # new, or a new tier or score: the queue keys of its access rows change
            compared = operator.itemgetter(*_COMPARED)
            fired_at, own_at = _COMPARED.index("fired"), _COMPARED.index("own_tier")
            for r in rows:
                found = stored.get(r["report_id"])
                new = compared(r)
                if found is None:
                    changed.append(r)
                    moved.append(r["report_id"])
                    continue
                if found[2:] == new:
                    continue
                changed.append(r)
                # tuples compared by position: _COMPARED begins with the tier and score, and then the rest of _SHOWN
                if found[2:4] != new[:2]:
                    moved.append(r["report_id"])
                elif found[2 + own_at] == new[own_at]:
                    in_place.append(r)
                if found[2 : 2 + len(_SHOWN)] != new[: len(_SHOWN)] or (found[2 + fired_at] != new[fired_at] and _rules_differ(found[2 + fired_at], new[fired_at])):
                    replaced.append((dict(zip(("report_id", "assessed_at", *_COMPARED), found, strict=True)), r))
            # the history keeps a replaced assessment's rules whole, with the evidence it had: its compact row is expanded
            static = _static_json(conn, [old["report_id"] for old, _ in replaced])
            history: list[dict[str, Any]] = []
            for old, r in replaced:
                fired, _ = expand(old["fired"], old["indicators"], static.get(old["report_id"]))
                history.append({
                    "report_id": r["report_id"], "tier": old["tier"], "score": old["score"], "policy_name": old["policy_name"],
                    "policy_version": old["policy_version"], "policy_agency": old["policy_agency"], "fired": json.dumps(fired),
                    "assessed_at": old["assessed_at"], "new_tier": r["tier"], "new_score": r["score"],
                    "new_policy_version": r["policy_version"], "change": json.dumps(_change(old, r)), "trigger": trigger[:2000],
                    "replaced_at": at,
                })
            if self.dialect == "sqlite":
                kept = {id(r) for r in in_place}
                upsert_rows_sqlite(conn, assessments, [r for r in changed if id(r) not in kept], "report_id")
                update_rows_sqlite(conn, assessments, in_place, "report_id", unchanged=("tier", "score", "own_tier"))
            elif changed:
                conn.execute(assessments.delete().where(among(assessments.c.report_id, [r["report_id"] for r in changed], self.dialect)))
                insert_rows(conn, assessments, list(changed))
            insert_rows(conn, assessment_history, history)
            # an access row holds its report's tier and score (queue_keys): only those that moved need them copied again
            queue_keys.refresh(conn, moved)
        at_tier, at_own = 2 + _COMPARED.index("tier"), 2 + _COMPARED.index("own_tier")
        return Replaced(len(changed), len(history), {rid: (c[at_tier], c[at_own]) for rid, c in stored.items()})

    def history(self, report_id: str) -> list[dict[str, Any]]:
        """Earlier assessments of a report, newest first, each with what changed and why it was assessed again."""
        with self.engine.connect() as conn:
            q = sa.select(assessment_history).where(assessment_history.c.report_id == report_id).order_by(assessment_history.c.id.desc())
            return [{**dict(r), "fired": json.loads(r["fired"]), "change": json.loads(r["change"]), "assessed_at": aware(r["assessed_at"]),
                     "replaced_at": aware(r["replaced_at"])} for r in conn.execute(q).mappings()]

    def indicator_maps(self, ids: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        """Every indicator of the stored assessments of ``ids`` (static and context, JSON as stored), in ``ids`` order;
        unassessed ones left out."""
        found: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for part in chunks(ids):
                q = (sa.select(assessments.c.report_id, assessments.c.indicators, report_indicators.c.static_json)
                     .select_from(assessments.outerjoin(report_indicators, report_indicators.c.report_id == assessments.c.report_id))
                     .where(assessments.c.report_id.in_(part)))
                found.update({r[0]: expand("[]", r[1], r[2])[1] for r in conn.execute(q)})
        return [(rid, found[rid]) for rid in ids if rid in found]


def _static_json(conn: sa.Connection, ids: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in chunks(sorted(set(ids))):
        q = sa.select(report_indicators.c.report_id, report_indicators.c.static_json).where(report_indicators.c.report_id.in_(part))
        out.update({str(r[0]): str(r[1]) for r in conn.execute(q)})
    return out


def expand(fired: str, indicators: str, static_json: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A stored assessment's fired rules with their evidence and values, and every indicator of it: its context indicators
    with the report's static ones (``static_json``, stored with the report's facts; None when there are none). A row stored
    whole, before assessments were compact, comes back as it was."""
    # context indicators stored as name -> [value, evidence] (``assess.batch.context_json``), or whole in rows written before
    held: dict[str, Any] = {n: {"name": n, "value": x[0], "evidence": x[1]} if isinstance(x, list) else x
                            for n, x in json.loads(indicators).items()}
    if static_json is not None and not any(n in held for n in STATIC_INDICATORS):
        held = {**json.loads(static_json), **held}
    values = {n: ind["value"] for n, ind in held.items()}
    evidence = {n: ind["evidence"] for n, ind in held.items()}
    return expand_fired(json.loads(fired), values, evidence), held


def _rules(fired: str) -> dict[str, tuple[tuple[Any, ...], Any]]:
    """Rule id -> (its fixed fields, what stands for its evidence: the indicators it read and the digest of their context
    evidence; None for a rule stored whole before assessments were compact, whose evidence is not compared)."""
    out: dict[str, tuple[tuple[Any, ...], Any]] = {}
    for e in json.loads(fired):
        fixed = (e["points"], e["tier_floor"], e["tier_cap"], e["reason"], e["source"])
        out[e["rule_id"]] = (fixed, (tuple(e["reads"]), e["context_evidence"]) if "reads" in e else None)
    return out


def _evidence_differs(a: Any, b: Any) -> bool:
    return a is not None and b is not None and a != b


def _rules_differ(old: str, new: str) -> bool:
    before, after = _rules(old), _rules(new)
    return before.keys() != after.keys() or any(before[r][0] != after[r][0] or _evidence_differs(before[r][1], after[r][1]) for r in after)


def _change(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    before, after = _rules(old["fired"]), _rules(new["fired"])
    out: dict[str, Any] = {
        "tier": [old["tier"], new["tier"]],
        "score": [old["score"], new["score"]],
        "rules_added": [r for r in after if r not in before],
        "rules_removed": [r for r in before if r not in after],
        "effect_changed": [r for r in after if r in before and after[r][0] != before[r][0]],
        "evidence_changed": [r for r in after if r in before and _evidence_differs(after[r][1], before[r][1])],
    }
    if (old["policy_version"], old["policy_agency"]) != (new["policy_version"], new["policy_agency"]):
        out["policy"] = {"from": {"name": old["policy_name"], "version": old["policy_version"], "agency": old["policy_agency"]},
                         "to": {"name": new["policy_name"], "version": new["policy_version"], "agency": new["policy_agency"]}}
    return out
