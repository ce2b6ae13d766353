"""Account records: what the linker compares, built from reports' normalised identifiers.

An account is an ESP account (service-scoped id) when the report names one, else the reported party of
one report. Each record keeps every normalised identifier with where it came from, so every link can
name its evidence.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from tiptriage.enrich.identifiers import Identifier, account_identifiers, esp_account_key
from tiptriage.model import Report


@dataclass
class AccountRecord:
    key: str
    reports: list[str] = field(default_factory=list)
    emails: Counter[str] = field(default_factory=Counter)
    phones: Counter[str] = field(default_factory=Counter)
    usernames: Counter[str] = field(default_factory=Counter)
    display_names: Counter[str] = field(default_factory=Counter)
    ips: Counter[str] = field(default_factory=Counter)
    countries: Counter[str] = field(default_factory=Counter)
    evidence: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # "email:x" → ["R1 reported_people[0]...", ...]

    def add(self, kind: str, value: str, where: str) -> None:
        getattr(self, {"email": "emails", "phone": "phones", "username": "usernames", "ip": "ips"}[kind])[value] += 1
        self.evidence[f"{kind}:{value}"].append(where)


def _top(c: Counter[str]) -> str | None:
    return c.most_common(1)[0][0] if c else None


def account_key(report: Report, index: int) -> str:
    acc = report.reported_people[index]
    if acc.esp_identifier:
        return esp_account_key(acc.esp_service or report.provider, acc.esp_identifier)
    return f"report:{report.id}:{index}"


def build_records(reports: Iterable[Report], treat_documentation_as_public: bool = False) -> tuple[dict[str, AccountRecord], list[tuple[str, str]]]:
    """Account records and (report id, account key) memberships, from the reported people of ``reports``."""
    records: dict[str, AccountRecord] = {}
    memberships: list[tuple[str, str]] = []
    for report in reports:
        idents = account_identifiers(report, treat_documentation_as_public=treat_documentation_as_public)
        for i, acc in enumerate(report.reported_people):
            key = account_key(report, i)
            rec = records.setdefault(key, AccountRecord(key))
            rec.reports.append(report.id)
            memberships.append((report.id, key))
            prefix = f"reported_people[{i}]"
            for ident in idents:
                if ident.path.startswith(prefix + ".") or ident.path == prefix:
                    _add_identifier(rec, ident, report.id)
            for name in acc.display_names:
                if folded := " ".join(name.casefold().split()):  # a blank name is no evidence of who anyone is
                    rec.display_names[folded] += 1
            if acc.estimated_location and acc.estimated_location.country_code:
                rec.countries[acc.estimated_location.country_code.upper()] += 1
    return records, memberships


def _add_identifier(rec: AccountRecord, ident: Identifier, report_id: str) -> None:
    if not ident.linkable:
        return
    where = f"{report_id} {ident.path}"
    if ident.kind in ("email", "phone", "username", "ip"):
        rec.add(ident.kind, ident.value, where)


def email_local_key(email: str) -> str:
    """A fuzzy key for comparison only: the local part without +tag and dots, whatever the provider."""
    local = email.split("@", 1)[0]
    return local.split("+", 1)[0].replace(".", "")


def username_key(name: str) -> str:
    """Screen names often differ by a numeric suffix between one person's accounts."""
    return name.rstrip("0123456789").rstrip("_-.") or name


def splink_rows(records: dict[str, AccountRecord]) -> list[dict[str, str | None]]:
    rows = []
    for rec in records.values():
        email = _top(rec.emails)
        user = _top(rec.usernames)
        rows.append({
            "unique_id": rec.key,
            "email_local": email_local_key(email) if email else None,
            "phone": _top(rec.phones),
            "username": username_key(user) if user else None,
            "display_name": _top(rec.display_names),
            "ip": _top(rec.ips),
            "country": _top(rec.countries),
        })
    return rows
