"""CASE/UCO JSON-LD export of a lead package (CASE 1.x / UCO 1.x vocabulary).

What is exported, and as what:

==========================  ===============================================================================
package item                CASE / UCO
==========================  ===============================================================================
the investigation           ``case-investigation:Investigation`` whose ``uco-core:object`` lists every node
the report                  ``case-investigation:ProvenanceRecord`` (exhibit number = report id) holding the
                            report's observables, with a ``uco-core:ExternalReference`` to the report id
receipt and triage          ``case-investigation:InvestigativeAction`` each: receipt of the report (result:
                            the provenance record) and triage by tiptriage (instrument: ``uco-tool:Tool``)
the provider                ``uco-identity:Organization`` (the accounts' issuer)
the subject                 ``uco-identity:Identity`` (the accounts' owner)
an application account      ``uco-observable:ApplicationAccount`` with AccountFacet, DigitalAccountFacet and
                            ApplicationAccountFacet (application = ``uco-observable:Application``)
an e-mail address           ``uco-observable:EmailAddress`` with EmailAddressFacet
a phone number              ``uco-observable:PhoneAccount`` with PhoneAccountFacet and AccountFacet
an IP address               ``uco-observable:IPv4Address`` / ``IPv6Address`` with its address facet
a reported file             ``uco-observable:File`` with a ContentDataFacet holding ``uco-types:Hash`` nodes
account ↔ address / IP      ``uco-core:Relationship``
==========================  ===============================================================================

Hashes: ``uco-types:hashMethod`` is a string from UCO's HashNameVocab (MD5, SHA1, SHA256 here) and
``uco-types:hashValue`` an ``xsd:hexBinary``. PDQ, PhotoDNA and other hashes are not in that vocabulary;
a PDQ value is listed in the file's description and the others are named there without their value.

Identifiers are deterministic: ``kb:<kind>-<UUID>`` where the UUID is name-based (RFC 4122 version 5,
the form UCO's identifier shape asks for) on the kind, the report id and the item's own key, e.g.
``kb:file-<uuid5(kind, report id, file id)>``; exporting the same package twice gives the same graph. Only report fields, identifiers, hashes and category codes are exported: no file names,
no free text from the report, never content.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from tiptriage.model.enums import HashType
from tiptriage.model.report import ReportedFile
from tiptriage.packages.model import PackageData

__all__ = ["CONTEXT", "DEFAULT_KB", "case_id", "to_case_jsonld", "write_case_jsonld"]

DEFAULT_KB: Final = "urn:tiptriage:kb:"
CASE_VERSION: Final = "case-1.5.0"
CONTEXT: Final[dict[str, str]] = {
    "case-investigation": "https://ontology.caseontology.org/case/investigation/",
    "uco-action": "https://ontology.unifiedcyberontology.org/uco/action/",
    "uco-core": "https://ontology.unifiedcyberontology.org/uco/core/",
    "uco-identity": "https://ontology.unifiedcyberontology.org/uco/identity/",
    "uco-observable": "https://ontology.unifiedcyberontology.org/uco/observable/",
    "uco-tool": "https://ontology.unifiedcyberontology.org/uco/tool/",
    "uco-types": "https://ontology.unifiedcyberontology.org/uco/types/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:tiptriage:case-uco")
HASH_METHODS: Final = {HashType.MD5: "MD5", HashType.SHA1: "SHA1", HashType.SHA256: "SHA256"}  # UCO HashNameVocab spellings

Node = dict[str, Any]


def case_id(kind: str, report_id: str, *key: str) -> str:
    """``kb:<kind>-<UUID>``, the UUID name-based (RFC 4122 version 5) on the report id and the item's key.

    The same inputs always give the same identifier; UCO suggests that identifiers end with a UUID.
    """
    return f"kb:{kind}-{uuid.uuid5(ID_NAMESPACE, chr(0x1F).join((kind, report_id, *key)))}"


def _dt(value: datetime) -> dict[str, str]:
    return {"@type": "xsd:dateTime", "@value": value.isoformat()}


def _ref(node_id: str) -> dict[str, str]:
    return {"@id": node_id}


class _Graph:
    def __init__(self, report_id: str) -> None:
        self.report_id = report_id
        self.nodes: dict[str, Node] = {}

    def id(self, kind: str, *key: str) -> str:
        return case_id(kind, self.report_id, *key)

    def add(self, node: Node) -> str:
        node_id = str(node["@id"])
        if node_id not in self.nodes:
            self.nodes[node_id] = node
        return node_id

    def facet(self, kind: str, owner: str, facet_type: str, **props: Any) -> dict[str, str]:
        """A facet node of ``facet_type`` for the object ``owner``; facets need IRIs in UCO 1.x."""
        node: Node = {"@id": self.id(kind, owner, facet_type), "@type": facet_type}
        node.update({k: v for k, v in props.items() if v is not None})
        self.add(node)
        return _ref(node["@id"])

    def relationship(self, source: str, target: str, kind: str, when: datetime | None = None, description: str | None = None) -> str:
        node: Node = {
            "@id": self.id("relationship", source, target, kind, when.isoformat() if when else ""),
            "@type": "uco-core:Relationship",
            "uco-core:source": [_ref(source)],
            "uco-core:target": _ref(target),
            "uco-core:kindOfRelationship": kind,
            "uco-core:isDirectional": True,
        }
        if when is not None:
            node["uco-core:startTime"] = [_dt(when)]
        if description:
            node["uco-core:description"] = [description]
        return self.add(node)


def _organization(g: _Graph, provider: str) -> str:
    return g.add({"@id": g.id("organization", provider), "@type": "uco-identity:Organization", "uco-core:name": provider})


def _application(g: _Graph, provider: str) -> str:
    return g.add({"@id": g.id("application", provider), "@type": "uco-observable:Application", "uco-core:name": provider})


def _email(g: _Graph, address: str) -> str:
    node_id = g.id("email-address", address.casefold())
    facet = g.facet("email-address-facet", node_id, "uco-observable:EmailAddressFacet", **{"uco-observable:addressValue": address})
    return g.add({"@id": node_id, "@type": "uco-observable:EmailAddress", "uco-core:hasFacet": [facet]})


def _phone(g: _Graph, number: str, owner: str | None) -> str:
    node_id = g.id("phone-account", number)
    facets = [
        g.facet("phone-account-facet", node_id, "uco-observable:PhoneAccountFacet", **{"uco-observable:phoneNumber": number}),
        g.facet(
            "account-facet",
            node_id,
            "uco-observable:AccountFacet",
            **{"uco-observable:accountIdentifier": number, "uco-observable:owner": _ref(owner) if owner else None},
        ),
    ]
    return g.add({"@id": node_id, "@type": "uco-observable:PhoneAccount", "uco-core:hasFacet": facets})


def _ip(g: _Graph, address: str) -> str:
    try:
        version = ipaddress.ip_address(address).version
        kind, facet = (f"uco-observable:IPv{version}Address", f"uco-observable:IPv{version}AddressFacet")
    except ValueError:
        kind, facet = "uco-observable:IPAddress", "uco-observable:IPAddressFacet"
    node_id = g.id("ip-address", address)
    ref = g.facet("ip-address-facet", node_id, facet, **{"uco-observable:addressValue": address})
    return g.add({"@id": node_id, "@type": kind, "uco-core:hasFacet": [ref]})


def _app_account(
    g: _Graph, key: str, provider: str, esp_identifier: str | None, screen_name: str | None, display_names: Iterable[str], owner: str | None
) -> str:
    # one node per account on a provider, however many records (subject, reported person) name it
    node_id = g.id("account", provider, esp_identifier or screen_name or key)
    display = next(iter(display_names), None)
    facets = [
        g.facet(
            "account-facet",
            node_id,
            "uco-observable:AccountFacet",
            **{
                "uco-observable:accountIdentifier": esp_identifier or screen_name or key,
                "uco-observable:accountIssuer": _ref(_organization(g, provider)),
                "uco-observable:owner": _ref(owner) if owner else None,
            },
        ),
        g.facet(
            "application-account-facet",
            node_id,
            "uco-observable:ApplicationAccountFacet",
            **{"uco-observable:application": _ref(_application(g, provider))},
        ),
    ]
    if screen_name or display:
        facets.append(
            g.facet(
                "digital-account-facet",
                node_id,
                "uco-observable:DigitalAccountFacet",
                **{
                    "uco-observable:accountLogin": [screen_name] if screen_name else None,
                    "uco-observable:displayName": display,
                },
            )
        )
    return g.add(
        {"@id": node_id, "@type": "uco-observable:ApplicationAccount", "uco-core:name": f"account {key}", "uco-core:hasFacet": facets}
    )


def _file(g: _Graph, f: ReportedFile, matches: list[str]) -> str:
    node_id = g.id("file", f.file_id)
    hashes: list[dict[str, str]] = []
    notes: list[str] = []
    for h in f.hashes:
        method = HASH_METHODS.get(h.hash_type)
        if method is None:
            shown = f" {h.value}" if h.hash_type is HashType.PDQ else ""
            name = h.name or h.hash_type.value
            notes.append(f"{name} hash{shown} (not in UCO HashNameVocab; not exported as uco-types:Hash)")
            continue
        hash_id = g.add(
            {
                "@id": g.id("hash", f.file_id, method, h.value),
                "@type": "uco-types:Hash",
                "uco-types:hashMethod": method,
                "uco-types:hashValue": {"@type": "xsd:hexBinary", "@value": h.value},
            }
        )
        hashes.append(_ref(hash_id))
    facets = []
    if hashes:
        facets.append(g.facet("content-data-facet", node_id, "uco-observable:ContentDataFacet", **{"uco-observable:hash": hashes}))
    description = [
        f"reported file {f.file_id}",
        f"viewed by provider: {'unknown' if f.viewed_by_esp is None else 'yes' if f.viewed_by_esp else 'no'}",
    ]
    if f.industry_classification is not None:
        description.append(f"industry classification: {f.industry_classification.value}")
    if f.annotations:
        description.append("annotations: " + ", ".join(a.value for a in f.annotations))
    description += notes + matches
    node: Node = {
        "@id": node_id,
        "@type": "uco-observable:File",
        "uco-core:name": f"file {f.file_id}",
        "uco-core:description": ["; ".join(description)],
    }
    if facets:
        node["uco-core:hasFacet"] = facets
    return g.add(node)


def to_case_jsonld(data: PackageData, kb: str = DEFAULT_KB) -> dict[str, Any]:
    """The package as a CASE/UCO JSON-LD document (``@context`` and ``@graph``)."""
    report = data.report
    g = _Graph(report.id)
    provider = report.provider or "unknown provider"
    observables: list[str] = []

    tool = g.add(
        {
            "@id": g.id("tool", data.generated_by),
            "@type": "uco-tool:Tool",
            "uco-core:name": data.generated_by,
            "uco-tool:toolType": "triage",
        }
    )
    owner: str | None = None
    if data.subject is not None:
        owner = g.add(
            {
                "@id": g.id("identity", data.subject.id),
                "@type": "uco-identity:Identity",
                "uco-core:name": f"subject {data.subject.id}",
                "uco-core:description": ["subject as resolved by record linkage; an identity hypothesis, not a finding"],
            }
        )

    accounts_by_key: dict[str, str] = {}

    def add_account(
        key: str,
        acct_provider: str | None,
        esp_identifier: str | None,
        screen_name: str | None,
        display_names: list[str],
        emails: list[str],
        phones: list[str],
    ) -> None:
        anchor: str | None = None
        if esp_identifier or screen_name:
            anchor = _app_account(g, key, acct_provider or provider, esp_identifier, screen_name, display_names, owner)
            accounts_by_key[key] = anchor
            observables.append(anchor)
        for address in emails:
            e = _email(g, address)
            observables.append(e)
            if anchor or owner:
                g.relationship(anchor or str(owner), e, "Has_Email_Address")
        for number in phones:
            p = _phone(g, number, owner)
            observables.append(p)
            if anchor:
                g.relationship(anchor, p, "Has_Phone_Account")

    if data.subject is not None:
        for sa in data.subject.accounts:
            add_account(sa.key, sa.provider, sa.esp_identifier, sa.screen_name, sa.display_names, sa.emails, sa.phones)
    for i, person in enumerate(report.reported_people):
        key = f"reported_people[{i}]"
        emails = [e.address for e in person.person.emails] if person.person else []
        phones = [p.number for p in person.person.phones] if person.person else []
        add_account(key, person.esp_service, person.esp_identifier, person.screen_name, person.display_names, emails, phones)

    for ev in data.ip_events:
        ip = _ip(g, ev.ip_address)
        observables.append(ip)
        source = accounts_by_key.get(ev.account or "") or owner
        if source:
            what = " ".join(x for x in (ev.event_name, "event", f"port {ev.port}" if ev.port else None) if x)
            g.relationship(source, ip, "Used_IP_Address", ev.date_time, what)

    matches: dict[str, list[str]] = {}
    for m in data.hash_matches:
        if m.suppressed_by is None:
            codes = ", ".join(
                x for x in (f"category {m.category}" if m.category else None, f"series {m.series}" if m.series else None) if x
            )
            matches.setdefault(m.file_id, []).append(
                f"{m.match_type} {m.hash_type} match in bank {m.bank}" + (f" ({codes})" if codes else "")
            )
    for f in report.files:
        observables.append(_file(g, f, matches.get(f.file_id, [])))

    reference = g.add(
        {
            "@id": g.id("external-reference", "report"),
            "@type": "uco-core:ExternalReference",
            "uco-core:definingContext": "CyberTipline report id",
            "uco-core:externalIdentifier": report.id,
        }
    )
    provenance = g.add(
        {
            "@id": g.id("provenance-record", "report"),
            "@type": "case-investigation:ProvenanceRecord",
            "case-investigation:exhibitNumber": report.id,
            "uco-core:name": f"report {report.id}",
            "uco-core:description": [f"CyberTipline-style report {report.id} from {provider}; incident type: {report.incident_type.value}"],
            "uco-core:externalReference": [_ref(reference)],
            "uco-core:object": [_ref(o) for o in dict.fromkeys(observables)],
        }
    )
    organization = _organization(g, provider)
    receipt = g.add(
        {
            "@id": g.id("investigative-action", "receipt"),
            "@type": "case-investigation:InvestigativeAction",
            "uco-core:name": f"receipt of report {report.id}",
            "uco-action:startTime": _dt(report.received_at),
            "uco-action:endTime": _dt(report.received_at),
            "uco-action:performer": _ref(organization),
            "uco-action:result": [_ref(provenance)],
        }
    )
    a = data.assessment
    g.add(
        {  # the triage step: tiptriage (instrument) read the report (object)
            "@id": g.id("investigative-action", "triage", data.generated_at.isoformat()),
            "@type": "case-investigation:InvestigativeAction",
            "uco-core:name": "triage by tiptriage",
            "uco-core:description": [
                f"tier {a.tier}, score {a.score} under policy {a.policy_name} ({a.policy_version}); a priority for a person to review, not a decision"
            ],
            "uco-action:startTime": _dt(data.generated_at),
            "uco-action:instrument": [_ref(tool)],
            "uco-action:object": [_ref(provenance)],
            "case-investigation:wasInformedBy": [_ref(receipt)],
        }
    )
    top = [
        n
        for n, node in g.nodes.items()
        if not str(node["@type"]).endswith("Facet") and node["@type"] not in ("uco-types:Hash", "uco-core:ExternalReference")
    ]
    investigation: Node = {
        "@id": g.id("investigation", "lead"),
        "@type": "case-investigation:Investigation",
        "uco-core:name": f"lead package for report {report.id}",
        "case-investigation:focus": ["online child sexual exploitation report (CyberTipline-style)"],
        "case-investigation:investigationStatus": "lead under review",
        "uco-core:objectCreatedTime": _dt(data.generated_at),
        "uco-core:object": [_ref(n) for n in top],  # the actions, the provenance record, identities, observables
    }
    if data.routing is not None:
        investigation["uco-core:description"] = [f"routed to {data.routing.agency_id}: {data.routing.reason}"]
    g.add(investigation)
    nodes = sorted(g.nodes.values(), key=lambda n: str(n["@id"]))
    return {"@context": {**CONTEXT, "kb": kb}, "@graph": nodes}


def write_case_jsonld(data: PackageData, path: Path, kb: str = DEFAULT_KB) -> Path:
    """Write ``to_case_jsonld`` to ``path`` (UTF-8, sorted keys) and return the path."""
    path.write_text(json.dumps(to_case_jsonld(data, kb), indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
