"""CSV tips: one row per report, for bulk and hand-made tips.

The file is streamed: each row becomes its own submission whose bytes are the header line plus the
row's own lines, exactly as in the file, so a quarantined row can be retried alone.

Columns (header names; only ``incident_type`` and ``incident_datetime`` are required; lists are
separated by ``;``; booleans are true/false; datetimes ISO 8601 with a time zone):

=========================== ==============================================================
report_id                   the report's id (default: derived from the row's SHA-256)
provider                    the reporting provider
received_at                 when the tip was received (default: time of ingest)
incident_type               one of the eight CyberTipline incident types
incident_datetime           when the incident happened
incident_datetime_description
platform                    platform or product
escalate_to_high_priority   the provider's escalation text
report_annotations          e.g. ``sextortion;csamSolicitation``
additional_info             free text
esp_service                 reported account: service
esp_identifier              reported account: the provider's user id
screen_name                 reported account: screen name
display_name                reported account: display names
email                       reported account: emails
phone                       reported account: phone numbers
ip_address                  reported account: IP addresses (each an IP capture event)
ip_datetime                 times of those events, aligned with ip_address
country_code, region, city  reported account: the provider's estimated location
prior_report_ids            reported account: earlier CyberTipline report ids
victim_age                  a victim's age in years
file_id                     reported files' ids, aligned with the hash columns
file_md5, file_sha1, file_sha256, file_pdq
file_viewed_by_esp          applies to every file of the row
file_annotations            applies to every file of the row, e.g. ``viral;potentialMeme``
=========================== ==============================================================
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from tiptriage.intake.errors import IntakeError, Limits
from tiptriage.intake.submission import Document, Submission
from tiptriage.model import (
    Account,
    Email,
    EstimatedLocation,
    FileAnnotation,
    FileHash,
    HashType,
    IncidentType,
    IpCaptureEvent,
    Person,
    Phone,
    Report,
    ReportAnnotation,
    ReportedFile,
    SourceFormat,
    UnknownEnumValue,
    Victim,
    resolve,
)

COLUMNS = ["report_id", "provider", "received_at", "incident_type", "incident_datetime", "incident_datetime_description", "platform", "escalate_to_high_priority", "report_annotations", "additional_info", "esp_service", "esp_identifier", "screen_name", "display_name", "email", "phone", "ip_address", "ip_datetime", "country_code", "region", "city", "prior_report_ids", "victim_age", "file_id", "file_md5", "file_sha1", "file_sha256", "file_pdq", "file_viewed_by_esp", "file_annotations"]
_FILE_HASHES = {"file_md5": HashType.MD5, "file_sha1": HashType.SHA1, "file_sha256": HashType.SHA256, "file_pdq": HashType.PDQ}


def iter_csv_rows(path: Path, limits: Limits) -> Iterator[Submission]:
    raw: list[bytes] = []
    bad_line: list[int] = []
    line_no = 0

    def lines(f: io.BufferedReader) -> Iterator[str]:
        nonlocal line_no
        for b in f:
            line_no += 1
            raw.append(b)
            if len(b) > limits.max_csv_row_chars:
                bad_line.append(line_no)
                yield "\n"
                continue
            try:
                yield b.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError:
                bad_line.append(line_no)
                yield "\n"

    csv.field_size_limit(limits.max_csv_row_chars)
    with path.open("rb") as f:
        reader = csv.reader(lines(f))
        try:
            next(reader)
        except StopIteration:
            yield _refused(path, b"", 1, IntakeError(str(path), "-", "not-empty", "the file is empty"))
            return
        except csv.Error as exc:
            yield _refused(path, b"".join(raw), 1, IntakeError(str(path), "line 1", "csv", f"unreadable header: {exc}"))
            return
        header = b"".join(raw)
        if bad_line:
            yield _refused(path, header, 1, IntakeError(str(path), "line 1", "utf-8", "header is not valid UTF-8"))
            return
        raw.clear()
        while True:
            start = line_no + 1
            err: IntakeError | None = None
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                row, err = [], IntakeError(f"{path}:{start}", f"line {start}", "csv", str(exc))
            data = b"".join(raw)
            raw.clear()
            if not row and err is None:
                continue
            if bad_line:
                err = IntakeError(f"{path}:{start}", f"line {bad_line[0]}", "utf-8", "invalid UTF-8 or a line over the size limit")
                bad_line.clear()
            doc = Document.of(f"{path.name}:{start}", header + data)
            sub = Submission(f"{path}:{start}", SourceFormat.CSV, [doc], doc.sha256, line=start, error=err)
            yield sub


def _refused(path: Path, data: bytes, line: int, err: IntakeError) -> Submission:
    doc = Document.of(path.name, data)
    return Submission(str(path), SourceFormat.CSV, [doc], doc.sha256, line=line, error=err)


def _split(v: str | None) -> list[str]:
    return [p.strip() for p in (v or "").split(";") if p.strip()]


def read_submission(sub: Submission, received_at: datetime, limits: Limits) -> Report:
    """Read one row submission (header + row bytes) into a Report."""
    where = sub.path
    text = sub.documents[0].data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 2:
        raise IntakeError(where, "-", "csv", "a row submission needs a header and one row")
    header, row = [h.strip() for h in rows[0]], rows[1]
    if len(row) > len(header):
        raise IntakeError(where, f"line {sub.line}", "csv-columns", f"{len(row)} values but the header names {len(header)} columns")
    values = {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(header)}
    unknown = [h for h in header if h not in COLUMNS and values.get(h)]

    def get(col: str) -> str | None:
        return values.get(col) or None

    def fail(col: str, rule: str, reason: str) -> IntakeError:
        return IntakeError(where, f"line {sub.line}, column {col}", rule, reason)

    def when(col: str, required: bool = False) -> datetime | None:
        v = get(col)
        if v is None:
            if required:
                raise fail(col, "required", f"required column {col} is empty or missing")
            return None
        try:
            parsed = datetime.fromisoformat(v)
        except ValueError:
            raise fail(col, "datetime", f"{v[:60]!r} is not an ISO 8601 date and time") from None
        if parsed.tzinfo is None:
            raise fail(col, "timezone", f"{v!r} has no time zone")
        return parsed

    def flag(col: str) -> bool | None:
        v = get(col)
        if v is None:
            return None
        if v.lower() in ("true", "1", "yes"):
            return True
        if v.lower() in ("false", "0", "no"):
            return False
        raise fail(col, "boolean", f"{v[:60]!r} is not true or false")

    try:
        itype_raw = get("incident_type")
        if itype_raw is None:
            raise fail("incident_type", "required", "required column incident_type is empty or missing")
        itype = resolve(IncidentType, itype_raw, "incident_type")
        annotations = [resolve(ReportAnnotation, a) for a in _split(get("report_annotations"))]
        file_annotations = [resolve(FileAnnotation, a) for a in _split(get("file_annotations"))]
    except UnknownEnumValue as exc:
        raise fail(exc.enum_name, "enumeration", str(exc)) from None
    incident_time = when("incident_datetime", required=True)
    ips, ip_times = _split(get("ip_address")), _split(get("ip_datetime"))
    ip_events = []
    for i, ip in enumerate(ips):
        t = None
        if i < len(ip_times):
            values["_ip"] = ip_times[i]
            t = when("_ip")
        ip_events.append(IpCaptureEvent(ip_address=ip, date_time=t))
    try:
        account = None
        if any(get(c) for c in ("esp_service", "esp_identifier", "screen_name", "email", "phone", "ip_address", "display_name", "country_code")):
            loc = None
            if get("country_code") or get("region") or get("city"):
                loc = EstimatedLocation(country_code=get("country_code"), region=get("region"), city=get("city"))
            emails, phones = _split(get("email")), _split(get("phone"))
            account = Account(
                person=Person(emails=[Email(address=e) for e in emails], phones=[Phone(number=p) for p in phones]) if emails or phones else None,
                esp_service=get("esp_service"),
                esp_identifier=get("esp_identifier"),
                screen_name=get("screen_name"),
                display_names=_split(get("display_name")),
                ip_events=ip_events,
                estimated_location=loc,
                prior_report_ids=_split(get("prior_report_ids")),
            )
        victims = []
        if get("victim_age"):
            victims = [Victim(person=Person(age=int(get("victim_age") or "")))]
        files = []
        per_type = {t: _split(get(c)) for c, t in _FILE_HASHES.items()}
        ids = _split(get("file_id"))
        count = max([len(ids)] + [len(v) for v in per_type.values()])
        for i in range(count):
            hashes = [FileHash(hash_type=t, value=v[i]) for t, v in per_type.items() if i < len(v)]
            files.append(
                ReportedFile(
                    file_id=ids[i] if i < len(ids) else f"file-{i + 1}",
                    hashes=hashes,
                    viewed_by_esp=flag("file_viewed_by_esp"),
                    annotations=file_annotations,
                )
            )
        report_id = get("report_id") or sub.digest[:32]
        return Report(
            id=report_id,
            provider=get("provider"),
            received_at=when("received_at") or received_at,
            incident_type=itype,
            platform=get("platform"),
            escalate_to_high_priority=get("escalate_to_high_priority"),
            report_annotations=annotations,
            incident_datetime=incident_time,
            incident_datetime_description=get("incident_datetime_description"),
            additional_info=get("additional_info"),
            reported_people=[account] if account else [],
            victims=victims,
            files=files,
            unmapped=[f"csv:{h}" for h in unknown],
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "/".join(str(p) for p in first["loc"])
        raise IntakeError(where, f"line {sub.line}", "model", f"{field}: {first['msg']}") from None
    except ValueError as exc:
        raise IntakeError(where, f"line {sub.line}", "value", str(exc)) from None


def write_csv(reports: list[Report], path: Path) -> None:
    """Write reports as CSV rows (the subset of fields the columns carry; one reported account)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in reports:
            acc = r.reported_people[0] if r.reported_people else Account()
            person = acc.person or Person()
            loc = acc.estimated_location or EstimatedLocation()
            files = r.files

            def hashes(t: HashType, files: list[ReportedFile] = files) -> str:
                return ";".join(f.hash_of(t) or "" for f in files) if all(f.hash_of(t) for f in files) else ""

            viewed = {f.viewed_by_esp for f in files}
            row = {
                "report_id": r.id, "provider": r.provider or "", "received_at": r.received_at.isoformat(),
                "incident_type": r.incident_type.value, "incident_datetime": r.incident_datetime.isoformat(),
                "incident_datetime_description": r.incident_datetime_description or "", "platform": r.platform or "",
                "escalate_to_high_priority": r.escalate_to_high_priority or "",
                "report_annotations": ";".join(a.value for a in r.report_annotations), "additional_info": r.additional_info or "",
                "esp_service": acc.esp_service or "", "esp_identifier": acc.esp_identifier or "", "screen_name": acc.screen_name or "",
                "display_name": ";".join(acc.display_names), "email": ";".join(e.address for e in person.emails),
                "phone": ";".join(p.number for p in person.phones), "ip_address": ";".join(e.ip_address for e in acc.ip_events),
                "ip_datetime": ";".join(e.date_time.isoformat() for e in acc.ip_events if e.date_time),
                "country_code": loc.country_code or "", "region": loc.region or "", "city": loc.city or "",
                "prior_report_ids": ";".join(acc.prior_report_ids),
                "victim_age": str(r.victims[0].person.age) if r.victims and r.victims[0].person and r.victims[0].person.age is not None else "",
                "file_id": ";".join(f.file_id for f in files),
                "file_md5": hashes(HashType.MD5), "file_sha1": hashes(HashType.SHA1), "file_sha256": hashes(HashType.SHA256),
                "file_pdq": hashes(HashType.PDQ),
                "file_viewed_by_esp": "" if len(viewed) != 1 or None in viewed else str(viewed.pop()).lower(),
                "file_annotations": ";".join(a.value for a in files[0].annotations) if files else "",
            }
            w.writerow([row[c] for c in COLUMNS])
