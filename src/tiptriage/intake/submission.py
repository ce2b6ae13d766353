"""A submission: the unit of intake, idempotency and quarantine.

One submission becomes one report. It holds the original documents' bytes (or, for a document over
the size limit, the path to stream it from) and a digest over them: the idempotency key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from tiptriage.intake.errors import IntakeError
from tiptriage.model import SourceFormat


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Document:
    name: str
    data: bytes
    sha256: str

    @classmethod
    def of(cls, name: str, data: bytes) -> Document:
        return cls(name, data, sha256(data))


@dataclass
class Submission:
    path: str
    format: SourceFormat
    documents: list[Document]
    digest: str
    report_id: str = ""
    id_from_digest: bool = False
    line: int | None = None
    container: bool = False  # a folder or zip whose members are named inside it
    error: IntakeError | None = None  # refused before reading (size, broken zip): quarantine as is
    spill: Path | None = None  # original too large to hold in memory: stream it from here
    notes: list[str] = field(default_factory=list)

    def display(self, doc: Document) -> str:
        return f"{self.path}/{doc.name}" if self.container else self.path

    @staticmethod
    def digest_of(documents: list[Document]) -> str:
        if len(documents) == 1:
            return documents[0].sha256
        manifest = "\n".join(f"{d.name}\t{d.sha256}" for d in sorted(documents, key=lambda d: d.name))
        return sha256(manifest.encode())
