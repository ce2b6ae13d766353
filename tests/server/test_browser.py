"""The web pages in real headless Chromium (Debian's chromium driven by Playwright) against the real service on loopback:
login with the banner and TOTP, the queue, a report's detail, assigning, moving and closing a case, the dashboard (its
screenshot kept in test-artifacts/), the on-call view on a phone-sized screen, and CSRF on the page forms."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from service_fixtures import PASSWORD, Service

from tiptriage.store.users import Role

ARTIFACTS = Path(os.environ.get("TIPTRIAGE_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
CHROMIUM = os.environ.get("TIPTRIAGE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (Debian: apt-get install chromium; .ci/run installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(service: Service) -> Iterator[tuple[Service, str]]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield service, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _login(page: object, base: str, service: Service, username: str, *, accept_banner: bool = True) -> None:
    page.goto(f"{base}/queue")  # type: ignore[attr-defined]
    assert "/login" in page.url  # type: ignore[attr-defined]
    if accept_banner:
        page.check("input[name=banner]")  # type: ignore[attr-defined]
    page.fill("#username", username)  # type: ignore[attr-defined]
    page.fill("#password", PASSWORD)  # type: ignore[attr-defined]
    page.fill("#totp", service.code(username))  # type: ignore[attr-defined]
    if not accept_banner:
        page.click("button.primary")  # type: ignore[attr-defined]
        return
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.click("button.primary")  # type: ignore[attr-defined]


def test_an_investigator_and_a_supervisor_work_a_case_in_the_browser(live: tuple[Service, str], browser: object) -> None:
    service, base = live
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    sup_page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    supervisor = service.user(Role.SUPERVISOR)
    # the banner must be accepted: the browser itself refuses to submit without it (the field is required)
    _login(sup_page, base, service, supervisor, accept_banner=False)
    assert "/login" in sup_page.url
    sup_page.check("input[name=banner]")
    with sup_page.expect_navigation():
        sup_page.click("button.primary")
    assert sup_page.url.endswith("/queue"), sup_page.url

    # the queue: lanes by tier, only this agency's reports, each unread
    lanes = sup_page.locator("section.lane h2").all_inner_texts()
    assert lanes and all(text.startswith("Tier ") for text in lanes)
    shown = sup_page.locator("tr.item").evaluate_all("rows => rows.map(r => r.dataset.report)")
    assert shown and set(shown) <= set(service.reports["agency-a"]) and not set(shown) & set(service.reports["agency-b"])
    assert sup_page.locator("tr.item.unread").count() == len(shown)
    tiers = [int(t.split()[1]) for t in lanes]
    assert tiers == sorted(tiers)

    # keyboard: j moves to the first row, Enter opens it
    sup_page.keyboard.press("j")
    with sup_page.expect_navigation():
        sup_page.keyboard.press("Enter")
    first = shown[0]
    assert sup_page.url.endswith(f"/reports/{first}")
    assert sup_page.locator("h2#why").is_visible() and sup_page.locator("ol.rules li").count() >= 1
    assert sup_page.locator("h3#change-h").is_visible()  # what would change the tier
    assert "is set by" in sup_page.inner_text("section[aria-labelledby=why]")
    assert sup_page.locator("img").count() == 0  # never any imagery

    # assign to the investigator
    investigator = service.user(Role.INVESTIGATOR)
    sup_page.select_option("#assignee", investigator)
    with sup_page.expect_navigation():
        sup_page.click("form[action$='/assign'] button")
    assert "assigned to " + investigator in sup_page.inner_text("section[aria-labelledby=case-h]")

    # back in the queue the opened report is no longer unread
    sup_page.goto(f"{base}/queue")
    assert sup_page.locator(f"tr.item[data-report='{first}']").get_attribute("class") == "item"

    # the investigator moves it on and records the outcome (confirming the dialog)
    inv_page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    _login(inv_page, base, service, investigator)
    inv_page.goto(f"{base}/reports/{first}")
    with inv_page.expect_navigation():
        inv_page.click("button:has-text('Move to in progress')")
    assert "Saved: the case is now in progress" in inv_page.inner_text("main")
    inv_page.once("dialog", lambda d: d.accept())
    inv_page.select_option("#outcome", "no_action")
    with inv_page.expect_navigation():
        inv_page.click("form[action$='/outcome'] button")  # no reason: refused with the reason named
    assert "needs a reason" in inv_page.inner_text("[role=alert]")
    inv_page.once("dialog", lambda d: d.accept())
    inv_page.select_option("#outcome", "child_safeguarded")
    with inv_page.expect_navigation():
        inv_page.click("form[action$='/outcome'] button")
    assert "Closed: child safeguarded" in inv_page.inner_text("section[aria-labelledby=case-h]")
    case = service.store.work.case(first)
    assert case is not None and case["state"] == "closed" and case["outcome"] == "child_safeguarded"

    # the supervisor's dashboard, kept as a test artefact
    sup_page.goto(f"{base}/dashboard")
    assert sup_page.locator("svg.chart").count() == 4
    assert _keep(sup_page, "dashboard.png").stat().st_size > 10_000

    # the changes are on record, with the page as the source
    changes = [e for e in service.store.audit.iter_entries() if e.action == "change" and e.outcome == "ok" and e.object_type == "case"]
    assert [e.detail["transition"] for e in changes] == ["new->assigned", "assigned->in_progress", "in_progress->closed"]
    assert {e.source_address for e in changes} == {"127.0.0.1"}


def _keep(page: object, name: str) -> Path:
    """A full-page screenshot kept as ``test-artifacts/NAME``, written whole under a name of its own first: the SQLite
    and PostgreSQL runs of a test may run at once (pytest-xdist) and keep the same artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    part = ARTIFACTS / f".{name}.{os.getpid()}"
    page.screenshot(path=str(part), full_page=True, type="png")  # type: ignore[attr-defined]
    os.replace(part, ARTIFACTS / name)
    return ARTIFACTS / name


def test_the_on_call_view_fits_a_phone(live: tuple[Service, str], browser: object) -> None:
    service, base = live
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)  # type: ignore[attr-defined]
    _login(page, base, service, service.user(Role.INVESTIGATOR))
    page.goto(f"{base}/oncall")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    tier1 = [r for r in service.reports["agency-a"] if (a := service.store.assessments.get(r)) and a["tier"] == 1]
    assert page.locator("li.card").count() == len(tier1)
    _keep(page, "oncall-phone.png")


def test_a_page_form_without_the_csrf_token_changes_nothing(live: tuple[Service, str], browser: object) -> None:
    service, base = live
    page = browser.new_page()  # type: ignore[attr-defined]
    _login(page, base, service, service.user(Role.SUPERVISOR))
    rid = service.reports["agency-a"][0]
    page.goto(f"{base}/reports/{rid}")
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'forged')")
    with page.expect_navigation():
        page.click("form[action$='/assign'] button")
    assert "403" in page.inner_text("h1")
    case = service.store.work.case(rid)
    assert case is not None and case["state"] == "new" and case["assignee"] is None
