"""Closed value sets of the CyberTipline reporting schema.

Names and spellings follow the element inventory in ../shared/reference/cybertipline/ELEMENTS.md
(derived from the published ispws documentation as modelled by open-source clients).
Spellings used by other clients resolve through ``data/enum_aliases.json``; see ``aliases.py``.
"""

from __future__ import annotations

import re
from enum import StrEnum


class IncidentType(StrEnum):
    CHILD_PORNOGRAPHY = "Child Pornography (possession, manufacture, and distribution)"
    CHILD_SEX_TRAFFICKING = "Child Sex Trafficking"
    CHILD_SEX_TOURISM = "Child Sex Tourism"
    CHILD_SEXUAL_MOLESTATION = "Child Sexual Molestation"
    MISLEADING_DOMAIN_NAME = "Misleading Domain Name"
    MISLEADING_WORDS_OR_IMAGES = "Misleading Words or Digital Images on the Internet"
    ONLINE_ENTICEMENT = "Online Enticement of Children for Sexual Acts"
    UNSOLICITED_OBSCENE_MATERIAL = "Unsolicited Obscene Material Sent to a Child"


class ReportAnnotation(StrEnum):
    SEXTORTION = "sextortion"
    CSAM_SOLICITATION = "csamSolicitation"
    MINOR_TO_MINOR_INTERACTION = "minorToMinorInteraction"
    SPAM = "spam"
    SADISTIC_ONLINE_EXPLOITATION = "sadisticOnlineExploitation"
    INFORMATIONAL = "informational"


class FileAnnotation(StrEnum):
    ANIME_DRAWING_VIRTUAL_HENTAI = "animeDrawingVirtualHentai"
    POTENTIAL_MEME = "potentialMeme"
    VIRAL = "viral"
    POSSIBLE_SELF_PRODUCTION = "possibleSelfProduction"
    PHYSICAL_HARM = "physicalHarm"
    VIOLENCE_GORE = "violenceGore"
    BESTIALITY = "bestiality"
    LIVE_STREAMING = "liveStreaming"
    INFANT = "infant"
    GENERATIVE_AI = "generativeAi"


class IndustryClassification(StrEnum):
    """ESP industry scale: letter = apparent age band (A prepubescent, B pubescent), digit = content rank."""

    A1 = "A1"
    A2 = "A2"
    B1 = "B1"
    B2 = "B2"


class FileRelevance(StrEnum):
    REPORTED = "Reported"
    SUPPLEMENTAL_REPORTED = "Supplemental Reported"


class EventName(StrEnum):
    LOGIN = "Login"
    REGISTRATION = "Registration"
    PURCHASE = "Purchase"
    UPLOAD = "Upload"
    OTHER = "Other"
    UNKNOWN = "Unknown"


class AssociatedAccountType(StrEnum):
    BILLING = "Billing"
    LINKED = "Linked"
    BUSINESS = "Business"
    CREATOR = "Creator"
    PARENT_GUARDIAN = "Parent/Guardian"
    OTHER = "Other"


class BatchedReportReason(StrEnum):
    VIRAL_POTENTIAL_MEME = "VIRAL_POTENTIAL_MEME"


class DetailsType(StrEnum):
    EXIF = "EXIF"
    HASH = "HASH"


class HashType(StrEnum):
    """Hash kinds the matcher understands; anything else is kept as OTHER with its original name."""

    MD5 = "MD5"
    SHA1 = "SHA1"
    SHA256 = "SHA256"
    PDQ = "PDQ"
    PHOTODNA = "PHOTODNA"
    VPDQ = "VPDQ"  # a video's per-frame PDQ hashes, kept as text (see hashes/video.py for the accepted forms)
    OTHER = "OTHER"


class SourceFormat(StrEnum):
    CYBERTIP_XML = "cybertip-xml"
    CYBERTIP_JSON = "cybertip-json"
    CSV = "csv"


# How providers and hash sets spell hash kinds; compared without case, spaces, '-' or '_'.
_HASH_NAMES = {"MD5": HashType.MD5, "SHA1": HashType.SHA1, "SHA256": HashType.SHA256, "PDQ": HashType.PDQ,
               "PHOTODNA": HashType.PHOTODNA, "PDNA": HashType.PHOTODNA, "VPDQ": HashType.VPDQ}


def hash_type_of(name: str) -> HashType:
    """The hash kind a name denotes; OTHER when it is not one the matcher knows."""
    return _HASH_NAMES.get(re.sub(r"[\s_-]", "", name).upper(), HashType.OTHER)
