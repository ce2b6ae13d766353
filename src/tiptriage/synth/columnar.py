"""Synthetic reports as columns, in batches: the account fields the link stage reads, at a million reports.

``generate`` builds every report as a pydantic object, which is right for the demo and for tests that run
the whole pipeline but costs about 20 KB and 0.2 ms a report: a million of them hold gigabytes before the
first comparison. Here the people and their accounts are drawn once with numpy (a few hundred thousand
rows), and the reports are drawn batch by batch as Arrow record batches that point at those accounts, so
memory stays that of one batch plus the account table, whatever the number of reports.

The fields follow the same rules as ``generate`` (same class mix, services, e-mail and phone spellings,
documentation-range addresses, NANP 555-01XX fiction numbers, neutral names made of random letters), drawn
with numpy's generator instead of ``random.Random``, so the values differ from ``generate``'s for the same
seed. The planted truth is in the data: ``truth_person`` on every report row, and ``accounts`` naming the
person behind each account. Only identifiers and category codes are produced, nothing descriptive.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from tiptriage.synth.generator import AREA_CODES, CLASS_MIX, DOMAINS, EPOCH, NET_PREFIXES, PLACES, PROVIDERS, SERVICES

# the benchmark: about 300,000 people behind 1,000,000 reports
PEOPLE_PER_REPORT = 0.3
_LETTERS = np.frombuffer(b"abcdefghijkmnopqrstuvwxyz", dtype=np.uint8)  # no "l": it reads as "1" in some fonts
_MULTI_ACCOUNT_SHARE = 0.04
_PHONE_SHARE = 0.7
_MINUTES_IN_WINDOW = 60 * 24 * 90

# the report columns, in order; truth_* columns are the planted answers and never reach the linker
REPORT_SCHEMA = pa.schema([
    ("report_id", pa.string()),
    ("truth_class", pa.string()),
    ("truth_person", pa.int64()),
    ("incident_at", pa.timestamp("us", tz="UTC")),
    ("received_at", pa.timestamp("us", tz="UTC")),
    ("provider", pa.string()),
    ("esp_service", pa.string()),
    ("esp_identifier", pa.string()),
    ("email", pa.string()),
    ("phone", pa.string()),
    ("screen_name", pa.string()),
    ("display_name", pa.string()),
    ("ip", pa.string()),
    ("country", pa.string()),
    ("region", pa.string()),
    ("city", pa.string()),
])
_ACCOUNT_FIELDS = ("provider", "esp_service", "esp_identifier", "email", "phone", "screen_name", "display_name", "ip", "country", "region", "city")


@dataclass(frozen=True)
class SynthColumns:
    """People, their accounts (with the person behind each: the truth) and a recipe for the report batches."""

    n_reports: int
    seed: int
    batch_size: int
    people: int
    accounts: pa.Table  # one row per account: person, account_ordinal and the fields in _ACCOUNT_FIELDS
    first_account: np.ndarray  # person → index of its first row in ``accounts``
    accounts_per_person: np.ndarray

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The reports, ``batch_size`` at a time, each batch drawn from its own stream so any one can be rebuilt alone."""
        for b, start in enumerate(range(0, self.n_reports, self.batch_size)):
            yield self.batch(b, start, min(self.batch_size, self.n_reports - start))

    def batch(self, index: int, start: int, size: int) -> pa.RecordBatch:
        rng = np.random.default_rng([self.seed, 1, index])
        classes = list(CLASS_MIX)
        weights = np.array([CLASS_MIX[c] for c in classes])
        klass = rng.choice(len(classes), size=size, p=weights / weights.sum())
        person = rng.integers(0, self.people, size=size)
        account = self.first_account[person] + (rng.random(size) * self.accounts_per_person[person]).astype(np.int64)
        incident_us = _epoch_us() + rng.integers(0, _MINUTES_IN_WINDOW, size=size) * 60_000_000
        received_us = incident_us + rng.integers(1, 72, size=size) * 3_600_000_000
        numbers = pc.cast(pa.array(np.arange(start + 1, start + size + 1)), pa.string())
        report_id = pc.binary_join_element_wise(f"SYN{self.seed:03d}", pc.utf8_lpad(numbers, 7, "0"), "-")
        acc = self.accounts.take(pa.array(account))
        columns = {
            "report_id": report_id,
            "truth_class": pa.array(classes).take(pa.array(klass)),
            "truth_person": pa.array(person),
            "incident_at": pa.array(incident_us, type=pa.timestamp("us", tz="UTC")),
            "received_at": pa.array(received_us, type=pa.timestamp("us", tz="UTC")),
            **{name: acc.column(name) for name in _ACCOUNT_FIELDS},
        }
        return pa.RecordBatch.from_arrays([pa.chunked_array(columns[f.name]).combine_chunks() for f in REPORT_SCHEMA], schema=REPORT_SCHEMA)

    def truth_accounts(self) -> pa.Table:
        """(esp_service, esp_identifier, person) for every account, used in a report or not."""
        return self.accounts.select(["esp_service", "esp_identifier", "person"])


def _epoch_us() -> int:
    return int(EPOCH.timestamp()) * 1_000_000


def _strings(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype(str), type=pa.string())


