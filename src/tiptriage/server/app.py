"""The HTTP API (FastAPI): login, sessions, and each agency's queue and reports, every read and change audited.

``create_app(store)`` builds the application; serve it behind TLS only (the cookies are ``Secure``), for example
``uvicorn --factory tiptriage.server.app:app_from_env --ssl-keyfile ... --ssl-certfile ...``. The OpenAPI document is at
``/openapi.json``; the interactive documentation pages are off (they load scripts from a CDN).

Endpoints
---------
======  ==============================  =======================================================================
GET     /api/banner                     the system-use notice, to show and accept before logging in
POST    /api/login                      {username, password, totp, banner_accepted: true} → session + CSRF cookies
POST    /api/logout                     ends the session (CSRF token required)
POST    /api/password                   change one's own password {current, new}; other sessions end (CSRF)
GET     /api/queue?limit&offset         the agency's assessed reports, most urgent first, paginated
GET     /api/reports/{id}               the canonical report JSON
GET     /api/reports/{id}/explain       the assessment: tier, score, every rule that fired with its evidence
POST    /api/reports/{id}/notes         example state change: audited, stores nothing yet (CSRF token required)
======  ==============================  =======================================================================

Authentication is a dependency (``Depends(principal)``, FastAPI's security pattern with an ``APIKeyCookie`` scheme): the
session cookie, then the idle lock and re-authentication limit, then for every method but GET/HEAD/OPTIONS the CSRF token
(header ``X-CSRF-Token``, equal to the ``__Host-tiptriage_csrf`` cookie set at login). Rules and their sources are in
``tiptriage.server.auth``.

Role × action (case data is only ever that of the user's own agency: a report is visible to an agency when ``report_agency``
has a row for the two, routed or by deconfliction; there is no cross-agency role)
---------------------------------------------------------------------------------------------------------------------------
=============  ======  ===========================  =====================  ======================  ==================
role           queue   report, explain (own agency)  notes (own agency)     any report of another   login, logout,
                                                                            agency, or unknown id   banner, password
=============  ======  ===========================  =====================  ======================  ==================
analyst        yes     yes                          yes                    404                     yes
investigator   yes     yes                          yes                    404                     yes
supervisor     yes     yes                          yes                    404                     yes
auditor        yes     yes (read only)              403                    404                     yes
agency_admin   403     404 (no case data)           404                    404                     yes
system_admin   403     404 (no case data)           404                    404                     yes
=============  ======  ===========================  =====================  ======================  ==================

A report the caller may not read answers 404 whether it exists or not, so the answer never tells one agency that another
agency's report exists; every such attempt is audited with outcome "denied". Account administration (enrolment, disabling,
unlocking) has no HTTP endpoint yet: ``tiptriage.server.auth.Authenticator`` provides it, audited.

Errors are ``application/problem+json`` (RFC 9457): ``type`` (a tag URI naming the problem, or about:blank), ``title``,
``status``, ``detail``, ``instance`` (the path). Lists are paginated with ``limit`` and ``offset`` and say the ``total``.
"""

import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import anyio.to_thread
from fastapi import Body, Depends, FastAPI, Query, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyCookie, APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tiptriage import pipeline
from tiptriage.model import Report
from tiptriage.server.api import add_api_routes
from tiptriage.server.auth import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    Action,
    Authenticator,
    AuthError,
    AuthPolicy,
    PasswordPolicyError,
    Principal,
    allowed,
    audit_name,
    token_hash,
    utc_now,
)
from tiptriage.server.context import Context
from tiptriage.server.problems import (
    PROBLEM_MEDIA_TYPE,
    TITLES,
    Problem,
    clear_cookies,
    problem_response,
    problems,
)
from tiptriage.server.web import add_web_routes
from tiptriage.store import Store
from tiptriage.store.rls import bind_to_request_agency, current_agency
from tiptriage.store.users import ReportAccessRepository, ReportReads, SessionRead
from tiptriage.store.views import ServiceViews

MAX_PAGE: Final = 200


# -- wire models ------------------------------------------------------------------------------------------------


class Banner(BaseModel):
    text: str
    version: str
    must_accept: bool = True


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=256)
    password: str = Field(max_length=1024, json_schema_extra={"format": "password", "writeOnly": True})
    totp: str = Field(max_length=16, description="the 6-digit code from the authenticator app")
    banner_accepted: bool = Field(False, description="must be true: the user accepted the system-use notice")


