"""The service's API beyond login and reading reports: subjects, lead packages, cases and their workflow, the supervisor's
figures, the audit log, known-hash sets and submissions. Mounted by ``tiptriage.server.app.create_app``.

Endpoints
---------
======  ======================================  ==========================================================================
GET     /api/reports/{id}/subject               the report's subject as the agency may see it (its own reports only)
GET     /api/subjects/{id}                      the same, by subject id
GET     /api/reports/{id}/package?format=       a lead package: json | html | pdf | case (CASE/UCO JSON-LD); audited as export
GET     /api/cases/{ref}                        the agency's case (by case id or report id) with its events
POST    /api/cases/{ref}/assign                 {assignee}: supervisors assign anyone; an investigator may take a case
POST    /api/cases/{ref}/transition             {state, note}: a move the workflow allows (closing needs an outcome)
POST    /api/cases/{ref}/outcome                {outcome, reason}: close the case with what it came to
GET     /api/dashboard                          the agency's figures: volume by tier, backlog aging, overdue, load
GET     /api/audit?limit&offset                 the agency's audit entries, newest first (auditors)
GET     /api/audit/verify                       the whole chain checked; the first bad entry named (auditors)
GET     /api/hashsets                           the banks and their entry counts (system administrators)
POST    /api/hashsets/{name}                    import a hash-set file into a bank (multipart; system administrators)
POST    /api/submissions                        ingest one submission file (multipart); a receipt, never case data
======  ======================================  ==========================================================================

Every change and its audit entry commit together (``tiptriage.work.cases``). Every state-changing request needs the CSRF
token. Deleting is never offered: nothing is lost, so DELETE on any of these answers 405.
"""


import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import Body, FastAPI, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile as StarletteUpload  # what page forms give; FastAPI's is a subclass

from tiptriage import pipeline
from tiptriage.audit.chain import VerifyResult
from tiptriage.hashes.overview import bank_overview
from tiptriage.intake.discover import FORMATS
from tiptriage.link.records import account_key
from tiptriage.server.auth import Action, Principal, allowed
from tiptriage.server.context import Context
from tiptriage.server.problems import Problem, problems
from tiptriage.store.work import CaseConflict
from tiptriage.work import cases
from tiptriage.work.states import OUTCOMES, STATES, aging, capacity_per_investigator

MAX_UPLOAD: Final = 256 * 1024 * 1024  # one submission or hash-set file; larger ones go through the CLI
PAGE_MAX: Final = 200


class SubjectLink(BaseModel):
    a: str
    b: str
    kind: str
    probability: float
    evidence: list[str]


class SubjectView(BaseModel):
    id: str
    accounts: list[str]
    report_accounts: list[dict[str, str]]
    links: list[SubjectLink]
    deconfliction: list[dict[str, Any]] = Field(description="notices naming another agency's case on the same subject; nothing more")


class CaseEvent(BaseModel):
    at: datetime
    from_state: str | None
    to_state: str
    by: str
    note: str | None


class CaseView(BaseModel):
    id: str
    report_id: str
    agency_id: str
    state: str
    assignee: str | None
    outcome: str | None
    outcome_reason: str | None
    opened_at: datetime
    due_at: datetime | None
    sla: str = Field(description="on time | due soon | overdue | no clock")
    events: list[CaseEvent]


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: str = Field(min_length=1, max_length=128)


class TransitionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["new", "assigned", "in_progress", "legal_process"]
    note: str | None = Field(None, max_length=2000)


class OutcomeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["arrest", "child_safeguarded", "unfounded", "referred_elsewhere", "no_action"]
    reason: str | None = Field(None, max_length=2000)


class Dashboard(BaseModel):
    agency_id: str
    days: list[str]
    volume_by_tier: dict[int, list[int]]
    backlog_aging: list[tuple[str, int]]
    overdue_by_tier: dict[int, int]
    load: list[tuple[str, int]]
    unassigned: int
    capacity: int = Field(description="open cases one investigator is expected to carry (data/sla.json)")
    over_capacity: list[str]


class AuditItem(BaseModel):
    seq: int
    at: datetime
    username: str
    agency: str | None
    source_address: str | None
    object_type: str | None
    object_id: str | None
    action: str
    outcome: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditItem]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class AuditVerification(BaseModel):
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None


class Bank(BaseModel):
    name: str
    negative: bool
    max_distance: int
    min_quality: int
    updated_at: str
    entries: dict[str, int]


class HashSetImported(BaseModel):
    bank: str
    added: int
    updated: int
    removed: int
    refused: int
    refusals: list[dict[str, Any]]


class SubmissionReceipt(BaseModel):
    accepted: int
    duplicates: int
    quarantined: int
    errors: list[dict[str, str]] = Field(description="each refused document: its place and the reason; the bytes are kept in quarantine")


