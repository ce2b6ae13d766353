"""Errors as ``application/problem+json`` (RFC 9457): ``type`` (a tag URI naming the problem, or about:blank), ``title``,
``status``, ``detail``, ``instance`` (the path)."""

from typing import Any, Final

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tiptriage.server.auth import CSRF_COOKIE, SESSION_COOKIE

PROBLEM_TYPE_BASE: Final = "tag:tiptriage,2025:problems/"  # non-resolvable problem type URIs (RFC 9457 §3.1.1, RFC 4151)
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"


class ProblemDetails(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class Problem(Exception):
    def __init__(self, status: int, code: str | None, title: str, detail: str | None = None, *, clear_session: bool = False) -> None:
        super().__init__(detail or title)
        self.status, self.code, self.title, self.detail, self.clear_session = status, code, title, detail, clear_session


TITLES: Final = {400: "Bad request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
                  415: "Unsupported media type", 422: "Invalid request", 500: "Internal error"}


def clear_cookies(response: Response) -> None:
    for name, http_only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=True, httponly=http_only, samesite="strict")


def problem_response(request: Request, status: int, code: str | None, title: str, detail: str | None = None, *,
                     errors: list[dict[str, Any]] | None = None, clear_session: bool = False) -> JSONResponse:
    body = ProblemDetails(type=f"{PROBLEM_TYPE_BASE}{code}" if code else "about:blank", title=title, status=status, detail=detail,
                          instance=request.url.path, errors=errors)
    response = JSONResponse(body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_MEDIA_TYPE)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Cookie realm="tiptriage"'
    if clear_session:
        clear_cookies(response)
    return response


_PROBLEM_CONTENT: Final = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ProblemDetails, "description": TITLES.get(s, "Error"), "content": _PROBLEM_CONTENT} for s in statuses}


