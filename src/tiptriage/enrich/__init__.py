"""Enrichment: identifiers, places; never calls the network."""

from tiptriage.enrich.identifiers import (
    Identifier,
    IdentifierKind,
    IpInfo,
    IpKind,
    NormalizedEmail,
    NormalizedPhone,
    account_identifiers,
    classify_ip,
    esp_account_key,
    normalize_device_id,
    normalize_email,
    normalize_phone,
    normalize_username,
)

__all__ = [
    "Identifier",
    "IdentifierKind",
    "IpInfo",
    "IpKind",
    "NormalizedEmail",
    "NormalizedPhone",
    "account_identifiers",
    "classify_ip",
    "esp_account_key",
    "normalize_device_id",
    "normalize_email",
    "normalize_phone",
    "normalize_username",
]
