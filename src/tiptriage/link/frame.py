"""Linking at national scale: the resolution of ``records`` and ``resolve``, on columns instead of objects.

``build_records`` keeps a Python object with Counters and evidence lists per account, and ``cluster`` a
dict-based union-find: right for a store's worth of reports, too slow and too large for millions. Here
the same steps run on arrays:

1. ``Observations`` takes reports batch by batch, as Arrow record batches of report fields (``RAW_COLUMNS``,
   one row per report and reported account) or as ``Report`` objects, and keeps only integer codes: an
   account id and a normalised-value id per observed identifier. Each distinct spelling is normalised
   once, by the same functions of ``enrich.identifiers`` the object path calls, so both paths give the
   same keys; memory is a few integers per report plus the distinct values.
2. ``deterministic_links``: accounts sharing a normalised e-mail or phone, as an Arrow table of links.
3. ``splink_table`` feeds ``resolve.splink_pairs`` one row per account (the most frequent value of each
   field, ties to the first seen, as ``Counter.most_common`` does), on DuckDB or Spark.
4. ``cluster``: connected components over the links with numpy (hooking and pointer jumping), analysts'
   decisions applied as ``resolve.cluster`` applies them; a cluster is named by its smallest account key.

Links are Arrow tables with ``LINKS_SCHEMA`` (a < b, kind, probability, evidence); ``links_to_objects``
turns a table into ``resolve.Link`` objects where a caller wants them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from tiptriage.enrich.identifiers import (
    account_identifiers,
    classify_ip,
    esp_account_key,
    normalize_email,
    normalize_phone,
    normalize_username,
)
from tiptriage.link.records import account_key, email_local_key, username_key
from tiptriage.link.resolve import SPLINK_SCHEMA, Decisions, Link
from tiptriage.model import Report

KINDS = ("email", "phone", "username", "ip", "display_name", "country")
DETERMINISTIC_KINDS = ("email", "phone")
# raw column → (kind, column holding the region hint for phone numbers)
RAW_COLUMNS: dict[str, tuple[str, str | None]] = {
    "email": ("email", None),
    "phone": ("phone", "country"),
    "screen_name": ("username", None),
    "ip": ("ip", None),
    "display_name": ("display_name", None),
    "country": ("country", None),
}
LINKS_SCHEMA = pa.schema([("a", pa.string()), ("b", pa.string()), ("kind", pa.string()), ("probability", pa.float64()),
                          ("evidence", pa.list_(pa.string()))])
_SEP = "\x1f"  # joins a raw value to its hint in memo keys; a unit separator does not occur in identifiers


def display_name_key(raw: str) -> str | None:
    folded = " ".join(raw.casefold().split())
    return folded or None


def _normalisers(doc_public: bool) -> dict[str, Callable[[str, str | None], str | None]]:
    def email(raw: str, _: str | None) -> str | None:
        norm = normalize_email(raw)
        return norm.value if norm else None

    def phone(raw: str, region: str | None) -> str | None:
        norm = normalize_phone(raw.strip(), region)
        return norm.value if norm else None

    def ip(raw: str, _: str | None) -> str | None:
        info = classify_ip(raw, treat_documentation_as_public=doc_public)
        return info.address if info.linkable else None

    return {
        "email": email,
        "phone": phone,
        "username": lambda raw, _: normalize_username(raw) or None,
        "ip": ip,
        "display_name": lambda raw, _: display_name_key(raw),
        "country": lambda raw, _: raw.strip().upper() or None,
    }


@dataclass
class _Values:
    """The normalised values of one kind, interned, and a memo from each raw spelling to its value id."""

    normalise: Callable[[str, str | None], str | None]
    ids: dict[str, int] = field(default_factory=dict)
    values: list[str] = field(default_factory=list)
    memo: dict[str, int] = field(default_factory=dict)  # raw (+ hint) → value id, -1 when it does not link

    def intern(self, value: str) -> int:
        vid = self.ids.get(value)
        if vid is None:
            vid = self.ids[value] = len(self.values)
            self.values.append(value)
        return vid

    def map_raw(self, raw: pa.Array, hint: pa.Array | None) -> np.ndarray:
        """Value id per row, -1 for a null or a value that must not link."""
        keys = raw if hint is None else pc.binary_join_element_wise(raw, pc.fill_null(hint, ""), _SEP)
        encoded = pc.dictionary_encode(keys)
        mapping = np.empty(len(encoded.dictionary), dtype=np.int64)
        for i, key in enumerate(encoded.dictionary.to_pylist()):
            vid = self.memo.get(key)
            if vid is None:
                value, _, region = key.partition(_SEP) if hint is not None else (key, "", "")
                norm = self.normalise(value, region or None)
                vid = self.memo[key] = -1 if norm is None else self.intern(norm)
            mapping[i] = vid
        indices = encoded.indices
        out = np.full(len(keys), -1, dtype=np.int64)
        if len(mapping):
            valid = pc.is_valid(indices).to_numpy(zero_copy_only=False)
            out[valid] = mapping[pc.drop_null(indices).to_numpy()]
        return out


@dataclass
class Resolution:
    """Every account (first-seen order), the key of its cluster's anchor, and the links the clusters were made of."""

    accounts: pa.Array
    anchors: pa.Array
    anchor_index: np.ndarray  # per account, the account id of its anchor
    used: pa.Table

    def as_dict(self) -> dict[str, str]:
        return dict(zip(self.accounts.to_pylist(), self.anchors.to_pylist(), strict=True))