class LoginResponse(BaseModel):
    username: str
    agency_id: str
    role: str
    csrf_token: str = Field(description=f"send back in the {CSRF_HEADER} header on every state-changing request")
    idle_timeout_seconds: int
    reauthenticate_after_seconds: int


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current: str = Field(max_length=1024, json_schema_extra={"format": "password", "writeOnly": True})
    new: str = Field(max_length=1024, json_schema_extra={"format": "password", "writeOnly": True})


class PasswordChanged(BaseModel):
    other_sessions_ended: int


class QueueItem(BaseModel):
    report_id: str
    tier: int
    score: int
    incident_type: str
    received_at: datetime
    reasons: list[str]
    policy_version: str
    via: str = Field(description="how the agency came to see the report: routed | deconfliction")


class QueuePage(BaseModel):
    items: list[QueueItem]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class Explanation(BaseModel):
    report_id: str
    tier: int
    score: int
    policy_name: str
    policy_version: str
    assessed_at: datetime
    fired: list[dict[str, Any]]
    indicators: dict[str, Any]
    own_tier: int | None = None  # the tier on the report's own indicators, before a linked report's tier lifts it
    tier_changes: dict[str, Any] | None = None  # what sets the tier and what would change it (None: its policy is no longer in force)


class NoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)


class NoteAccepted(BaseModel):
    report_id: str
    stored: bool = Field(description="false: notes are not stored yet; the request is audited")


def _tidy_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Three corrections to what FastAPI generates: error responses are problem+json only (``model`` adds application/json),
    an operation's security schemes are all required together (FastAPI lists each as an alternative), and an operation
    with a body documents the 400 it answers when the body cannot be parsed at all (not UTF-8 JSON, broken multipart)."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if "requestBody" in operation:
                operation.setdefault("responses", {}).setdefault("400", {
                    "description": TITLES[400], "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}})
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if str(status) >= "400" and PROBLEM_MEDIA_TYPE in content:
                    content.pop("application/json", None)
            if len(operation.get("security", [])) > 1:
                operation["security"] = [{name: scopes for req in operation["security"] for name, scopes in req.items()}]
    return schema


# -- the application --------------------------------------------------------------------------------------------

# sent with every answer unless the handler set its own (the pages set a CSP of their own)
DEFAULT_HEADERS: Final = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"strict-transport-security", b"max-age=31536000"),
)


HotRoute = Callable[[Scope, Receive, Send], Awaitable[bool]]


class _RequestDefaults:
    """Every HTTP request starts bound to no agency, whatever ran before on this worker (see ``tiptriage.store.rls``), and
    every answer carries ``DEFAULT_HEADERS``. Plain ASGI rather than two ``@app.middleware("http")`` functions: that
    wrapper passes each request and answer through an extra task and a memory stream of its own, every time.

    ``hot``: the queue and report reads answered here when their request is plain (``create_app``'s ``answer_hot``), before
    FastAPI's routing, parameter and dependency machinery, which cost about as much of the server's CPU as the reads' own
    Python; it answers False, having done nothing, for every other request."""

    def __init__(self, app: ASGIApp, hot: list[HotRoute] | None = None) -> None:
        self.app = app
        self.hot = hot if hot is not None else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        current_agency.set(None)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in DEFAULT_HEADERS if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        for answer in self.hot:
            if await answer(scope, receive, send_with_headers):
                return
        await self.app(scope, receive, send_with_headers)


def worker_threads() -> int:
    """How many requests a server process works on at once (``TIPTRIAGE_SERVER_THREADS``, 16): the threads that run the
    handlers, each holding at most one pooled database connection at a time, so it must not exceed the pool
    (``TIPTRIAGE_DB_POOL_SIZE``, 20) or connections beyond the pool are opened and closed again for each request. anyio's
    default of 40 threads did that: 668 PostgreSQL connections opened in the load benchmark's 30 s with a pool of 20 (+20)."""
    return max(1, int(os.environ.get("TIPTRIAGE_SERVER_THREADS", "16")))


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # the limiter belongs to the event loop that serves the requests, so it is set here, once that loop runs
    anyio.to_thread.current_default_thread_limiter().total_tokens = worker_threads()
    yield


