"""Resolution of enumeration spellings to canonical values.

Published CyberTipline clients spell some values differently; the accepted variants live in
``data/enum_aliases.json`` with their sources in ``data/SOURCES.md``. Matching ignores case and runs
of white space and nothing else, so a value that is simply unknown is still refused.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import TypeVar

E = TypeVar("E", bound=StrEnum)


def _fold(value: str) -> str:
    return " ".join(value.split()).casefold()


@cache
def _alias_table() -> dict[str, dict[str, str]]:
    raw = json.loads(resources.files("tiptriage.data").joinpath("enum_aliases.json").read_text("utf-8"))
    return {k: {_fold(a): c for a, c in v.items()} for k, v in raw.items() if not k.startswith("_")}


@cache
def _canonical(enum: type[StrEnum]) -> dict[str, str]:
    return {_fold(m.value): m.value for m in enum}


class UnknownEnumValue(ValueError):
    def __init__(self, enum_name: str, value: str, allowed: list[str]) -> None:
        self.enum_name = enum_name
        self.value = value
        self.allowed = allowed
        shown = value if len(value) <= 120 else value[:117] + "..."
        super().__init__(f"unknown {enum_name} {shown!r}; allowed: {', '.join(repr(a) for a in allowed)}")


def resolve(enum: type[E], value: str, table: str | None = None) -> E:
    """Map ``value`` to a member of ``enum``, through the alias table ``table`` if given."""
    folded = _fold(value)
    canonical = _canonical(enum).get(folded)
    if canonical is None and table is not None:
        canonical = _alias_table().get(table, {}).get(folded)
    if canonical is None:
        raise UnknownEnumValue(table or enum.__name__, value, [m.value for m in enum])
    return enum(canonical)
