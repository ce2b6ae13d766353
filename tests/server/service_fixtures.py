"""A seeded service for the API, page and browser tests (the fixture is in conftest.py): synthetic reports ingested and triaged, their cases split between
two agencies (A and B), and one account of every role in each agency."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyotp
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tiptriage import pipeline, synth
from tiptriage.server.auth import Authenticator
from tiptriage.store import Store
from tiptriage.store.users import Role

PASSWORD = "violet-harbour-lantern-91"
AGENCIES = ("agency-a", "agency-b")


@dataclass
class Service:
    store: Store
    app: FastAPI
    auth: Authenticator
    reports: dict[str, list[str]]  # agency → the report ids routed to it (each with an open case there)
    secrets: dict[str, str] = field(default_factory=dict)
    last_step: dict[str, int] = field(default_factory=dict)

    def user(self, role: Role, agency: str = "agency-a") -> str:
        return f"{role.value}-{agency[-1]}"

    def code(self, username: str) -> str:
        """A TOTP code not used before by this user: a code is good once, so a second login in the same step uses the next."""
        totp = pyotp.TOTP(self.secrets[username])
        step = max(int(datetime.now(UTC).timestamp()) // 30, self.last_step.get(username, -1) + 1)
        self.last_step[username] = step
        return totp.at(step * 30)

    def client(self, role: Role | None = None, agency: str = "agency-a") -> tuple[TestClient, str]:
        """A client (logged in as that role's account of the agency, with its CSRF token) or anonymous."""
        c = TestClient(self.app, base_url="https://testserver", follow_redirects=False)
        if role is None:
            return c, ""
        name = self.user(role, agency)
        r = c.post("/api/login", json={"username": name, "password": PASSWORD, "totp": self.code(name), "banner_accepted": True})
        assert r.status_code == 200, r.text
        return c, str(r.json()["csrf_token"])


def seed(store: Store, folder: Path, n: int = 24) -> tuple[dict[str, list[str]], dict[str, str]]:
    data = synth.generate(n, seed=11)
    synth.write(data, folder, "xml")
    pipeline.ingest(store, [folder / "submissions"])
    pipeline.triage(store)
    routed = sorted(r for r in store.report_ids() if store.work.route_of(r) is not None)
    assert len(routed) >= 8, "the synthetic set should route most reports"
    split: dict[str, list[str]] = {a: [] for a in AGENCIES}
    for i, rid in enumerate(routed):
        agency = AGENCIES[i % 2]
        store.work.route_action(rid, "transfer", "test-setup", "test split", agency, None)
        split[agency].append(rid)
    auth = Authenticator(store)
    secrets = {}
    for agency in AGENCIES:
        for role in Role:
            name = f"{role.value}-{agency[-1]}"
            secrets[name] = auth.enroll(name, agency, role, PASSWORD, by="test-setup").totp_secret
    return split, secrets