def create_app(store: Store, *, policy: AuthPolicy | None = None, clock: Callable[[], datetime] = utc_now,
               intake: Store | None = None, session_reads: bool = True) -> FastAPI:
    """The API over ``store``. ``policy`` and ``clock`` are injectable (tests move the clock). ``intake``: the store that
    submissions and hash-set imports write through, when ``store`` connects as the row-level-security application role
    (which may not insert a report no agency has yet); by default ``store`` itself. ``session_reads``: on PostgreSQL, the
    queue and report endpoints check the session and read in one pipelined transaction (``SessionRead``); False keeps them
    on the general path (tests compare the two)."""
    auth = Authenticator(store, policy, clock)
    access = ReportAccessRepository(store.engine)
    ctx = Context(store, auth, access, ServiceViews(store.engine), intake or store)
    app = FastAPI(
        title="tiptriage",
        version="0.1.0",
        summary="Agency-scoped, audited access to triaged CyberTipline-style reports.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        responses=problems(422, 500),
        lifespan=_lifespan,
    )

    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _tidy_openapi(generate_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to adjust the schema

    session_cookie = APIKeyCookie(name=SESSION_COOKIE, scheme_name="session", auto_error=False,
                                  description="set by POST /api/login; Secure, HttpOnly, SameSite=Strict")
    csrf_scheme = APIKeyHeader(name=CSRF_HEADER, scheme_name="csrf", auto_error=False,
                               description=f"the CSRF token from the login response (also in the {CSRF_COOKIE} cookie)")

    # -- error handling ------------------------------------------------------------------------------------

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.code, exc.title, exc.detail, clear_session=exc.clear_session)

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> JSONResponse:
        return problem_response(request, exc.status, exc.code, TITLES.get(exc.status, "Refused"), exc.detail, clear_session=exc.clear_session)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(request, exc.status_code, None, TITLES.get(exc.status_code, "Error"), detail)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in exc.errors()]
        if request.url.path == "/api/login":  # a malformed login is a failed login too, and is audited as one
            auth.audit("(unreadable)", "login_failed", "failed", source_address=_source(request), reason="malformed login request")
        return problem_response(request, 422, "invalid-request", "Invalid request", "The request does not match the API.", errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, 500, None, "Internal error", "The request could not be completed.")

    hot_routes: list[HotRoute] = []  # filled once the routes are defined, below
    app.add_middleware(_RequestDefaults, hot=hot_routes)

    # -- dependencies --------------------------------------------------------------------------------------

    SessionToken = Annotated[str | None, Security(session_cookie)]

    def authenticate(request: Request, token: str | None) -> Principal:
        return auth.authenticate(token, method=request.method, csrf_token=request.headers.get(CSRF_HEADER), source=_source(request),
                                 path=request.url.path)

    async def principal(request: Request, token: SessionToken) -> Principal:
        who = await run_in_threadpool(authenticate, request, token)
        # async on purpose: set here, in the request's own context, the agency reaches the handler's thread, and with it
        # every transaction the store begins (row-level security on PostgreSQL, see tiptriage.store.rls)
        current_agency.set(who.user.agency_id)
        return who

    Caller = Annotated[Principal, Depends(principal)]

    one_transaction = session_reads and store.engine.dialect.name == "postgresql"

    def in_one_thread(handler: Callable[..., Response]) -> Callable[..., Awaitable[Response]]:
        """For the endpoints read most (the queue, a report): the session check and the handler in one trip to a worker
        thread instead of two (``principal``, then the handler); handing work to threads took 17% of the server's CPU
        time under the load benchmark with two trips a request. The agency is set in that thread's context before the
        handler's first transaction, as ``principal`` sets it in the request's.

        On PostgreSQL the session check and the handler's read are one transaction (``SessionRead``) when the session needs
        nothing done (``Authenticator.accept``); any other session (unknown, ended, idle, too old, disabled, its idle clock
        due to move) goes through ``authenticate`` and the general read, as before."""

        async def run(request: Request, token: str | None, *args: Any) -> Response:
            def work() -> Response:
                if one_transaction and token:
                    with SessionRead(store.engine, token_hash(token)) as reads:
                        who = auth.accept(reads.session(), method=request.method, source=_source(request))
                        if who is not None:
                            current_agency.set(who.user.agency_id)
                            return handler(who, reads, *args)
                who = authenticate(request, token)
                current_agency.set(who.user.agency_id)
                return handler(who, access, *args)

            return await run_in_threadpool(work)

        return run

    csrf_doc = [Security(csrf_scheme)]  # documents the header in OpenAPI; ``principal`` enforces it

    def audit_read(who: Principal, object_type: str, object_id: str, outcome: str = "ok", **detail: Any) -> None:
        ctx.audit(who, "read", outcome, object_type=object_type, object_id=object_id, **detail)

    def readable_report(who: Principal, report_id: str, object_type: str, action: Action = Action.READ_REPORT) -> str:
        return ctx.visible_report(who, report_id, object_type, "read" if action is Action.READ_REPORT else "change")

    # -- banner, login, logout -----------------------------------------------------------------------------

    @app.get("/api/banner", response_model=Banner, tags=["session"])
    def banner() -> Banner:
        return Banner(text=auth.policy.banner_text, version=auth.policy.banner_version)

    @app.post("/api/login", response_model=LoginResponse, tags=["session"], responses=problems(400, 401))
    def login(request: Request, response: Response, body: Annotated[LoginRequest, Body()]) -> LoginResponse:
        result = auth.login(body.username, body.password, body.totp, body.banner_accepted, _source(request))
        max_age = int(auth.policy.reauthenticate_after.total_seconds())
        response.set_cookie(SESSION_COOKIE, result.token, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict")
        response.set_cookie(CSRF_COOKIE, result.csrf_token, max_age=max_age, path="/", secure=True, httponly=False, samesite="strict")
        return LoginResponse(username=result.user.username, agency_id=result.user.agency_id, role=result.user.role.value,
                             csrf_token=result.csrf_token, idle_timeout_seconds=int(auth.policy.idle_timeout.total_seconds()),
                             reauthenticate_after_seconds=max_age)

    @app.post("/api/logout", status_code=204, tags=["session"], dependencies=csrf_doc, responses=problems(401, 403))
    def logout(who: Caller) -> Response:
        auth.logout(who)
        response = Response(status_code=204)
        clear_cookies(response)
        return response

    @app.post("/api/password", response_model=PasswordChanged, tags=["session"], dependencies=csrf_doc, responses=problems(400, 401, 403))
    def change_password(who: Caller, body: Annotated[PasswordChange, Body()]) -> PasswordChanged:
        try:
            ended = auth.change_password(who, body.current, body.new)
        except PasswordPolicyError as e:
            raise Problem(400, "password-refused", "Password refused", "; ".join(e.problems)) from None
        return PasswordChanged(other_sessions_ended=ended)

    # -- case data -----------------------------------------------------------------------------------------

    def queue_page(who: Principal, reads: ReportReads, limit: int, offset: int) -> Response:
        if not allowed(who.user.role, Action.READ_QUEUE):
            audit_read(who, "queue", who.user.agency_id, "denied", reason="role may not read case data")
            raise Problem(403, "forbidden", "Forbidden", "This role has no access to case data.")
        rows, total = reads.queue(who.user.agency_id, limit, offset)
        audit_read(who, "queue", who.user.agency_id, rows=len(rows), offset=offset, limit=limit, total=total)
        # the rows are the items' fields, in order, with their types: written out by pydantic's own serialiser as QueuePage
        # would write them, without building and validating a model per item and then the page first
        page = {"items": rows, "total": total, "limit": limit, "offset": offset,
                "next_offset": offset + len(rows) if offset + len(rows) < total else None}
        return Response(to_json(page), media_type="application/json")

    def report_document(who: Principal, reads: ReportReads, report_id: str) -> Response:
        via, text = ctx.readable_report(who, report_id, reads)
        if text is None:
            audit_read(who, "report", report_id, "failed", reason="not stored")
            raise Problem(404, "not-found", "Not found", "No such report.")
        audit_read(who, "report", report_id, via=via)
        return Response(text, media_type="application/json")

    queue_in_thread, report_in_thread = in_one_thread(queue_page), in_one_thread(report_document)

    @app.get("/api/queue", response_model=QueuePage, tags=["reports"], responses=problems(401, 403))
    async def queue(
        request: Request,
        token: SessionToken,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")] = 50,
        offset: Annotated[int, Query(ge=0, description="items to skip")] = 0,
    ) -> Response:
        return await queue_in_thread(request, token, limit, offset)

    @app.get("/api/reports/{report_id}", response_model=Report, tags=["reports"], responses=problems(401, 404))
    async def report(request: Request, token: SessionToken, report_id: str) -> Response:
        return await report_in_thread(request, token, report_id)

    async def answer_hot(scope: Scope, receive: Receive, send: Send) -> bool:
        """GET /api/queue and GET /api/reports/{report_id} with nothing for FastAPI to decide: the route is plain (no root
        path), limit and offset are absent or plain decimal numbers in range. The cookie is read, the handler runs and its
        refusals are answered exactly as on the routes above (the same functions); anything else (a limit out of range, a
        number written otherwise, an unexpected error) is left to FastAPI or, for an error, to the server-error handler."""
        if scope["method"] != "GET" or scope.get("root_path"):
            return False
        path: str = scope["path"]
        if path == "/api/queue":
            query = QueryParams(scope["query_string"])
            limit, offset = _plain_int(query.get("limit", "50"), 1, MAX_PAGE), _plain_int(query.get("offset", "0"), 0, 999_999_999)
            if limit is None or offset is None:
                return False
            args: tuple[Any, ...] = (limit, offset)
            handle = queue_in_thread
        elif (report_id := path.removeprefix("/api/reports/")) != path and report_id and "/" not in report_id:
            args, handle = (report_id,), report_in_thread
        else:
            return False
        request = Request(scope, receive)
        try:
            response: Response = await handle(request, request.cookies.get(SESSION_COOKIE) or None, *args)
        except Problem as exc:
            response = await _problem(request, exc)
        except AuthError as exc:
            response = await _auth_error(request, exc)
        await response(scope, receive, send)
        return True

    if session_reads:
        hot_routes.append(answer_hot)

    @app.get("/api/reports/{report_id}/explain", response_model=Explanation, tags=["reports"], responses=problems(401, 404))
    def explain(who: Caller, report_id: str) -> Explanation:
        via = readable_report(who, report_id, "assessment")
        found = store.assessments.get(report_id)
        if found is None:
            audit_read(who, "assessment", report_id, "failed", reason="not assessed yet")
            raise Problem(404, "not-assessed", "Not found", "The report has not been assessed yet.")
        audit_read(who, "assessment", report_id, via=via)
        changes = pipeline.tier_changes(store, found)  # rule ids, tiers and conditions: nothing another agency owns
        found = json.loads(ctx.redact(who, json.dumps(found, default=str)))
        at = datetime.fromisoformat(found["assessed_at"])
        return Explanation(**{k: found[k] for k in Explanation.model_fields if k not in ("assessed_at", "tier_changes")},
                           assessed_at=at if at.tzinfo else at.replace(tzinfo=UTC),  # SQLite gives times back without a zone
                           tier_changes=changes)

    @app.post("/api/reports/{report_id}/notes", status_code=202, response_model=NoteAccepted, tags=["reports"], dependencies=csrf_doc,
              responses=problems(401, 403, 404))
    def add_note(who: Caller, report_id: str, body: Annotated[NoteRequest, Body()]) -> NoteAccepted:
        readable_report(who, report_id, "report", Action.ANNOTATE_REPORT)
        if not allowed(who.user.role, Action.ANNOTATE_REPORT):
            auth.audit(who.user.username, "change", "denied", object_type="report", object_id=report_id, agency=who.user.agency_id,
                       source_address=who.source_address, change="note", reason="role may not change case data")
            raise Problem(403, "forbidden", "Forbidden", "This role may read but not change case data.")
        auth.audit(who.user.username, "change", object_type="report", object_id=report_id, agency=who.user.agency_id,
                   source_address=who.source_address, change="note", chars=len(body.text), stored=False)
        return NoteAccepted(report_id=report_id, stored=False)

    add_api_routes(app, ctx, Depends(principal), csrf_doc)
    add_web_routes(app, ctx)
    return app


_PLAIN_INT: Final = re.compile(r"0|[1-9][0-9]{0,8}")


def _plain_int(text: str, low: int, high: int) -> int | None:
    """A query parameter written as plain decimal digits, within [low, high]; None for anything else, which FastAPI then
    validates (and may take, as pydantic reads more ways of writing a number than these)."""
    if not _PLAIN_INT.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def _source(request: Request) -> str | None:
    """The client's address as the server sees it. Behind a reverse proxy this is the proxy: configure uvicorn's
    ``--forwarded-allow-ips`` for the proxy so the real address is used."""
    return audit_name(request.client.host)[:64] if request.client else None


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory``: the store named by TIPTRIAGE_DATABASE_URL (secrets come from the environment, never the repo).
    With TIPTRIAGE_APP_DATABASE_URL (PostgreSQL, the role ``tiptriage db secure`` made), case data is read and changed as that
    role, every transaction bound to the caller's agency; intake and hash-set imports go through the owner's URL."""
    return service_app(os.environ.get("TIPTRIAGE_DATABASE_URL"), os.environ.get("TIPTRIAGE_APP_DATABASE_URL"))


def service_app(owner_url: str | None, app_url: str | None) -> FastAPI:
    owner = Store(owner_url)
    if not app_url:
        return create_app(owner)
    as_app = Store(app_url, migrate_schema=False)
    bind_to_request_agency(as_app.engine)
    return create_app(as_app, intake=owner)
