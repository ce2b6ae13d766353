"""Finding submissions in paths: folders are walked lazily, one submission in memory at a time.

- a folder holding ``report.xml`` is one XML submission (its other ``*.xml`` are fileDetails); its name is the report id
- a ``.zip`` holding ``report.xml`` (at its root or in one top folder) likewise; its stem is the report id
- any other XML file is a bare report whose id derives from its SHA-256
- a JSON file is one report; a CSV file is one report per row
With ``--format auto`` the kind comes from the extension, else from the first bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from tiptriage.intake.csv_rows import iter_csv_rows
from tiptriage.intake.errors import IntakeError, Limits
from tiptriage.intake.submission import Document, Submission
from tiptriage.model import SourceFormat

FORMATS = {"auto": None, "cybertip-xml": SourceFormat.CYBERTIP_XML, "cybertip-json": SourceFormat.CYBERTIP_JSON, "csv": SourceFormat.CSV}
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def _digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _oversize(path: Path, fmt: SourceFormat, size: int, limits: Limits) -> Submission:
    err = IntakeError(str(path), "-", "size-limit", f"document is {size} bytes, over the limit of {limits.max_document_bytes}")
    return Submission(str(path), fmt, [], _digest_file(path), error=err, spill=path)


def _refused(path: Path, fmt: SourceFormat, data: bytes, err: IntakeError) -> Submission:
    doc = Document.of(path.name, data)
    return Submission(str(path), fmt, [doc], doc.sha256, error=err)


def sniff(path: Path, head: bytes) -> SourceFormat | None:
    ext = path.suffix.lower()
    if ext in (".xml", ".zip"):
        return SourceFormat.CYBERTIP_XML
    if ext == ".json":
        return SourceFormat.CYBERTIP_JSON
    if ext == ".csv":
        return SourceFormat.CSV
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start == b"<" or head[:4] == b"PK\x03\x04":
        return SourceFormat.CYBERTIP_XML
    if start in (b"{", b"["):
        return SourceFormat.CYBERTIP_JSON
    return None


def _xml_folder(folder: Path, limits: Limits) -> Submission:
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    ordered = ["report.xml"] + [n for n in names if n != "report.xml" and n.lower().endswith(".xml")]
    ignored = [n for n in names if not n.lower().endswith(".xml")]
    docs = []
    for name in ordered:
        p = folder / name
        size = p.stat().st_size
        if size > limits.max_document_bytes:
            sub = _oversize(p, SourceFormat.CYBERTIP_XML, size, limits)
            sub.path = str(folder)
            assert sub.error is not None
            sub.error = sub.error.with_path(str(p))
            return sub
        docs.append(Document.of(name, p.read_bytes()))
    sub = Submission(str(folder), SourceFormat.CYBERTIP_XML, docs, Submission.digest_of(docs), report_id=folder.name, container=True)
    sub.notes = [f"ignored non-XML file in submission folder: {n}" for n in ignored]
    if not _SAFE_ID.match(folder.name):
        sub.error = IntakeError(str(folder), "-", "report-id", f"folder name {folder.name!r} is not a usable report id (letters, digits, . _ : - ; at most 128)")
    return sub


def _xml_zip(path: Path, limits: Limits) -> Submission:
    data = path.read_bytes()
    try:
        with zipfile.ZipFile(path) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
            if len(infos) > limits.max_zip_members:
                raise IntakeError(str(path), "-", "zip-members", f"{len(infos)} members, over the limit of {limits.max_zip_members}")
            by_name: dict[str, zipfile.ZipInfo] = {}
            for info in infos:
                if info.file_size > limits.max_document_bytes:
                    raise IntakeError(f"{path}/{info.filename}", "-", "size-limit", f"member expands to {info.file_size} bytes, over the limit of {limits.max_document_bytes}")
                by_name[info.filename] = info
            report = [n for n in by_name if n.rsplit("/", 1)[-1] == "report.xml"]
            if len(report) != 1:
                raise IntakeError(str(path), "-", "report-xml", f"a submission zip must hold exactly one report.xml, found {len(report)}")
            prefix = report[0][: -len("report.xml")]
            docs = []
            for name in [report[0], *sorted(n for n in by_name if n != report[0] and n.lower().endswith(".xml") and n.startswith(prefix))]:
                with z.open(by_name[name]) as member:
                    content = member.read(limits.max_document_bytes + 1)
                if len(content) > limits.max_document_bytes:
                    raise IntakeError(f"{path}/{name}", "-", "size-limit", f"member expands beyond the limit of {limits.max_document_bytes} bytes")
                docs.append(Document.of(name[len(prefix):], content))
    except IntakeError as err:
        return _refused(path, SourceFormat.CYBERTIP_XML, data, err)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError) as exc:
        return _refused(path, SourceFormat.CYBERTIP_XML, data, IntakeError(str(path), "-", "zip", f"not a readable zip archive: {exc}"))
    sub = Submission(str(path), SourceFormat.CYBERTIP_XML, docs, Submission.digest_of(docs), report_id=path.stem, container=True)
    if not _SAFE_ID.match(path.stem):
        sub.error = IntakeError(str(path), "-", "report-id", f"zip name {path.stem!r} is not a usable report id")
    return sub


def _single(path: Path, fmt: SourceFormat, data: bytes) -> Submission:
    doc = Document.of(path.name, data)
    return Submission(str(path), fmt, [doc], doc.sha256, report_id=doc.sha256[:32], id_from_digest=True)


def submissions_in_file(path: Path, fmt: SourceFormat | None, limits: Limits) -> Iterator[Submission]:
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(512)
    kind = fmt or sniff(path, head)
    if kind is SourceFormat.CSV:
        yield from iter_csv_rows(path, limits)
        return
    if kind is SourceFormat.CYBERTIP_XML and (path.suffix.lower() == ".zip" or head[:4] == b"PK\x03\x04"):
        if size > limits.max_document_bytes:
            yield _oversize(path, kind, size, limits)
        else:
            yield _xml_zip(path, limits)
        return
    if size > limits.max_document_bytes:
        yield _oversize(path, kind or SourceFormat.CYBERTIP_XML, size, limits)
        return
    data = path.read_bytes()
    if kind is None:
        what = "the file is empty" if not data.strip() else "not a recognised submission (expected CyberTipline XML or JSON, or CSV)"
        yield _refused(path, SourceFormat.CYBERTIP_XML, data, IntakeError(str(path), "-", "format" if data.strip() else "not-empty", what))
        return
    yield _single(path, kind, data)


def iter_submissions(paths: Iterable[Path], fmt: str = "auto", limits: Limits | None = None) -> Iterator[Submission]:
    """Yield submissions under ``paths`` in a stable order, lazily."""
    limits = limits or Limits()
    wanted = FORMATS[fmt]
    for root in paths:
        if root.is_dir():
            yield from _walk(root, wanted, limits)
        elif root.exists():
            yield from submissions_in_file(root, wanted, limits)
        else:
            yield Submission(str(root), wanted or SourceFormat.CYBERTIP_XML, [], "", error=IntakeError(str(root), "-", "exists", "no such file or folder"))


def _walk(folder: Path, wanted: SourceFormat | None, limits: Limits) -> Iterator[Submission]:
    if (folder / "report.xml").is_file() and wanted in (None, SourceFormat.CYBERTIP_XML):
        yield _xml_folder(folder, limits)
        return
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.name.startswith("."):
            continue
        p = Path(e.path)
        if e.is_dir(follow_symlinks=False):
            yield from _walk(p, wanted, limits)
        elif e.is_file(follow_symlinks=False):
            yield from submissions_in_file(p, wanted, limits)
