"""Intake: one reader per format, sniffing, validation, and what goes to quarantine."""

from __future__ import annotations

from datetime import datetime

from tiptriage.intake import csv_rows, cybertip_json, cybertip_xml
from tiptriage.intake.discover import iter_submissions
from tiptriage.intake.errors import IntakeError, Limits
from tiptriage.intake.submission import Document, Submission, sha256
from tiptriage.model import Report, Source, SourceDocument, SourceFormat

_READERS = {SourceFormat.CYBERTIP_XML: cybertip_xml, SourceFormat.CYBERTIP_JSON: cybertip_json, SourceFormat.CSV: csv_rows}


def read(sub: Submission, received_at: datetime, limits: Limits | None = None) -> Report:
    """Read a submission into a Report with its source attached, or raise IntakeError."""
    if sub.error is not None:
        raise sub.error
    report: Report = _READERS[sub.format].read_submission(sub, received_at, limits or Limits())
    report.source = Source(
        format=sub.format,
        path=sub.path,
        sha256=sub.digest,
        documents=[SourceDocument(name=d.name, sha256=d.sha256, size=len(d.data)) for d in sub.documents],
        line=sub.line,
    )
    report.unmapped.extend(sub.notes)
    return report


__all__ = ["Document", "IntakeError", "Limits", "Submission", "iter_submissions", "read", "sha256"]
