"""The canonical report: one CyberTipline report as every later stage sees it.

Field names are snake_case renderings of the CyberTipline element names (ELEMENTS.md), so a reader
of the schema documentation can find each one. Every datetime carries a time zone. Readers build
these models; nothing downstream ever looks at the source format again, only at ``source``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from tiptriage.model.enums import (
    AssociatedAccountType,
    BatchedReportReason,
    DetailsType,
    EventName,
    FileAnnotation,
    FileRelevance,
    HashType,
    IncidentType,
    IndustryClassification,
    ReportAnnotation,
    SourceFormat,
)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, str_strip_whitespace=True)


_HEX_LENGTHS = {HashType.MD5: 32, HashType.SHA1: 40, HashType.SHA256: 64, HashType.PDQ: 64}
_HEX = re.compile(r"^[0-9a-f]+$")


class FileHash(Model):
    """A hash of a reported file, as given by the provider. PhotoDNA and other kinds stay opaque."""

    hash_type: HashType
    value: str
    name: str | None = None  # the provider's own name for the hash type when it is not one we know

    @model_validator(mode="after")
    def _check_value(self) -> FileHash:
        expected = _HEX_LENGTHS.get(self.hash_type)
        if expected is not None:
            v = self.value.lower()
            if len(v) != expected or not _HEX.match(v):
                raise ValueError(f"{self.hash_type.value} hash must be {expected} hex digits, got {self.value[:80]!r}")
            self.value = v
        return self


class IpCaptureEvent(Model):
    ip_address: str
    port: int | None = Field(default=None, ge=0, le=65535)
    event_name: EventName | None = None
    date_time: AwareDatetime | None = None
    possible_proxy: bool | None = None


class DeviceId(Model):
    id_type: str | None = None
    id_value: str
    event_name: EventName | None = None
    date_time: AwareDatetime | None = None


class Phone(Model):
    number: str
    type: str | None = None
    verified: bool | None = None
    country_calling_code: str | None = None
    extension: str | None = None


class Email(Model):
    address: str
    type: str | None = None
    verified: bool | None = None


class Address(Model):
    type: str | None = None
    address: str | None = None
    city: str | None = None
    zip_code: str | None = None
    state: str | None = None
    non_usa_state: str | None = None
    country: str | None = None


class Person(Model):
    first_name: str | None = None
    last_name: str | None = None
    phones: list[Phone] = []
    emails: list[Email] = []
    addresses: list[Address] = []
    age: int | None = Field(default=None, ge=0, le=130)
    age_assertion_discrepancy: bool | None = None
    date_of_birth: date | None = None


class EstimatedLocation(Model):
    city: str | None = None
    region: str | None = None
    country_code: str | None = None
    verified: bool | None = None
    timestamp: AwareDatetime | None = None


class AssociatedAccount(Model):
    account_type: AssociatedAccountType | None = None
    third_party_user: bool | None = None
    esp_identifier: str | None = None
    esp_service: str | None = None
    screen_name: str | None = None
    display_names: list[str] = []
    profile_urls: list[str] = []
    additional_info: str | None = None


class Account(Model):
    """A person or user account: the reported party, an intended recipient or a victim."""

    person: Person | None = None
    vehicle_description: str | None = None
    esp_identifier: str | None = None
    esp_service: str | None = None
    compromised_account: bool | None = None
    screen_name: str | None = None
    display_names: list[str] = []
    profile_urls: list[str] = []
    profile_bio: str | None = None
    ip_events: list[IpCaptureEvent] = []
    device_ids: list[DeviceId] = []
    third_party_user_reported: bool | None = None
    prior_report_ids: list[str] = []
    group_identifier: str | None = None
    account_temporarily_disabled: bool | None = None
    account_permanently_disabled: bool | None = None
    estimated_location: EstimatedLocation | None = None
    all_emails_reported: bool | None = None
    associated_accounts: list[AssociatedAccount] = []
    additional_info: str | None = None


class Victim(Account):
    school_name: str | None = None


class WebPageIncident(Model):
    kind: Literal["web_page"] = "web_page"
    urls: list[str] = []
    third_party_hosted_content: bool | None = None
    additional_info: str | None = None


class EmailIncident(Model):
    kind: Literal["email"] = "email"
    email_addresses: list[str] = []
    content: str | None = None
    additional_info: str | None = None


class NewsgroupIncident(Model):
    kind: Literal["newsgroup"] = "newsgroup"
    name: str | None = None
    email_addresses: list[str] = []
    content: str | None = None
    additional_info: str | None = None


class ChatImIncident(Model):
    kind: Literal["chat_im"] = "chat_im"
    chat_client: str | None = None
    chat_room_name: str | None = None
    content: str | None = None
    additional_info: str | None = None


class OnlineGamingIncident(Model):
    kind: Literal["online_gaming"] = "online_gaming"
    game_name: str | None = None
    console: str | None = None
    content: str | None = None
    additional_info: str | None = None


class CellPhoneIncident(Model):
    kind: Literal["cell_phone"] = "cell_phone"
    phone_number: str | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    additional_info: str | None = None


class NonInternetIncident(Model):
    kind: Literal["non_internet"] = "non_internet"
    location_name: str | None = None
    incident_addresses: list[Address] = []
    additional_info: str | None = None


class Peer2PeerIncident(Model):
    kind: Literal["peer2peer"] = "peer2peer"
    client: str | None = None
    ip_events: list[IpCaptureEvent] = []
    file_names: str | None = None
    additional_info: str | None = None


InternetDetail = Annotated[
    WebPageIncident
    | EmailIncident
    | NewsgroupIncident
    | ChatImIncident
    | OnlineGamingIncident
    | CellPhoneIncident
    | NonInternetIncident
    | Peer2PeerIncident,
    Field(discriminator="kind"),
]


class Reporter(Model):
    reporting_person: Person | None = None
    contact_person: Person | None = None
    company_template: str | None = None
    terms_of_service: str | None = None
    legal_url: str | None = None


class LawEnforcement(Model):
    flea_country: str | None = None
    agency_name: str | None = None
    case_number: str | None = None
    officer_contact: Person | None = None
    reported_to_le: bool | None = None
    served_legal_process_domestic: bool | None = None
    served_legal_process_international: bool | None = None


class NameValue(Model):
    type: DetailsType | None = None
    name: str
    value: str


class ReportedFile(Model):
    file_id: str
    original_file_name: str | None = None
    uploaded_at: AwareDatetime | None = None
    location_of_file: str | None = None
    viewed_by_esp: bool | None = None
    exif_viewed_by_esp: bool | None = None
    publicly_available: bool | None = None
    relevance: FileRelevance | None = None
    annotations: list[FileAnnotation] = []
    industry_classification: IndustryClassification | None = None
    hashes: list[FileHash] = []
    ip_event: IpCaptureEvent | None = None
    device_ids: list[DeviceId] = []
    details: list[NameValue] = []
    additional_info: list[str] = []

    @field_validator("annotations")
    @classmethod
    def _unique_sorted(cls, v: list[FileAnnotation]) -> list[FileAnnotation]:
        return sorted(set(v), key=lambda a: a.value)

    @field_validator("hashes")
    @classmethod
    def _canonical_hashes(cls, v: list[FileHash]) -> list[FileHash]:
        # a file's hashes are a set: one canonical order makes equal files compare equal
        order = list(HashType)
        unique = {(h.hash_type, h.value, h.name): h for h in v}
        return [unique[k] for k in sorted(unique, key=lambda k: (order.index(k[0]), k[1], k[2] or ""))]

    def hash_of(self, hash_type: HashType) -> str | None:
        return next((h.value for h in self.hashes if h.hash_type is hash_type), None)


class SourceDocument(Model):
    """One document of a submission, kept content-addressed in the blob store."""

    name: str
    sha256: str
    size: int


class Source(Model):
    """Where a report came from: the submission digest is the idempotency key."""

    format: SourceFormat
    path: str
    sha256: str
    documents: list[SourceDocument] = []
    line: int | None = None  # the first line of the row, for CSV


class Report(Model):
    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    provider: str | None = None
    received_at: AwareDatetime
    incident_type: IncidentType
    platform: str | None = None
    escalate_to_high_priority: str | None = Field(default=None, max_length=3000)
    report_annotations: list[ReportAnnotation] = []
    incident_datetime: AwareDatetime
    incident_datetime_description: str | None = None
    batched_report_reason: BatchedReportReason | None = None
    internet_details: list[InternetDetail] = []
    law_enforcement: LawEnforcement | None = None
    reporter: Reporter | None = None
    reported_people: list[Account] = []
    intended_recipients: list[Account] = []
    victims: list[Victim] = []
    additional_info: str | None = None
    files: list[ReportedFile] = []
    source: Source | None = None
    unmapped: list[str] = []  # paths of source elements with no place in the model, never silently dropped

    @field_validator("report_annotations")
    @classmethod
    def _unique_sorted(cls, v: list[ReportAnnotation]) -> list[ReportAnnotation]:
        return sorted(set(v), key=lambda a: a.value)

    @property
    def is_escalated(self) -> bool:
        return bool(self.escalate_to_high_priority)
