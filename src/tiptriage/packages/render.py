"""Rendering a lead package: a JSON document, a printable HTML page, and a PDF of that same HTML.

``to_json`` is the machine-readable package; ``to_html`` renders ``templates/lead_package.html`` with
Jinja2 (autoescape on, so any text taken from a report is shown, never run); ``to_pdf`` prints the very
same HTML with WeasyPrint, which needs the system's Pango (Debian: ``libpango-1.0-0 libpangoft2-1.0-0``).

The package shows report fields, identifiers, hashes, category codes and neutral text only. Free-text
fields of the report (incident content, file names, profile text, additional information) are not
reproduced in the HTML: the JSON carries the canonical report for the case system.

Every legal item is a draft. Each preservation letter carries the ``DRAFT_BANNER`` and is never sent by
tiptriage; deadlines and file-access statuses inform and decide nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from tiptriage.model.report import Account, Report
from tiptriage.packages.deadlines import INFORMS, load_legal, provider_preservation_expiry
from tiptriage.packages.model import PackageData, PreservationLetter, SubjectAccount

__all__ = ["DRAFT_BANNER", "FORMAT", "PDF_SYSTEM_PACKAGES", "preservation_letters", "to_html", "to_json", "to_pdf"]

FORMAT: Final = "tiptriage.lead-package/1"
DRAFT_BANNER: Final = "DRAFT — for review by the investigator and counsel; not legal advice; not sent"
PACKAGE_NOTICE: Final = (
    "This lead package is a draft for an investigator. It informs and decides nothing: priority, deadlines, "
    "file-access notes and letters are for review by the investigator and counsel."
)
PDF_SYSTEM_PACKAGES: Final = "libpango-1.0-0 libpangoft2-1.0-0"
TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
TEMPLATE: Final = "lead_package.html"

TIER_LABELS: Final = {
    1: "a child may be in imminent danger",
    2: "contact or production risk",
    3: "possession or distribution",
    4: "informational",
}


# ---------------------------------------------------------------------------------------------- letters


def _account_identifiers(
    esp_identifier: str | None, screen_name: str | None, emails: Iterable[str], phones: Iterable[str], urls: Iterable[str]
) -> list[str]:
    out: list[str] = []
    if esp_identifier:
        out.append(f"account ID: {esp_identifier}")
    if screen_name:
        out.append(f"screen name: {screen_name}")
    out += [f"e-mail address: {e}" for e in emails]
    out += [f"telephone number: {p}" for p in phones]
    out += [f"profile URL: {u}" for u in urls]
    return out


def _from_report_account(a: Account) -> list[str]:
    person = a.person
    return _account_identifiers(
        a.esp_identifier,
        a.screen_name,
        [e.address for e in person.emails] if person else [],
        [p.number for p in person.phones] if person else [],
        a.profile_urls,
    )


def _from_subject_account(a: SubjectAccount) -> list[str]:
    return _account_identifiers(a.esp_identifier, a.screen_name, a.emails, a.phones, a.profile_urls)


def _earliest_activity(report: Report) -> datetime:
    times = [report.incident_datetime]
    for a in report.reported_people:
        times += [e.date_time for e in a.ip_events if e.date_time is not None]
    times += [f.uploaded_at for f in report.files if f.uploaded_at is not None]
    return min(times)


def preservation_letters(data: PackageData) -> list[PreservationLetter]:
    """One DRAFT § 2703(f) letter per provider, naming the subject's and the reported people's identifiers there.

    Accounts without their own provider are taken to be on the report's provider. The date range runs from
    the earliest activity the report shows to the date the package was generated.
    """
    report = data.report
    default_provider = report.provider or "the reporting provider (name not given in the report)"
    by_provider: dict[str, list[str]] = {}

    def add(provider: str | None, identifiers: list[str]) -> None:
        bucket = by_provider.setdefault(provider or default_provider, [])
        bucket += [i for i in identifiers if i not in bucket]

    for acct in report.reported_people:
        add(acct.esp_service, _from_report_account(acct))
    if data.subject is not None:
        for sa in data.subject.accounts:
            add(sa.provider, _from_subject_account(sa))
    if not by_provider and report.provider:
        by_provider[report.provider] = []

    legal = load_legal()
    citation = legal.preservation_request_2703f.citation
    pp_until = provider_preservation_expiry(report.received_at, legal)
    date_from = _earliest_activity(report).date()
    date_to = data.generated_at.date()
    letters = []
    for provider, identifiers in sorted(by_provider.items()):
        listed = identifiers or ["(no account identifier in the report: add the identifiers before use)"]
        body = [
            f"To: {provider}, law enforcement response team.",
            f"Re: request to preserve records under {citation}; CyberTipline report {report.id}.",
            (
                f"Under {citation}, please take all necessary steps to preserve the records and other evidence in your "
                f"possession for the accounts listed below, for the period from {date_from.isoformat()} through "
                f"{date_to.isoformat()}, pending the issuance of a court order or other legal process."
            ),
            "Accounts: " + "; ".join(listed) + ".",
            (
                "This request asks for preservation for 90 days; the agency may renew it once for another 90 days. "
                "Please do not disclose this request to the account holder."
            ),
            (
                f"Separately, the contents of report {report.id} are to be preserved by the reporting provider until "
                f"{pp_until.date().isoformat()} under {legal.provider_preservation.citation}."
            ),
            "Agency: [agency name]. Investigator: [name, badge or ID, telephone, e-mail]. Agency case number: [number].",
            f"{DRAFT_BANNER}. Generated by {data.generated_by} on {data.generated_at.isoformat()}; a person must review, "
            "edit and sign it before any use.",
        ]
        letters.append(
            PreservationLetter(
                provider=provider,
                report_id=report.id,
                account_identifiers=identifiers,
                date_from=date_from,
                date_to=date_to,
                provider_preservation_until=pp_until,
                banner=DRAFT_BANNER,
                body=body,
            )
        )
    return letters


# ------------------------------------------------------------------------------------------------- JSON


def to_json(data: PackageData) -> dict[str, Any]:
    """The package as JSON-ready data: every section of ``PackageData`` plus the draft letters and the notices."""
    out: dict[str, Any] = {"format": FORMAT, "notice": PACKAGE_NOTICE, "draft_banner": DRAFT_BANNER}
    out.update(data.model_dump(mode="json"))
    out["preservation_letters"] = [letter.model_dump(mode="json") for letter in preservation_letters(data)]
    return out


# ------------------------------------------------------------------------------------------------- HTML


def _when(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else "yes" if value else "no"


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every value from a report is escaped: a hostile field is shown as text, never run
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["yesno"] = _yes_no
    env.filters["pct"] = _pct
    return env


def to_html(data: PackageData) -> str:
    """The printable, accessible HTML page of the package."""
    report = data.report
    legal = load_legal()
    context = {
        "d": data,
        "r": report,
        "tier_label": TIER_LABELS.get(data.assessment.tier, "unknown tier"),
        "letters": preservation_letters(data),
        "banner": DRAFT_BANNER,
        "notice": PACKAGE_NOTICE,
        "informs": INFORMS,
        "gate": legal.file_access_gate,
        "format": FORMAT,
        "annotations": [a.value for a in report.report_annotations],
        "files": {f.file_id: f for f in report.files},
    }
    return _environment().get_template(TEMPLATE).render(context)


# -------------------------------------------------------------------------------------------------- PDF


def _weasyprint_html() -> Any:
    try:
        from weasyprint import HTML  # type: ignore[import-untyped]
    except (ImportError, OSError) as exc:  # OSError: the Pango libraries could not be loaded
        raise RuntimeError(
            f"PDF output needs WeasyPrint and the system's Pango libraries; install them with "
            f"'apt-get install -y {PDF_SYSTEM_PACKAGES}' (Debian/Ubuntu) and 'pip install weasyprint' ({exc})"
        ) from exc
    return HTML


def to_pdf(data: PackageData) -> bytes:
    """The package as PDF, printed by WeasyPrint from exactly the HTML of ``to_html``."""
    html_class = _weasyprint_html()
    pdf = html_class(string=to_html(data), base_url=str(TEMPLATES)).write_pdf()
    if not isinstance(pdf, bytes):
        raise RuntimeError("WeasyPrint returned no PDF")
    return pdf
