"""The agency's queue, paged and counted from its access rows (``report_agency`` and its copied sort keys), against the order
worked out here from the assessments and reports themselves: the API's queue, the work list unfiltered, by tier and "open",
and the slower general path for the other filters, all most urgent first (tier, score descending, received, report id)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service_fixtures import Service

from tiptriage.store.users import ReportAccessRepository, Role
from tiptriage.store.views import ServiceViews
from tiptriage.work import cases

AGENCY = "agency-a"


def _expected(service: Service, report_ids: list[str]) -> list[tuple[str, int]]:
    """(report id, tier) of every assessed report of the list, most urgent first, from the stored assessment and report."""
    keyed: list[tuple[int, int, datetime, str]] = []
    for rid in report_ids:
        a = service.store.assessments.get(rid)
        report = service.store.get_report(rid)
        assert a is not None and report is not None
        received = report.received_at if report.received_at.tzinfo else report.received_at.replace(tzinfo=UTC)
        keyed.append((int(a["tier"]), -int(a["score"]), received, rid))
    return [(rid, tier) for tier, _, _, rid in sorted(keyed)]


def _pages(fetch: Any, size: int) -> tuple[list[str], set[int]]:
    """Every id over all pages of ``size``, and every total the pages reported."""
    ids: list[str] = []
    totals: set[int] = set()
    offset = 0
    while True:
        rows, total = fetch(size, offset)
        totals.add(total)
        ids += [r["report_id"] for r in rows]
        if not rows:
            return ids, totals
        offset += size


def test_every_queue_path_pages_in_urgency_order_and_counts_what_the_agency_sees(service: Service) -> None:
    expected = _expected(service, service.reports[AGENCY])
    order = [rid for rid, _ in expected]
    access = ReportAccessRepository(service.store.engine)
    views = ServiceViews(service.store.engine)

    ids, totals = _pages(lambda n, o: access.queue(AGENCY, n, o), 3)
    assert ids == order and totals == {len(order)}
    ids, totals = _pages(lambda n, o: views.work_list(AGENCY, limit=n, offset=o), 4)
    assert ids == order and totals == {len(order)}
    for tier in sorted({t for _, t in expected}):
        ids, totals = _pages(lambda n, o, tier=tier: views.work_list(AGENCY, tier=tier, limit=n, offset=o), 2)
        assert ids == [rid for rid, t in expected if t == tier] and totals == {len(ids)}
    assert access.queue("agency-nobody", 10, 0) == ([], 0)
    assert access.queue(AGENCY, 10, len(order)) == ([], len(order))

    # the API answers the same pages
    client, _ = service.client(Role.ANALYST)
    page = client.get(f"/api/queue?limit=2&offset={len(order) - 3}").json()
    assert [i["report_id"] for i in page["items"]] == order[-3:-1] and page["total"] == len(order)
    assert page["next_offset"] == len(order) - 1


def test_a_closed_case_leaves_the_open_work_list_and_its_count(service: Service) -> None:
    expected = _expected(service, service.reports[AGENCY])
    order = [rid for rid, _ in expected]
    views = ServiceViews(service.store.engine)
    closing = order[1]
    tier_of_closed = dict(expected)[closing]
    actor = cases.Actor(service.user(Role.SUPERVISOR), AGENCY, "test")
    cid = str(cases.find(service.store, closing, scope=AGENCY)["id"])
    cases.assign(service.store, cid, service.user(Role.INVESTIGATOR), actor, scope=AGENCY)
    cases.move(service.store, cid, "in_progress", actor, scope=AGENCY)
    cases.close(service.store, cid, "child_safeguarded", None, actor, scope=AGENCY)
    assert service.store.assessments.get(closing) is not None  # closing may re-assess; the order is worked out again below
    order = [rid for rid, _ in _expected(service, service.reports[AGENCY])]
    still_open = [rid for rid in order if rid != closing]

    ids, totals = _pages(lambda n, o: views.work_list(AGENCY, state="open", limit=n, offset=o), 3)
    assert ids == still_open and totals == {len(still_open)}
    ids, totals = _pages(lambda n, o: views.work_list(AGENCY, limit=n, offset=o), 3)
    assert ids == order and totals == {len(order)}  # no state filter: closed cases stay in the list
    in_tier = [rid for rid, t in _expected(service, still_open) if t == tier_of_closed]
    ids, totals = _pages(lambda n, o: views.work_list(AGENCY, tier=tier_of_closed, state="open", limit=n, offset=o), 2)
    assert ids == in_tier and totals == {len(in_tier)}
    # a filter on the case (the general path) agrees on the order
    closed_rows, closed_total = views.work_list(AGENCY, state="closed")
    assert [r["report_id"] for r in closed_rows] == [closing] and closed_total == 1
    rows, total = views.work_list(AGENCY, state="new", limit=100)  # every other case of the agency is still new
    assert [r["report_id"] for r in rows] == still_open and total == len(still_open)


def test_the_work_list_search_finds_a_report_by_a_word_of_its_reasons_only(service: Service) -> None:
    views = ServiceViews(service.store.engine)
    mine = service.reports[AGENCY]
    some = next(rid for rid in mine if (service.store.assessments.get(rid) or {}).get("fired"))
    a = service.store.assessments.get(some)
    assert a is not None
    reason, source = a["fired"][0]["reason"], a["fired"][0]["source"]
    rows, total = views.work_list(AGENCY, search=reason, limit=100)
    assert some in [r["report_id"] for r in rows] and total == len(rows)
    assert all(reason in r["reasons"] for r in rows)  # every hit shows the reason searched for
    # the rule's source is not a reason: a phrase found only there finds nothing
    only_in_source = next(w for w in source.split() if len(w) > 3 and all(w not in r for x in mine
                                                                            for r in (service.store.assessments.get(x) or {}).get("reasons", [])))
    assert views.work_list(AGENCY, search=only_in_source, limit=100) == ([], 0)
