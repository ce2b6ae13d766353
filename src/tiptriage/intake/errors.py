"""Why a submission was refused: the file, the place in it, the rule broken."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Bounds on what one document may cost us; hostile input is refused inside them."""

    max_document_bytes: int = 50 * 1024 * 1024
    max_field_chars: int = 1024 * 1024
    max_zip_members: int = 10_000
    max_csv_row_chars: int = 4 * 1024 * 1024


class IntakeError(Exception):
    """A submission cannot be read. ``place`` is an element path, ``line N`` or ``-`` for the whole file."""

    def __init__(self, path: str, place: str, rule: str, reason: str) -> None:
        self.path = path
        self.place = place
        self.rule = rule
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.place}: {self.reason} [rule: {self.rule}]"

    def with_path(self, path: str) -> IntakeError:
        return IntakeError(path, self.place, self.rule, self.reason)