def case_view(case: dict[str, Any], now: datetime) -> CaseView:
    return CaseView(**{k: case[k] for k in CaseView.model_fields if k not in ("sla", "events", "opened_at")},
                    opened_at=case["opened_at"] if case["opened_at"].tzinfo else case["opened_at"].replace(tzinfo=now.tzinfo),
                    sla=aging(case["due_at"], now) if case["state"] != "closed" else "closed",
                    events=[CaseEvent(**{k: e[k] for k in CaseEvent.model_fields} | {"at": e["at"] if e["at"].tzinfo else e["at"].replace(tzinfo=now.tzinfo)})
                            for e in case["events"]])


def _save_upload(upload: StarletteUpload, folder: Path) -> Path:
    """Copy the upload to ``folder`` under a neutral name (the client's file name is never trusted as a path)."""
    suffix = "".join(c for c in Path(upload.filename or "").suffix.lower() if c.isalnum() or c == ".")[:8]
    target = folder / f"upload{suffix}"
    written = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(1 << 20):
            written += len(chunk)
            if written > MAX_UPLOAD:
                raise Problem(413, "too-large", "Too large", f"Uploads stop at {MAX_UPLOAD // (1 << 20)} MiB; use the command line.")
            out.write(chunk)
    return target


def add_api_routes(app: FastAPI, ctx: Context, caller: Any, csrf_doc: list[Any]) -> None:
    """``caller`` is the ``Depends(principal)`` annotation; ``csrf_doc`` documents the CSRF header on changing routes."""
    Caller = Annotated[Principal, caller]
    store = ctx.store

    # -- subjects and packages -----------------------------------------------------------------------------

    def subject_response(who: Principal, subject_id: str) -> SubjectView:
        view = ctx.visible_subject(who, subject_id)
        ctx.audit(who, "read", object_type="subject", object_id=subject_id, reports=len(view["report_accounts"]))
        return SubjectView(**view)

    @app.get("/api/reports/{report_id}/subject", response_model=SubjectView, tags=["subjects"], responses=problems(401, 404))
    def report_subject(who: Caller, report_id: str) -> SubjectView:
        ctx.visible_report(who, report_id, "subject")
        sid = subject_of_report(ctx, report_id)
        if sid is None:
            ctx.audit(who, "read", "failed", object_type="subject", object_id=report_id, reason="the report has no linked subject")
            raise Problem(404, "no-subject", "Not found", "The report is not linked to a subject.")
        return subject_response(who, sid)

    @app.get("/api/subjects/{subject_id}", response_model=SubjectView, tags=["subjects"], responses=problems(401, 404))
    def subject(who: Caller, subject_id: str) -> SubjectView:
        return subject_response(who, subject_id)

    media: Final = {"json": "application/json", "html": "text/html; charset=utf-8", "pdf": "application/pdf", "case": "application/ld+json"}

    @app.get("/api/reports/{report_id}/package", tags=["reports"], responses={**problems(401, 403, 404),
             200: {"description": "the package", "content": {m: {} for m in media.values()}}})
    def package(who: Caller, report_id: str, fmt: Annotated[Literal["json", "html", "pdf", "case"], Query(alias="format")] = "json") -> Response:
        ctx.visible_report(who, report_id, "package", verb="export")
        ctx.require(who, Action.EXPORT_PACKAGE, "package", report_id, verb="export")
        body = render_package(ctx, who, report_id, fmt)
        ctx.audit(who, "export", object_type="package", object_id=report_id, format=fmt, bytes=len(body))
        return Response(body, media_type=media[fmt],
                        headers={"Content-Disposition": f'attachment; filename="package-{report_id[:64]}.{"jsonld" if fmt == "case" else fmt}"'})

    # -- cases ---------------------------------------------------------------------------------------------

    @app.get("/api/cases/{ref}", response_model=CaseView, tags=["cases"], responses=problems(401, 404))
    def case(who: Caller, ref: str) -> CaseView:
        if not allowed(who.user.role, Action.READ_QUEUE):
            ctx.audit(who, "read", "denied", object_type="case", object_id=ref, reason="role may not read case data")
            raise Problem(404, "not-found", "Not found", "No such case.")
        found = ctx.own_case(who, ref, verb="read")
        ctx.audit(who, "read", object_type="case", object_id=str(found["id"]))
        return case_view(found, ctx.auth.now())

    def change(who: Principal, ref: str, do: Any) -> CaseView:
        try:
            moved = do(ctx.actor(who))
        except cases.TransitionError as exc:
            ctx.audit(who, "change", "failed", object_type="case", object_id=ref, reason=str(exc))
            raise Problem(409, "transition-refused", "Conflict", str(exc)) from None
        except CaseConflict as exc:
            raise Problem(409, "case-changed", "Conflict", str(exc)) from None
        return case_view(moved, ctx.auth.now())

    @app.post("/api/cases/{ref}/assign", response_model=CaseView, tags=["cases"], dependencies=csrf_doc, responses=problems(401, 403, 404, 409))
    def assign(who: Caller, ref: str, body: Annotated[AssignRequest, Body()]) -> CaseView:
        found = ctx.own_case(who, ref)
        taking = body.assignee == who.user.username and allowed(who.user.role, Action.WORK_CASE)
        if not taking:
            ctx.require(who, Action.ASSIGN_CASE, "case", str(found["id"]))
        elif body.assignee not in {u.username for u in ctx.auth.users.in_agency(who.user.agency_id)}:
            raise Problem(409, "unknown-assignee", "Conflict", "The assignee is not an account of the agency.")
        if not taking and body.assignee not in {u.username for u in ctx.auth.users.in_agency(who.user.agency_id) if not u.disabled}:
            raise Problem(409, "unknown-assignee", "Conflict", "The assignee is not an active account of the agency.")
        return change(who, ref, lambda actor: cases.assign(store, str(found["id"]), body.assignee, actor, scope=who.user.agency_id))

    @app.post("/api/cases/{ref}/transition", response_model=CaseView, tags=["cases"], dependencies=csrf_doc,
              responses=problems(401, 403, 404, 409))
    def transition(who: Caller, ref: str, body: Annotated[TransitionRequest, Body()]) -> CaseView:
        found = ctx.own_case(who, ref)
        ctx.require(who, Action.WORK_CASE, "case", str(found["id"]))
        return change(who, ref, lambda actor: cases.move(store, str(found["id"]), body.state, actor, body.note, scope=who.user.agency_id))

    @app.post("/api/cases/{ref}/outcome", response_model=CaseView, tags=["cases"], dependencies=csrf_doc, responses=problems(401, 403, 404, 409))
    def outcome(who: Caller, ref: str, body: Annotated[OutcomeRequest, Body()]) -> CaseView:
        found = ctx.own_case(who, ref)
        ctx.require(who, Action.WORK_CASE, "case", str(found["id"]))
        return change(who, ref, lambda actor: cases.close(store, str(found["id"]), body.outcome, body.reason, actor, scope=who.user.agency_id,
                                                                  reassess_in=ctx.intake))

    # -- supervisor, audit ---------------------------------------------------------------------------------

    @app.get("/api/dashboard", response_model=Dashboard, tags=["supervision"], responses=problems(401, 403))
    def dashboard(who: Caller) -> Dashboard:
        ctx.require(who, Action.READ_DASHBOARD, "dashboard", who.user.agency_id, verb="read")
        figures = ctx.views.dashboard(who.user.agency_id, ctx.auth.now(), capacity=capacity_per_investigator())
        ctx.audit(who, "read", object_type="dashboard", object_id=who.user.agency_id)
        return Dashboard(agency_id=who.user.agency_id, **figures)

    @app.get("/api/audit", response_model=AuditPage, tags=["audit"], responses=problems(401, 403))
    def audit_entries(who: Caller, limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50, offset: Annotated[int, Query(ge=0)] = 0) -> AuditPage:
        ctx.require(who, Action.READ_AUDIT, "audit", who.user.agency_id, verb="read")
        rows, total = ctx.views.audit_page(who.user.agency_id, limit, offset)
        ctx.audit(who, "read", object_type="audit", object_id=who.user.agency_id, offset=offset, rows=len(rows))
        return AuditPage(items=[AuditItem(**r) for r in rows], total=total, limit=limit, offset=offset,
                         next_offset=offset + len(rows) if offset + len(rows) < total else None)

    @app.get("/api/audit/verify", response_model=AuditVerification, tags=["audit"], responses=problems(401, 403))
    def audit_verify(who: Caller) -> AuditVerification:
        if not (allowed(who.user.role, Action.READ_AUDIT) or allowed(who.user.role, Action.ADMIN_HASHSETS)):
            ctx.require(who, Action.READ_AUDIT, "audit", "chain", verb="read")
        result = store.audit.verify()
        ctx.audit(who, "verify", object_type="audit", object_id="chain", ok=result.ok)  # an entry needs both or neither
        return verification(result)

    # -- administration ------------------------------------------------------------------------------------

    @app.get("/api/hashsets", response_model=list[Bank], tags=["administration"], responses=problems(401, 403))
    def hashsets(who: Caller) -> list[Bank]:
        ctx.require(who, Action.ADMIN_HASHSETS, "hashsets", "all", verb="read")
        ctx.audit(who, "read", object_type="hashsets", object_id="all")
        return [Bank(**b) for b in bank_overview(store)]

    @app.post("/api/hashsets/{name}", response_model=HashSetImported, tags=["administration"], dependencies=csrf_doc,
              responses=problems(400, 401, 403, 413))
    def hashset_import(who: Caller, name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")],
                       file: Annotated[UploadFile, File()],
                       fmt: Annotated[Literal["auto", "vics", "ncmec", "csv"], Form(alias="format")] = "auto",
                       negative: Annotated[bool, Form()] = False) -> HashSetImported:
        ctx.require(who, Action.ADMIN_HASHSETS, "hashset", name)
        res = import_hashset_upload(ctx, who, name, file, fmt, negative)
        return HashSetImported(bank=name, added=res.added, updated=res.updated, removed=res.removed, refused=res.refused,
                               refusals=res.refusals[:100])

    @app.post("/api/submissions", response_model=SubmissionReceipt, tags=["intake"], dependencies=csrf_doc, responses=problems(401, 403, 413))
    def submit(who: Caller, file: Annotated[UploadFile, File(description="ESP XML, a zip of a report folder, JSON or CSV")],
               fmt: Annotated[str, Form(alias="format", pattern="^(auto|" + "|".join(FORMATS) + ")$")] = "auto") -> SubmissionReceipt:
        ctx.require(who, Action.SUBMIT, "submission", "upload")
        with tempfile.TemporaryDirectory(prefix="tiptriage-upload-") as tmp:
            path = _save_upload(file, Path(tmp))
            res = pipeline.ingest(ctx.intake, [path], fmt)
        ctx.audit(who, "submit", object_type="submission", object_id="upload", accepted=res.accepted, quarantined=res.quarantined,
                  duplicates=res.duplicates)
        errors = [{k: str(v) for k, v in e.items() if k != "path"} for e in res.errors]
        return SubmissionReceipt(accepted=res.accepted, duplicates=res.duplicates, quarantined=res.quarantined, errors=errors[:100])


