"""The web pages: server-rendered templates and a little JavaScript, no front-end build step, never any imagery.

=========================  ==================================================================================================
GET  /login                the system-use notice, then username, password and the TOTP code
GET  /queue                the agency's work in tier lanes: reason badges, filters, search, pagination, unread markers
GET  /oncall               tier 1 only, open, for a phone-sized screen
GET  /reports/{id}         why this tier (rules and evidence), indicators, the subject as a graph, deadlines, file access,
                           hash matches, the case with assign / move / outcome, package downloads
GET  /dashboard            the supervisor's figures: volume by tier over time, backlog aging, SLA breaches, load per person
GET  /audit                the agency's audit entries and the chain's verification (auditors)
GET  /admin                known-hash sets and their import (system administrators); the agency's policy (agency admins)
=========================  ==================================================================================================

Pages use the same session as the API, the same role checks (``Context``) and the same audit entries. Forms carry the CSRF
token as a hidden field; the login form, before any session exists, is protected by a double-submit token of its own.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Awaitable, Callable
from importlib import resources
from inspect import iscoroutinefunction
from typing import Any, Final, cast
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.datastructures import FormData, UploadFile

from tiptriage import pipeline
from tiptriage.assess.policy import PolicyError
from tiptriage.hashes.overview import bank_overview
from tiptriage.server import svg
from tiptriage.server.api import import_hashset_upload
from tiptriage.server.auth import CSRF_COOKIE, SESSION_COOKIE, Action, AuthError, Principal, allowed, audit_name
from tiptriage.server.context import Context
from tiptriage.server.problems import Problem
from tiptriage.store.policies import PolicyRepository
from tiptriage.store.rls import current_agency
from tiptriage.store.work import CaseConflict
from tiptriage.work import cases
from tiptriage.work.states import OUTCOMES, OUTCOMES_NEEDING_REASON, TRANSITIONS, aging, capacity_per_investigator

LOGIN_COOKIE: Final = "__Host-tiptriage_login"  # the login form's own CSRF token (double submit), before a session exists
PAGE_SIZE: Final = 25
TIER_NAMES: Final = {1: "Tier 1 — a child may be in imminent danger: act now", 2: "Tier 2 — contact or production risk",
                     3: "Tier 3 — possession or distribution", 4: "Tier 4 — informational or not actionable"}
PAGE_CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                   "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")


class LoginRequired(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _templates() -> Jinja2Templates:
    folder = resources.files("tiptriage.server").joinpath("templates")
    t = Jinja2Templates(directory=str(folder))
    t.env.globals.update(tier_names=TIER_NAMES, tier_colours=svg.TIER_COLOURS, Action=Action, allowed=allowed)
    return t


def html_error(request: Request, status: int, title: str, detail: str | None) -> Response:
    """Errors on a page are pages too; an expired or missing session goes back to the login."""
    if status == 401:
        return RedirectResponse(f"/login?{urlencode({'reason': detail or 'Please log in.', 'next': request.url.path})}", status_code=303)
    body = _templates().get_template("error.html").render(status=status, title=title, detail=detail, who=None, csrf="", request=request)
    return _with_csp(HTMLResponse(body, status_code=status))


def _with_csp(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


def _source(request: Request) -> str | None:
    return audit_name(request.client.host)[:64] if request.client else None


def _safe_next(target: str | None) -> str:
    """Only a path of this site: never an absolute or protocol-relative address (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/queue"


def indicator_rows(indicators: Any) -> list[tuple[str, Any, list[str]]]:
    """(name, value, evidence) for each indicator, whichever shape the assessment stored: name → {value, evidence} or
    name → value."""
    rows = []
    for name, item in sorted(dict(indicators or {}).items()):
        if isinstance(item, dict) and "value" in item:
            rows.append((name, item["value"], [str(e) for e in item.get("evidence") or []]))
        else:
            rows.append((name, item, []))
    return rows


def add_web_routes(app: FastAPI, ctx: Context) -> None:
    templates = _templates()
    app.mount("/static", StaticFiles(packages=[("tiptriage.server", "static")]), name="static")
    auth = ctx.auth

    def principal(request: Request, csrf: str | None = None) -> Principal:
        try:
            who = auth.authenticate(request.cookies.get(SESSION_COOKIE), method=request.method, csrf_token=csrf,
                                    source=_source(request), path=request.url.path)
            current_agency.set(who.user.agency_id)  # in the context the handler's queries run in (see page, tiptriage.store.rls)
            return who
        except AuthError as exc:
            if exc.status == 401:
                raise LoginRequired(exc.detail) from None
            raise Problem(exc.status, exc.code, "Refused", exc.detail) from None

    def render(request: Request, name: str, who: Principal | None, status: int = 200, **values: Any) -> Response:
        csrf = request.cookies.get(CSRF_COOKIE, "")
        body = templates.get_template(name).render(request=request, who=who, csrf=csrf, **values)
        return _with_csp(HTMLResponse(body, status_code=status))

    def page(handler: Callable[..., Awaitable[Response]] | Callable[..., Response]) -> Callable[..., Awaitable[Response]]:
        """Turn refusals into pages: a login redirect, or an error page with its status. A plain (not async) handler runs in
        the thread pool: its database work would otherwise stop the event loop, and every other request with it, while it
        waits. The agency ``principal`` binds there stays in that thread's copy of the request's context, where the
        handler's queries run."""

        @functools.wraps(handler)
        async def run(request: Request, **kwargs: Any) -> Response:
            try:
                if iscoroutinefunction(handler):
                    return await cast(Callable[..., Awaitable[Response]], handler)(request, **kwargs)
                return await run_in_threadpool(cast(Callable[..., Response], handler), request, **kwargs)
            except LoginRequired as exc:
                return RedirectResponse(f"/login?{urlencode({'reason': exc.reason, 'next': request.url.path})}", status_code=303)
            except Problem as exc:
                return html_error(request, exc.status, exc.title, exc.detail)

        return run

    def form_caller(request: Request, form: FormData) -> Principal:
        """The principal of a form post: the session and the form's CSRF field."""
        csrf = form.get("csrf")
        return principal(request, csrf if isinstance(csrf, str) else None)

    def text(form: FormData, name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    # -- login ---------------------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, reason: str | None = None, next: str | None = None) -> Response:
        token = secrets.token_urlsafe(24)
        response = render(request, "login.html", None, banner=auth.policy.banner_text, reason=reason, next=_safe_next(next), login_token=token,
                          error=None)
        response.set_cookie(LOGIN_COOKIE, token, max_age=900, path="/", secure=True, httponly=True, samesite="strict")
        return response

    @app.post("/login", include_in_schema=False)
    async def login_submit(request: Request) -> Response:
        form = await request.form()
        expected = request.cookies.get(LOGIN_COOKIE)
        given = text(form, "login_token")
        target = _safe_next(text(form, "next"))
        error = None
        if not expected or not secrets.compare_digest(expected, given):
            error = "The login form expired. Please try again."
        else:
            try:  # argon2 takes tens of milliseconds of CPU by design: not on the event loop
                result = await run_in_threadpool(auth.login, text(form, "username"), text(form, "password"), text(form, "totp"),
                                                 form.get("banner") == "accepted", _source(request))
            except AuthError as exc:
                error = exc.detail if exc.code == "banner-not-accepted" else "Login refused. Check your username, password and code."
            else:
                done = RedirectResponse(target, status_code=303)
                max_age = int(auth.policy.reauthenticate_after.total_seconds())
                done.set_cookie(SESSION_COOKIE, result.token, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict")
                done.set_cookie(CSRF_COOKIE, result.csrf_token, max_age=max_age, path="/", secure=True, httponly=False, samesite="strict")
                done.delete_cookie(LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
                return done
        token = secrets.token_urlsafe(24)
        response = render(request, "login.html", None, 401, banner=auth.policy.banner_text, reason=None, next=target, login_token=token,
                          error=error)
        response.set_cookie(LOGIN_COOKIE, token, max_age=900, path="/", secure=True, httponly=True, samesite="strict")
        return response

    @app.post("/logout", include_in_schema=False)
    @page
    async def logout(request: Request) -> Response:
        form = await request.form()

        def done() -> Response:
            auth.logout(form_caller(request, form))
            response = RedirectResponse("/login?reason=" + quote("You have logged out."), status_code=303)
            for name, http_only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
                response.delete_cookie(name, path="/", secure=True, httponly=http_only, samesite="strict")
            return response

        return await run_in_threadpool(done)

    # -- the queue -----------------------------------------------------------------------------------------

    def _require_queue(who: Principal) -> None:
        if not allowed(who.user.role, Action.READ_QUEUE):
            ctx.audit(who, "read", "denied", object_type="queue", object_id=who.user.agency_id, reason="role may not read case data")
            raise Problem(403, "forbidden", "Forbidden", "This role has no access to case data.")

    @app.get("/queue", include_in_schema=False)
    @page
    def queue_page(request: Request) -> Response:
        who = principal(request)
        _require_queue(who)
        q = request.query_params
        tier = int(q["tier"]) if q.get("tier", "") in ("1", "2", "3", "4") else None
        state = q.get("state") or "open"
        if state not in ("open", "all", *TRANSITIONS):
            state = "open"
        search = (q.get("q") or "")[:100]
        mine = q.get("mine") == "1"
        page_no = max(int(q["page"]) if q.get("page", "").isdigit() else 1, 1)
        rows, total = ctx.views.work_list(who.user.agency_id, tier=tier, state=None if state == "all" else state,
                                          assignee=who.user.username if mine else None, search=search or None,
                                          limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE)
        opened = ctx.views.opened_by(who.user.username, [r["report_id"] for r in rows])
        now = auth.now()
        for r in rows:
            r["unread"] = r["report_id"] not in opened
            r["sla"] = aging(r["due_at"], now) if r["state"] not in (None, "closed") else None
        lanes: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            lanes.setdefault(int(r["tier"]), []).append(r)
        ctx.audit(who, "read", object_type="queue", object_id=who.user.agency_id, rows=len(rows), offset=(page_no - 1) * PAGE_SIZE,
                  filters={"tier": tier, "state": state, "search": bool(search), "mine": mine})
        filters = {k: v for k, v in {"tier": tier, "state": state, "q": search, "mine": "1" if mine else None}.items() if v}
        pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
        return render(request, "queue.html", who, lanes=lanes, total=total, page=page_no, pages=pages, tier=tier, state=state, search=search,
                      mine=mine, states=["open", "all", *TRANSITIONS], query=lambda **kw: urlencode({**filters, **kw}))

    @app.get("/oncall", include_in_schema=False)
    @page
    def oncall(request: Request) -> Response:
        who = principal(request)
        _require_queue(who)
        rows, total = ctx.views.work_list(who.user.agency_id, tier=1, state="open", limit=50)
        now = auth.now()
        for r in rows:
            r["sla"] = aging(r["due_at"], now) if r["state"] not in (None, "closed") else None
        ctx.audit(who, "read", object_type="queue", object_id=who.user.agency_id, rows=len(rows), view="oncall")
        return render(request, "oncall.html", who, rows=rows, total=total)

    # -- a report ------------------------------------------------------------------------------------------

    def detail_values(who: Principal, report_id: str) -> dict[str, Any]:
        via = ctx.visible_report(who, report_id, "report")
        report = ctx.store.get_report(report_id)
        assessment = ctx.store.assessments.get(report_id)
        if report is None or assessment is None:
            ctx.audit(who, "read", "failed", object_type="report", object_id=report_id, reason="not stored or not assessed")
            raise Problem(404, "not-found", "Not found", "The report has not been assessed yet.")
        data = pipeline.build_package(ctx.store, report_id, who.user.username, auth.now())
        data = type(data).model_validate_json(ctx.redact(who, data.model_dump_json()))
        changes = pipeline.tier_changes(ctx.store, assessment)
        assessment = json.loads(ctx.redact(who, json.dumps(assessment, default=str)))
        subject = None
        if data.subject is not None:
            subject = ctx.visible_subject(who, data.subject.id)
            subject["graph"] = Markup(svg.subject_graph(subject["report_accounts"], subject["links"], focus=report_id))
        try:
            case = cases.find(ctx.store, report_id, scope=who.user.agency_id)
        except cases.CaseNotFound:
            case = None
        if case is not None:
            case["sla"] = aging(case["due_at"], auth.now()) if case["state"] != "closed" else "closed"
            case["moves"] = [m for m in TRANSITIONS[case["state"]] if m not in ("closed", "assigned")]
        team = sorted(u.username for u in auth.users.in_agency(who.user.agency_id)
                      if not u.disabled and allowed(u.role, Action.WORK_CASE)) if case else []
        ctx.audit(who, "read", object_type="report", object_id=report_id, via=via, view="detail")
        return {"report": report, "a": assessment, "pkg": data, "via": via, "subject": subject, "case": case, "team": team,
                "outcomes": OUTCOMES, "needs_reason": OUTCOMES_NEEDING_REASON, "changes": changes,
                "indicators": indicator_rows(assessment["indicators"])}

    @app.get("/reports/{report_id}", include_in_schema=False)
    @page
    def report_page(request: Request, report_id: str) -> Response:
        who = principal(request)
        return render(request, "report.html", who, **detail_values(who, report_id), error=None, done=request.query_params.get("done"))

    async def case_change(request: Request, ref: str, do: Callable[[Principal, FormData, dict[str, Any]], dict[str, Any]]) -> Response:
        form = await request.form()
        return await run_in_threadpool(change_case, request, form, ref, do)

    def change_case(request: Request, form: FormData, ref: str, do: Callable[[Principal, FormData, dict[str, Any]], dict[str, Any]]) -> Response:
        who = form_caller(request, form)
        found = ctx.own_case(who, ref)
        try:
            moved = do(who, form, found)
        except cases.TransitionError as exc:
            ctx.audit(who, "change", "failed", object_type="case", object_id=str(found["id"]), reason=str(exc))
            return render(request, "report.html", who, 409, **detail_values(who, str(found["report_id"])), error=str(exc), done=None)
        except CaseConflict as exc:
            return render(request, "report.html", who, 409, **detail_values(who, str(found["report_id"])), error=str(exc), done=None)
        return RedirectResponse(f"/reports/{quote(str(moved['report_id']))}?done={quote(str(moved['state']))}", status_code=303)

    @app.post("/cases/{ref}/assign", include_in_schema=False)
    @page
    async def assign(request: Request, ref: str) -> Response:
        def do(who: Principal, form: FormData, found: dict[str, Any]) -> dict[str, Any]:
            assignee = text(form, "assignee")
            if not (assignee == who.user.username and allowed(who.user.role, Action.WORK_CASE)):
                ctx.require(who, Action.ASSIGN_CASE, "case", str(found["id"]))
            if assignee not in {u.username for u in auth.users.in_agency(who.user.agency_id) if not u.disabled}:
                raise cases.TransitionError("choose an active account of the agency")
            return cases.assign(ctx.store, str(found["id"]), assignee, ctx.actor(who), scope=who.user.agency_id)

        return await case_change(request, ref, do)

    @app.post("/cases/{ref}/transition", include_in_schema=False)
    @page
    async def transition(request: Request, ref: str) -> Response:
        def do(who: Principal, form: FormData, found: dict[str, Any]) -> dict[str, Any]:
            ctx.require(who, Action.WORK_CASE, "case", str(found["id"]))
            return cases.move(ctx.store, str(found["id"]), text(form, "state"), ctx.actor(who), text(form, "note")[:2000] or None,
                              scope=who.user.agency_id)

        return await case_change(request, ref, do)

    @app.post("/cases/{ref}/outcome", include_in_schema=False)
    @page
    async def outcome(request: Request, ref: str) -> Response:
        def do(who: Principal, form: FormData, found: dict[str, Any]) -> dict[str, Any]:
            ctx.require(who, Action.WORK_CASE, "case", str(found["id"]))
            # the subject's other reports may be another agency's: they are assessed again through the owner store
            return cases.close(ctx.store, str(found["id"]), text(form, "outcome"), text(form, "reason")[:2000] or None, ctx.actor(who),
                               scope=who.user.agency_id, reassess_in=ctx.intake)

        return await case_change(request, ref, do)

    # -- supervision, audit, administration -----------------------------------------------------------------

    @app.get("/dashboard", include_in_schema=False)
    @page
    def dashboard(request: Request) -> Response:
        who = principal(request)
        ctx.require(who, Action.READ_DASHBOARD, "dashboard", who.user.agency_id, verb="read")
        f = ctx.views.dashboard(who.user.agency_id, auth.now(), capacity=capacity_per_investigator())
        charts = {
            "volume": Markup(svg.stacked_bars("Reports by tier per day, last 30 days", f["days"], f["volume_by_tier"])),
            "aging": Markup(svg.hbars("Open cases by age", f["backlog_aging"])),
            "overdue": Markup(svg.hbars("Open cases past their SLA, by tier", [(f"tier {t}", n) for t, n in f["overdue_by_tier"].items()],
                                        colour="#b3261e")),
            "load": Markup(svg.hbars("Open cases per investigator", [*f["load"], ("unassigned", f["unassigned"])])),
        }
        ctx.audit(who, "read", object_type="dashboard", object_id=who.user.agency_id)
        return render(request, "dashboard.html", who, f=f, charts=charts)

    @app.get("/audit", include_in_schema=False)
    @page
    def audit_view(request: Request) -> Response:
        who = principal(request)
        ctx.require(who, Action.READ_AUDIT, "audit", who.user.agency_id, verb="read")
        page_no = max(int(request.query_params["page"]) if request.query_params.get("page", "").isdigit() else 1, 1)
        rows, total = ctx.views.audit_page(who.user.agency_id, 50, (page_no - 1) * 50)
        check = ctx.store.audit.verify() if request.query_params.get("verify") == "1" else None
        ctx.audit(who, "read", object_type="audit", object_id=who.user.agency_id, rows=len(rows), verified=check.ok if check else None)
        return render(request, "audit.html", who, rows=rows, total=total, page=page_no, pages=max((total + 49) // 50, 1), check=check)

    @app.get("/admin", include_in_schema=False)
    @page
    def admin(request: Request) -> Response:
        who = principal(request)
        return render(request, "admin.html", who, **admin_values(who), result=None, error=None, done=None)

    def admin_values(who: Principal) -> dict[str, Any]:
        banks = None
        if allowed(who.user.role, Action.ADMIN_HASHSETS):
            banks = bank_overview(ctx.store)
            ctx.audit(who, "read", object_type="hashsets", object_id=None)
        elif not allowed(who.user.role, Action.ADMIN_POLICY):
            ctx.require(who, Action.ADMIN_HASHSETS, "admin", None, verb="read")
        policy = None
        if allowed(who.user.role, Action.ADMIN_POLICY):
            repo = PolicyRepository(ctx.store.engine)
            policy = {"current": repo.current_of(who.user.agency_id), "history": repo.history(who.user.agency_id)[:20]}
            ctx.audit(who, "read", object_type="agency_policy", object_id=who.user.agency_id)
        return {"banks": banks, "policy": policy}

    @app.post("/admin/policy", include_in_schema=False)
    @page
    async def admin_policy(request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        text_in = (await upload.read()).decode("utf-8", errors="replace") if isinstance(upload, UploadFile) and upload.filename else text(form, "text")
        return await run_in_threadpool(set_policy, request, form, text_in)

    def set_policy(request: Request, form: FormData, text_in: str) -> Response:
        who = form_caller(request, form)
        agency = who.user.agency_id
        ctx.require(who, Action.ADMIN_POLICY, "agency_policy", agency)
        reset = form.get("reset") == "1"
        if not reset and not text_in:
            return render(request, "admin.html", who, 400, **admin_values(who), result=None, error="Paste or choose a policy file.")
        try:
            change = pipeline.set_agency_policy(ctx.intake, agency, None if reset else text_in, who.user.username, note=text(form, "note") or None)
        except PolicyError as exc:
            ctx.audit(who, "change", "failed", object_type="agency_policy", object_id=agency, errors=len(exc.errors),
                      first_error=exc.errors[0][:500])
            return render(request, "admin.html", who, 400, **admin_values(who), result=None,
                          error="The policy is refused, nothing changed: " + "; ".join(exc.errors[:10]))
        ctx.audit(who, "change", object_type="agency_policy", object_id=agency, change=change.action, version=change.version,
                  previous=change.previous_version, reassessed=change.reassessed.assessed if change.reassessed else 0)
        return render(request, "admin.html", who, **admin_values(who), result=None, error=None,
                      done=f"Policy {change.action}: now {change.policy_name} {change.version or '(the default)'}; "
                           f"{change.reassessed.assessed if change.reassessed else 0} reports re-assessed.")

    @app.post("/admin/hashsets", include_in_schema=False)
    @page
    async def admin_hashset(request: Request) -> Response:
        return await run_in_threadpool(import_hashset, request, await request.form())

    def import_hashset(request: Request, form: FormData) -> Response:
        who = form_caller(request, form)
        name = text(form, "name")
        ctx.require(who, Action.ADMIN_HASHSETS, "hashset", name or None)
        upload = form.get("file")
        fmt = text(form, "format") or "auto"
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or len(name) > 128:
            return render(request, "admin.html", who, 400, **admin_values(who), result=None,
                          error="A bank name is letters, digits, '.', '_' or '-'.")
        if not isinstance(upload, UploadFile) or fmt not in ("auto", "vics", "ncmec", "csv"):
            return render(request, "admin.html", who, 400, **admin_values(who), result=None, error="Choose a hash-set file and its format.")
        try:
            res = import_hashset_upload(ctx, who, name, upload, fmt)
        except Problem as exc:
            if exc.status != 400:
                raise
            return render(request, "admin.html", who, 400, **admin_values(who), result=None, error=exc.detail)
        return render(request, "admin.html", who, **admin_values(who), result=res, error=None)
