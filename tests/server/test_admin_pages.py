"""The administration page: an agency admin puts a policy into service for the agency (validated, re-assessed, audited),
a bad one is refused with its errors; a system admin sees the hash sets; other roles are refused."""

from __future__ import annotations

from importlib import resources

from service_fixtures import PASSWORD, Service

from tiptriage.store.policies import PolicyRepository
from tiptriage.store.users import Role


def _page_csrf(client: object) -> str:
    return str(client.cookies.get("__Host-tiptriage_csrf"))  # type: ignore[attr-defined]


def test_an_agency_admin_sets_and_resets_the_agencys_policy_from_the_page(service: Service) -> None:
    # policies are set for agencies tiptriage knows (data/agencies.json); the clearinghouse's review queue is one
    name = service.user(Role.AGENCY_ADMIN, "review")
    service.secrets[name] = service.auth.enroll(name, "review", Role.AGENCY_ADMIN, PASSWORD, by="test-setup").totp_secret
    admin, csrf = service.client(Role.AGENCY_ADMIN, "review")
    page = admin.get("/admin")
    assert page.status_code == 200 and "In service: the default policy" in page.text
    default = resources.files("tiptriage.data").joinpath("policy_default.yaml").read_text("utf-8")
    mine = default.replace("name: icac-default", "name: agency-a-policy", 1)
    assert mine != default
    r = admin.post("/admin/policy", data={"csrf": csrf, "text": mine, "note": "our own"})
    assert r.status_code == 200, r.text[:500]
    assert "re-assessed" in r.text and "agency-a-policy" in r.text
    current = PolicyRepository(service.store.engine).current_of("review")
    assert current is not None and current.policy_name == "agency-a-policy" and current.set_by == name
    assert PolicyRepository(service.store.engine).current_of("agency-a") is None
    bad = admin.post("/admin/policy", data={"csrf": csrf, "text": "rules: [not a rule]"})
    assert bad.status_code == 400 and "refused, nothing changed" in bad.text
    still = PolicyRepository(service.store.engine).current_of("review")
    assert still is not None and still.version == current.version
    forged = admin.post("/admin/policy", data={"csrf": "forged", "reset": "1"})
    assert forged.status_code == 403
    back = admin.post("/admin/policy", data={"csrf": csrf, "reset": "1"})
    assert back.status_code == 200 and "In service: the default policy" in back.text
    changes = [e for e in service.store.audit.iter_entries() if e.object_type == "agency_policy" and e.action == "change"]
    assert [e.outcome for e in changes] == ["ok", "failed", "ok"]


def test_the_admin_page_shows_each_role_only_its_part(service: Service) -> None:
    sysadmin, _ = service.client(Role.SYSTEM_ADMIN)
    page = sysadmin.get("/admin")
    assert page.status_code == 200 and "Known-hash sets" in page.text and "Priority policy" not in page.text
    for role in (Role.ANALYST, Role.INVESTIGATOR, Role.SUPERVISOR, Role.AUDITOR):
        client, _ = service.client(role)
        assert client.get("/admin").status_code == 403, role
        csrf = _page_csrf(client)
        assert client.post("/admin/policy", data={"csrf": csrf, "reset": "1"}).status_code == 403, role
