"""Times in the store are UTC. SQLite hands them back naive; these put the zone back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


def utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


@overload
def aware(dt: datetime) -> datetime: ...
@overload
def aware(dt: None) -> None: ...
def aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
