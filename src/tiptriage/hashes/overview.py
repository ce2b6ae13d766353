"""The banks as an operator sees them: name, kind, entries by hash type, thresholds, last update."""

from __future__ import annotations

from typing import Any

from tiptriage.store import Store


def bank_overview(store: Store) -> list[dict[str, Any]]:
    counts = store.hashsets.entry_counts()
    return [{"name": b.name, "negative": b.negative, "max_distance": b.max_distance, "min_quality": b.min_quality,
             "updated_at": b.updated_at.isoformat(timespec="seconds"),
             "entries": {t: n for (bank, t), n in sorted(counts.items()) if bank == b.name}} for b in store.hashsets.banks()]