def _locals(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct nine-letter names as a (n, 9) byte matrix: a repeat would plant two people as one."""
    letters = _LETTERS[rng.integers(0, len(_LETTERS), size=(n, 9))]
    while True:
        _, first = np.unique(letters.view("S9").ravel(), return_index=True)
        dup = np.setdiff1d(np.arange(n), first)
        if not len(dup):
            return letters
        letters[dup] = _LETTERS[rng.integers(0, len(_LETTERS), size=(len(dup), 9))]


def generate_columns(n_reports: int, seed: int = 0, people: int | None = None, batch_size: int = 100_000) -> SynthColumns:
    """People and accounts now; reports later, batch by batch, through ``SynthColumns.batches``.

    ``people`` defaults to ``PEOPLE_PER_REPORT`` × ``n_reports``. The data depends on ``seed``, ``people``
    and ``batch_size``.
    """
    if n_reports < 1 or batch_size < 1:
        raise ValueError("n_reports and batch_size must be positive")
    n_people = people if people is not None else max(3, int(n_reports * PEOPLE_PER_REPORT))
    rng = np.random.default_rng([seed, 0])
    place = rng.integers(0, len(PLACES), size=n_people)
    multi = rng.random(n_people) < _MULTI_ACCOUNT_SHARE
    n_acc = np.where(multi, np.array([2, 2, 3, 4])[rng.integers(0, 4, size=n_people)], 1)
    first = np.concatenate([[0], np.cumsum(n_acc)[:-1]])
    letters = _locals(rng, n_people)
    display = np.concatenate([letters[:, :4], np.full((n_people, 1), ord(" "), np.uint8), letters[:, 4:]], axis=1)
    display[:, [0, 5]] -= 32  # title case of the two halves, as generate() writes it
    domain = rng.integers(0, len(DOMAINS), size=n_people)
    # services without repeats inside one person: the first n_acc of a random permutation of the five
    service_perm = np.argsort(rng.random((n_people, len(SERVICES))), axis=1)
    country = np.array([p[0] for p in PLACES])[place]
    has_phone = (np.arange(n_people) < len(AREA_CODES) * 100) & (country == "US")

    n_accounts = int(n_acc.sum())
    owner = np.repeat(np.arange(n_people), n_acc)
    ordinal = np.arange(n_accounts) - first[owner]
    svc = service_perm[owner, ordinal]
    service = np.array(SERVICES)[svc]
    # drawn without replacement: two accounts with one id on one service would be one account to the linker
    number = rng.choice(10**9, size=n_accounts, replace=False)
    svc_letter = np.array([s[-1].lower() for s in SERVICES])[svc]
    esp_identifier = pc.binary_join_element_wise(_strings(svc_letter), pc.utf8_lpad(pc.cast(pa.array(number), pa.string()), 9, "0"), "")

    local = pa.array(letters.view("S9").ravel(), type=pa.binary()).cast(pa.string()).take(pa.array(owner))
    suffix = pc.binary_join_element_wise("_", pc.cast(pa.array(ordinal), pa.string()), "")
    screen_name = pc.if_else(pa.array(ordinal == 0), local, pc.binary_join_element_wise(local, suffix, ""))
    dom = _strings(np.array(DOMAINS)[domain[owner]])
    variant = rng.integers(0, 3, size=n_accounts)
    tag = _strings(np.array(["a", "x", "tt"])[rng.integers(0, 3, size=n_accounts)])
    plain = pc.binary_join_element_wise(local, dom, "@")
    tagged = pc.binary_join_element_wise(pc.binary_join_element_wise(local, tag, "+"), dom, "@")
    email = pc.choose(pa.array(variant), plain, pc.utf8_upper(plain), tagged)

    p_owner = owner.clip(max=len(AREA_CODES) * 100 - 1)
    area = _strings(np.array(AREA_CODES)[p_owner // 100])
    line = pc.utf8_lpad(pc.cast(pa.array(p_owner % 100), pa.string()), 2, "0")
    j = pc.binary_join_element_wise
    formats = [
        j(j("+1 (", area, ""), j(") 555-01", line, ""), ""),
        j(j(area, ".555.01", ""), line, ""),
        j(j(area, "55501", ""), line, ""),
        j(j("1-", area, ""), j("-555-01", line, ""), ""),
    ]
    phone_present = has_phone[owner] & (rng.random(n_accounts) < _PHONE_SHARE)
    phone = pc.if_else(pa.array(phone_present), pc.choose(pa.array(rng.integers(0, 4, size=n_accounts)), *formats), pa.scalar(None, pa.string()))

    prefix = _strings(np.array(NET_PREFIXES)[rng.integers(0, len(NET_PREFIXES), size=n_accounts)])
    ip = j(prefix, pc.cast(pa.array(rng.integers(1, 255, size=n_accounts)), pa.string()), "")
    places = np.array(PLACES)
    accounts = pa.table({
        "person": pa.array(owner),
        "account_ordinal": pa.array(ordinal),
        "provider": _strings(np.array([PROVIDERS[s] for s in SERVICES])[svc]),
        "esp_service": _strings(service),
        "esp_identifier": esp_identifier,
        "email": email,
        "phone": phone,
        "screen_name": screen_name,
        "display_name": pa.array(display.view("S10").ravel(), type=pa.binary()).cast(pa.string()).take(pa.array(owner)),
        "ip": ip,
        "country": _strings(places[place[owner], 0]),
        "region": _strings(places[place[owner], 1]),
        "city": _strings(places[place[owner], 2]),
    })
    return SynthColumns(n_reports, seed, batch_size, n_people, accounts, first, n_acc)