class Observations:
    """Identifiers seen on accounts across reports, as integer codes, added batch by batch."""

    def __init__(self, *, treat_documentation_as_public: bool = False) -> None:
        self._values = {k: _Values(n) for k, n in _normalisers(treat_documentation_as_public).items()}
        self._doc_public = treat_documentation_as_public
        self._account_ids: dict[str, int] = {}
        self._account_keys: list[str] = []
        self._account_memo: dict[str, int] = {}
        self._obs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in KINDS}
        self._reports: list[pa.Array] = []
        self._report_accounts: list[np.ndarray] = []

    # -- input -------------------------------------------------------------------------------------

    def _account(self, key: str) -> int:
        aid = self._account_ids.get(key)
        if aid is None:
            aid = self._account_ids[key] = len(self._account_keys)
            self._account_keys.append(key)
        return aid

    def add_columns(self, batch: pa.RecordBatch | pa.Table) -> np.ndarray:
        """Add one batch of report rows (``report_id``, ``esp_service``, ``esp_identifier``, optional ``provider``
        and the columns of ``RAW_COLUMNS`` that it has); returns the account id of each row."""
        n = batch.num_rows
        service = batch.column("esp_service")
        if "provider" in batch.schema.names:  # an id with no service of its own belongs to the reporting provider's space
            service = pc.coalesce(service, batch.column("provider"))
        ids = batch.column("esp_identifier")
        keyed = pc.binary_join_element_wise(pc.fill_null(service, ""), ids, _SEP)
        encoded = pc.dictionary_encode(keyed)
        mapping = np.empty(len(encoded.dictionary), dtype=np.int64)
        for i, raw in enumerate(encoded.dictionary.to_pylist()):
            aid = self._account_memo.get(raw)
            if aid is None:
                svc, _, ident = raw.partition(_SEP)
                aid = self._account_memo[raw] = self._account(esp_account_key(svc or None, ident)) if ident.strip() else -1
            mapping[i] = aid
        accounts = np.full(n, -1, dtype=np.int64)
        valid = pc.is_valid(encoded.indices).to_numpy(zero_copy_only=False)
        if len(mapping):
            accounts[valid] = mapping[pc.drop_null(encoded.indices).to_numpy()]
        report_ids = batch.column("report_id")
        # a report that names no ESP id has one account of its own, as in records.account_key
        for row in np.flatnonzero(accounts < 0):
            accounts[row] = self._account(f"report:{report_ids[row].as_py()}:0")
        self._reports.append(_flat(report_ids))
        self._report_accounts.append(accounts)
        for column, (kind, hint) in RAW_COLUMNS.items():
            if column not in batch.schema.names:
                continue
            hints = batch.column(hint) if hint and hint in batch.schema.names else None
            vids = self._values[kind].map_raw(_flat(batch.column(column)), _flat(hints) if hints is not None else None)
            keep = vids >= 0
            self._obs[kind].append((accounts[keep], vids[keep]))
        return accounts

    def add_reports(self, reports: Iterable[Report]) -> None:
        """Add ``Report`` objects: their reported people, identifiers normalised as ``build_records`` does."""
        acc_rows: dict[str, list[int]] = {k: [] for k in KINDS}
        val_rows: dict[str, list[int]] = {k: [] for k in KINDS}
        rids: list[str] = []
        racc: list[int] = []

        def seen(kind: str, aid: int, value: str | None) -> None:
            if value:
                acc_rows[kind].append(aid)
                val_rows[kind].append(self._values[kind].intern(value))

        for report in reports:
            idents = account_identifiers(report, treat_documentation_as_public=self._doc_public)
            for i, acc in enumerate(report.reported_people):
                aid = self._account(account_key(report, i))
                rids.append(report.id)
                racc.append(aid)
                prefix = f"reported_people[{i}]"
                for ident in idents:
                    if ident.linkable and ident.kind in ("email", "phone", "username", "ip") and (ident.path.startswith(prefix + ".") or ident.path == prefix):
                        seen(ident.kind, aid, ident.value)
                for name in acc.display_names:
                    seen("display_name", aid, display_name_key(name))
                if acc.estimated_location and acc.estimated_location.country_code:
                    seen("country", aid, acc.estimated_location.country_code.upper())
        self._reports.append(pa.array(rids, type=pa.string()))
        self._report_accounts.append(np.array(racc, dtype=np.int64))
        for k in KINDS:
            self._obs[k].append((np.array(acc_rows[k], dtype=np.int64), np.array(val_rows[k], dtype=np.int64)))

    # -- views -------------------------------------------------------------------------------------

    @property
    def n_accounts(self) -> int:
        return len(self._account_keys)

    def accounts(self) -> pa.Array:
        return pa.array(self._account_keys, type=pa.string())

    def account_ids(self, keys: pa.Array) -> np.ndarray:
        """Account id per key, -1 for a key never seen."""
        ids: np.ndarray = pc.fill_null(pc.index_in(keys, value_set=self.accounts()), -1).to_numpy()
        return ids

    def memberships(self) -> pa.Table:
        """(report_id, account_key), one row per report and reported account."""
        acc = np.concatenate(self._report_accounts) if self._report_accounts else np.empty(0, np.int64)
        return pa.table({"report_id": pa.concat_arrays(self._reports) if self._reports else pa.array([], pa.string()),
                         "account_key": self.accounts().take(pa.array(acc))})

    def _kind(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        parts = self._obs[kind]
        if not parts:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _rank(self) -> np.ndarray:
        """Each account id's place in the sorted order of keys: code-point order, as Python compares strings."""
        order = pc.sort_indices(self.accounts()).to_numpy()
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return rank

    def top_values(self, kind: str) -> np.ndarray:
        """Per account, the id of its most frequent value of ``kind`` (ties: the first seen), -1 when none."""
        acc, val = self._kind(kind)
        top = np.full(self.n_accounts, -1, dtype=np.int64)
        if not len(acc):
            return top
        width = int(val.max()) + 1
        uniq, first, counts = np.unique(acc * width + val, return_index=True, return_counts=True)
        ua = uniq // width
        order = np.lexsort((first, -counts, ua))
        best = order[np.r_[True, ua[order][1:] != ua[order][:-1]]]
        top[ua[best]] = uniq[best] % width
        return top

    def _column(self, kind: str, key: Callable[[str], str] | None = None) -> pa.Array:
        top = self.top_values(kind)
        values = self._values[kind].values
        present = top >= 0
        # each distinct value is transformed once, then spread to the accounts by index
        table = pa.array([key(v) for v in values] if key else values, type=pa.string())
        return table.take(pa.array(np.where(present, top, 0), mask=~present)) if len(values) else pa.nulls(self.n_accounts, pa.string())

    def splink_table(self) -> pa.Table:
        """One row per account (first-seen order) in ``resolve.SPLINK_SCHEMA``."""
        return pa.table({
            "unique_id": self.accounts(),
            "email_local": self._column("email", email_local_key),
            "phone": self._column("phone"),
            "username": self._column("username", username_key),
            "display_name": self._column("display_name"),
            "ip": self._column("ip"),
            "country": self._column("country"),
        }, schema=SPLINK_SCHEMA)

    def deterministic_links(self) -> pa.Table:
        """Accounts sharing a normalised e-mail address or phone number: for each value, a star from its
        smallest account key to the others (enough for connectivity, linear in the group's size)."""
        rank = self._rank()
        keys = self.accounts()
        parts: list[pa.Table] = []
        for kind in DETERMINISTIC_KINDS:
            acc, val = self._kind(kind)
            if not len(acc):
                continue
            n = max(self.n_accounts, 1)
            pairs = np.unique(val * n + acc)
            uv, ua = pairs // n, pairs % n
            order = np.lexsort((rank[ua], uv))
            uv, ua = uv[order], ua[order]
            start = np.r_[True, uv[1:] != uv[:-1]]
            group = np.cumsum(start) - 1
            anchor = ua[start][group]
            edge = ~start  # every member but the anchor, which is the first of its group by rank
            if not edge.any():
                continue
            values = pa.array(self._values[kind].values, type=pa.string()).take(pa.array(uv[edge]))
            parts.append(pa.table({"a": keys.take(pa.array(anchor[edge])), "b": keys.take(pa.array(ua[edge])),
                                   "evidence": pc.binary_join_element_wise(f"same {kind}:", values, "")}))
        if not parts:
            return LINKS_SCHEMA.empty_table()
        con = duckdb.connect()
        try:
            con.register("edges", pa.concat_tables(parts))
            out = con.sql("""SELECT a, b, 'deterministic' AS kind, 1.0::DOUBLE AS probability, list_sort(list(evidence)) AS evidence
                             FROM edges GROUP BY a, b ORDER BY a, b""").to_arrow_table()
        finally:
            con.close()
        return out.cast(LINKS_SCHEMA)

    def cluster(self, links: pa.Table, decisions: Decisions | None = None) -> Resolution:
        """Connected components of the accounts over ``links``, with analysts' decisions applied last."""
        decisions = decisions or Decisions()
        links = links.cast(LINKS_SCHEMA)
        if decisions.split and links.num_rows:
            split = pa.array(sorted(decisions.split), type=pa.string())
            touched = pc.or_(pc.is_in(links.column("a"), value_set=split), pc.is_in(links.column("b"), value_set=split))
            pair = pc.binary_join_element_wise(links.column("a"), links.column("b"), _SEP)
            confirmed = pa.array([f"{a}{_SEP}{b}" for a, b in sorted(decisions.confirmed)], type=pa.string())
            links = links.filter(pc.invert(pc.and_(touched, pc.invert(pc.is_in(pair, value_set=confirmed)))))
        if decisions.confirmed:
            conf = sorted(decisions.confirmed)
            links = pa.concat_tables([links, pa.table({
                "a": [a for a, _ in conf], "b": [b for _, b in conf], "kind": ["confirmed"] * len(conf),
                "probability": [1.0] * len(conf), "evidence": [["confirmed by an analyst"]] * len(conf)}, schema=LINKS_SCHEMA)])
        a, b = self.account_ids(links.column("a")), self.account_ids(links.column("b"))
        known = (a >= 0) & (b >= 0)
        used = links.filter(pa.array(known))
        rank = self._rank()
        label = connected_components(self.n_accounts, rank[a[known]], rank[b[known]])
        by_rank = np.argsort(rank)  # rank → account id
        anchor = by_rank[label[rank]]
        keys = self.accounts()
        return Resolution(keys, keys.take(pa.array(anchor)), anchor, used)


def _flat(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def connected_components(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """For nodes 0..n-1 and undirected edges, the smallest node of each node's component.

    Labels only ever fall to a neighbour's label, so each stays a node of its own component; at the fixed
    point every edge joins equal labels and every label is its own label, which makes it the component's
    minimum. Hooking roots as well as nodes, then pointer jumping, keeps the rounds few on long chains.
    """
    label = np.arange(n, dtype=np.int64)
    if not len(src):
        return label
    while True:
        low = np.minimum(label[src], label[dst])
        before = label.copy()
        np.minimum.at(label, label[src], low)
        np.minimum.at(label, label[dst], low)
        np.minimum.at(label, src, low)
        np.minimum.at(label, dst, low)
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
        if np.array_equal(label, before):
            return label


def links_to_objects(links: pa.Table) -> list[Link]:
    cols = [links.column(c).to_pylist() for c in ("a", "b", "kind", "probability", "evidence")]
    return [Link(a, b, kind, p, tuple(ev)) for a, b, kind, p, ev in zip(*cols, strict=True)]


def links_table(links: Iterable[Link]) -> pa.Table:
    rows = list(links)
    return pa.table({"a": [lk.a for lk in rows], "b": [lk.b for lk in rows], "kind": [lk.kind for lk in rows],
                     "probability": [lk.probability for lk in rows], "evidence": [list(lk.evidence) for lk in rows]}, schema=LINKS_SCHEMA)
