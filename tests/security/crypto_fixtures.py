"""A store holding one report full of distinctive personal data, plus a little of everything else that is sealed or hashed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tiptriage import pipeline, synth
from tiptriage.intake.cybertip_xml_writer import write_submission
from tiptriage.model import Account, Address, Email, IncidentType, IpCaptureEvent, Person, Phone, Report
from tiptriage.store import Store
from tiptriage.store.users import Role, UserRepository
from tiptriage.store.work import case_id

T0 = datetime(2026, 10, 1, tzinfo=UTC)
RID = "ZQ-REPORT-1"
ACCOUNT = "servicez:zq-775533"  # the account key of the reported person (service, then the ESP's id)
OTHER_ACCOUNT = "servicey:zq-alt-4411"  # the same person elsewhere: the same e-mail address links them
TOTP = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
ESCALATION = "Subject said he would meet the child at the Riverside bus depot on Friday"

# Strings of the report that must never be stored in clear, in the forms they are stored in when not encrypted.
SECRETS = [
    "Quackenbush", "zebulon.quackenbush", "Zebulon The Great", "zq_handle_9931", "zq-775533", "ZQ-775533",
    "555-0199", "5550199", "203.0.113.77", "zq-alt-4411", "Juniper Lane", "Riverside bus depot", TOTP, "Warrant return names",
    "closed after interview", "Quackenbush declined",
]


def personal_report(rid: str = RID, service: str = "ServiceZ", esp_id: str = "zq-775533") -> Report:
    person = Person(first_name="Zebulon", last_name="Quackenbush", emails=[Email(address="zebulon.quackenbush@example.org")],
                    phones=[Phone(number="512-555-0199", country_calling_code="1")],
                    addresses=[Address(address="1234 Juniper Lane", city="Austin", state="TX", country="US")])
    return Report(
        id=rid, received_at=T0, incident_type=IncidentType.ONLINE_ENTICEMENT, incident_datetime=T0,
        escalate_to_high_priority=ESCALATION,
        reported_people=[Account(esp_service=service, esp_identifier=esp_id, screen_name="zq_handle_9931",
                                 display_names=["Zebulon The Great"], person=person,
                                 ip_events=[IpCaptureEvent(ip_address="203.0.113.77", date_time=T0)])],
    )


@dataclass
class Filled:
    store: Store
    report_ids: list[str]
    submissions: list[str]  # digests


def fill(store: Store, tmp: Path, n_synthetic: int = 40) -> Filled:
    """Ingest the personal report among synthetic ones, triage (places, hashes, links, routes), and add a user, an agency
    record, an analyst's decision and a closed case: every kind of protected value."""
    data = synth.generate(n_synthetic, seed=31)
    folder = tmp / "subs"
    for r in data.reports:
        write_submission(r, folder)
    write_submission(personal_report(), folder)
    write_submission(personal_report("ZQ-REPORT-2", "ServiceY", "zq-alt-4411"), folder)
    assert pipeline.ingest(store, [folder]).accepted == n_synthetic + 2
    records = tmp / "records.csv"
    records.write_text("record_id,agency,email,phone,username,service,esp_identifier,country,access_to_children,prior_contact_offence\n"
                       "REC-ZQ,agency-x,zebulon.quackenbush@example.org,,,,,US,true,false\n")
    pipeline.import_records(store, records)
    pipeline.triage(store)
    store.links.decide("confirm", ACCOUNT, OTHER_ACCOUNT, "Warrant return names both accounts", "analyst-1")
    pipeline.link(store)
    UserRepository(store.engine).create("zq-user", "agency-x", Role.ANALYST, "argon2-hash-placeholder", TOTP, T0)
    UserRepository(store.engine).create("other-user", "agency-x", Role.ANALYST, "argon2-hash-placeholder", "ABCDEFGHABCDEFGHABCDEFGHABCDEFGH", T0)
    cid = case_id(RID)
    case = store.work.case(cid)
    assert case is not None, "the personal report was routed and has a case"
    store.work.update_case(cid, case["state"], {"state": "closed", "outcome": "unfounded", "outcome_reason": "closed after interview"},
                           {"from_state": case["state"], "to_state": "closed", "by": "inv-1", "note": "closed after interview"})
    store.work.route_action(RID, "accept", "inv-1", "Quackenbush declined to comment", None, None)
    digests = sorted(str(d) for d in _column(store, "submissions", "digest"))
    return Filled(store, sorted([RID, "ZQ-REPORT-2", *(r.id for r in data.reports)]), digests)


def _column(store: Store, table: str, column: str) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.text(f"SELECT {column} FROM {table}")).scalars())


def raw_values(engine: sa.Engine) -> Iterator[tuple[str, str, Any]]:
    """(table, column, value) of every non-null value in every table, read with plain SQL."""
    names = sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        for table in names:
            result = conn.execute(sa.text(f'SELECT * FROM "{table}"'))
            cols = list(result.keys())
            for row in result:
                for c, v in zip(cols, row, strict=True):
                    if v is not None:
                        yield table, c, v
