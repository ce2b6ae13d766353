"""Reads at once from many threads, as a server's thread pool serves them: each is answered, each writes its own audit
entry (several may share a transaction) in one chain that still verifies; and every answer, of the API, of a page or a
refusal, carries the security headers."""

from __future__ import annotations

import threading

from service_fixtures import Service

from tiptriage.store.users import Role

HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY",
           "strict-transport-security": "max-age=31536000"}


def test_concurrent_reads_are_each_answered_and_audited_in_one_chain(service: Service) -> None:
    client, _ = service.client(Role.ANALYST)
    mine = service.reports["agency-a"]
    before = service.store.audit.head().seq
    start = threading.Barrier(8)
    statuses: list[int] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        start.wait()
        for i in range(5):
            r = client.get(f"/api/reports/{mine[(t + i) % len(mine)]}") if i % 2 else client.get(f"/api/queue?limit=5&offset={t}")
            with lock:
                statuses.append(r.status_code)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert statuses == [200] * 40
    entries = [e for e in service.store.audit.iter_entries(before + 1) if e.user == service.user(Role.ANALYST)]
    assert len(entries) == 40 and [e.seq for e in entries] == list(range(before + 1, before + 41))
    assert sum(e.object_type == "report" and e.outcome == "ok" and e.detail == {"via": "routed"} for e in entries) == 16
    assert sum(e.object_type == "queue" for e in entries) == 24
    result = service.store.audit.verify()
    assert result.ok, result.problem


def test_every_answer_carries_the_security_headers(service: Service) -> None:
    anonymous, _ = service.client()
    client, _ = service.client(Role.ANALYST)
    theirs = service.reports["agency-b"][0]
    answers = {"queue": client.get("/api/queue"), "refused": anonymous.get("/api/queue"),
               "another agency's report": client.get(f"/api/reports/{theirs}"), "page": client.get("/queue")}
    assert [a.status_code for a in answers.values()] == [200, 401, 404, 200]
    for name, answer in answers.items():
        assert {k: answer.headers.get(k) for k in HEADERS} == HEADERS, name
    assert answers["queue"].headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert "script-src 'self'" in answers["page"].headers["content-security-policy"]  # a page keeps its own policy