def import_hashset_upload(ctx: Context, who: Principal, name: str, upload: StarletteUpload, fmt: str, negative: bool = False) -> Any:
    """An uploaded hash-set file into bank ``name`` through the intake store, bounded in size, audited either way; a refused
    file is a 400 problem naming the reason. Shared by the API and the administration page."""
    with tempfile.TemporaryDirectory(prefix="tiptriage-upload-") as tmp:
        path = _save_upload(upload, Path(tmp))
        try:
            res = pipeline.import_hashset(ctx.intake, path, name, fmt, negative=negative)
        except (ValueError, OSError) as exc:
            ctx.audit(who, "change", "failed", object_type="hashset", object_id=name, reason=str(exc)[:300])
            raise Problem(400, "hashset-refused", "Bad request", str(exc)[:1000]) from None
    ctx.audit(who, "change", object_type="hashset", object_id=name, added=res.added, updated=res.updated, removed=res.removed,
              refused=res.refused)
    return res


def verification(result: VerifyResult) -> AuditVerification:
    return AuditVerification(ok=result.ok, entries=result.checked, first_bad_seq=result.first_bad_seq, problem=result.problem)


def subject_of_report(ctx: Context, report_id: str) -> str | None:
    """The subject of the report's first reported account, the one a package is about."""
    report = ctx.store.get_report(report_id)
    if report is None or not report.reported_people:
        return None
    return ctx.store.links.subject_of(account_key(report, 0))


