"""Flood protection: a hash reported by many unrelated accounts in a short time is viral.

Such an item (a meme, a widely re-shared file) says little about any one account; it is marked so
that the linking stage bundles its reports instead of queueing each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class FloodRule:
    """More than ``accounts`` distinct accounts within ``days`` days."""

    accounts: int = 50
    days: int = 7


def busiest_window(sightings: list[tuple[datetime, str]], days: int) -> tuple[int, datetime, datetime]:
    """The most distinct accounts seen within any window of ``days`` (sightings sorted by time).

    Two pointers over the sorted sightings with a count per account: linear in the sightings.
    """
    span = timedelta(days=days)
    counts: dict[str, int] = {}
    best, best_start, best_end = 0, sightings[0][0], sightings[0][0]
    lo = 0
    for t, account in sightings:
        counts[account] = counts.get(account, 0) + 1
        while t - sightings[lo][0] > span:
            old = sightings[lo][1]
            counts[old] -= 1
            if counts[old] == 0:
                del counts[old]
            lo += 1
        if len(counts) > best:
            best, best_start, best_end = len(counts), sightings[lo][0], t
    return best, best_start, best_end