def render_package(ctx: Context, who: Principal, report_id: str, fmt: str) -> bytes:
    """The package bytes; the subject part keeps only what the agency may see (``Context.visible_subject``)."""
    import json as _json

    from tiptriage.packages import case_uco, render

    try:
        data = pipeline.build_package(ctx.store, report_id, who.user.username)
    except KeyError:
        raise Problem(404, "not-assessed", "Not found", "The report has not been assessed yet.") from None
    data = type(data).model_validate_json(ctx.redact(who, data.model_dump_json()))
    if data.subject is not None:
        seen = ctx.visible_subject(who, data.subject.id)
        mine = [lr for lr in data.subject.linked_reports if lr.report_id in {r["report_id"] for r in seen["report_accounts"]}]
        accounts = [a for a in data.subject.accounts if a.key in seen["accounts"]]
        data = data.model_copy(update={"subject": data.subject.model_copy(update={"linked_reports": mine, "accounts": accounts})})
    if fmt == "json":
        return _json.dumps(render.to_json(data), indent=2, default=str).encode()
    if fmt == "html":
        return render.to_html(data).encode()
    if fmt == "pdf":
        return render.to_pdf(data)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "case.jsonld"
        case_uco.write_case_jsonld(data, out)
        return out.read_bytes()


__all__ = ["OUTCOMES", "STATES", "add_api_routes", "case_view", "render_package"]
