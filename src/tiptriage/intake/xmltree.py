"""Safe XML parsing and a small path-aware element reader shared by the XML readers.

Every document goes through defusedxml with DTDs forbidden, so entity expansion (billion laughs,
quadratic blowup) and external entities or DTDs are refused before anything is expanded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar
from xml.etree.ElementTree import Element, ParseError

import defusedxml
from defusedxml.ElementTree import fromstring

from tiptriage.intake.errors import IntakeError, Limits
from tiptriage.model.aliases import UnknownEnumValue, resolve

E = TypeVar("E", bound=StrEnum)

_DECL_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def local(tag: str) -> str:
    return tag[tag.index("}") + 1 :] if tag[:1] == "{" else tag


def parse(data: bytes, path: str, limits: Limits) -> Element:
    """Parse ``data`` or raise an IntakeError naming why."""
    if not data.strip():
        raise IntakeError(path, "-", "not-empty", "the file is empty")
    if len(data) > limits.max_document_bytes:
        raise IntakeError(path, "-", "size-limit", f"document is {len(data)} bytes, over the limit of {limits.max_document_bytes}")
    declared = _DECL_ENCODING.match(data[:200])
    encoding = declared.group(1).decode().lower() if declared else "utf-8"
    if encoding in ("utf-8", "utf8"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise IntakeError(path, f"line {line}", "utf-8", f"invalid UTF-8 at byte offset {exc.start}") from None
    try:
        root: Element = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden:
        raise IntakeError(
            path, "-", "no-dtd", "a document type declaration (DTD) is not accepted: entities and external DTDs are refused"
        ) from None
    except defusedxml.EntitiesForbidden as exc:
        raise IntakeError(path, "-", "no-entities", f"entity declaration {exc.name!r} refused") from None
    except defusedxml.ExternalReferenceForbidden:
        raise IntakeError(path, "-", "no-external", "external reference refused") from None
    except ParseError as exc:
        line, col = exc.position
        raise IntakeError(path, f"line {line}, column {col}", "well-formed", f"not well-formed XML: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    for el in root.iter():
        text = el.text or ""
        if len(text) > limits.max_field_chars:
            raise IntakeError(path, local(el.tag), "field-size", f"field of {len(text)} characters, over the limit of {limits.max_field_chars}")
    return root


class Node:
    """An element with its path; reading a child marks it used so leftovers can be reported."""

    def __init__(self, el: Element, path: str, file: str, unmapped: list[str]) -> None:
        self.el = el
        self.path = path
        self.file = file
        self.unmapped = unmapped
        self._used: set[int] = set()
        self._index: dict[str, list[int]] | None = None

    def error(self, rule: str, reason: str, child: str | None = None) -> IntakeError:
        return IntakeError(self.file, f"{self.path}/{child}" if child else self.path, rule, reason)

    def children(self, name: str) -> Iterator[Node]:
        if self._index is None:
            self._index = {}
            for i, c in enumerate(self.el):
                self._index.setdefault(local(c.tag), []).append(i)
        for i in self._index.get(name, ()):
            self._used.add(i)
            yield Node(self.el[i], f"{self.path}/{name}", self.file, self.unmapped)

    def child(self, name: str) -> Node | None:
        return next(self.children(name), None)

    def require(self, name: str) -> Node:
        node = self.child(name)
        if node is None or not (node.text or len(node.el)):
            raise self.error("required", f"required element <{name}> is missing", name)
        return node

    @property
    def text(self) -> str | None:
        t = (self.el.text or "").strip()
        return t or None

    def attr(self, name: str) -> str | None:
        v = self.el.get(name)
        return v.strip() if v is not None and v.strip() else None

    def string(self, name: str) -> str | None:
        c = self.child(name)
        return c.text if c is not None else None

    def strings(self, name: str) -> list[str]:
        return [t for c in self.children(name) if (t := c.text)]

    def integer(self, name: str) -> int | None:
        v = self.string(name)
        if v is None:
            return None
        try:
            return int(v)
        except ValueError:
            raise self.error("integer", f"{v[:60]!r} is not an integer", name) from None

    def number(self, name: str) -> float | None:
        v = self.string(name)
        if v is None:
            return None
        try:
            return float(v)
        except ValueError:
            raise self.error("number", f"{v[:60]!r} is not a number", name) from None

    def bool_value(self, v: str | None, where: str) -> bool | None:
        if v is None:
            return None
        low = v.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise self.error("boolean", f"{v[:60]!r} is not true or false", where)

    def boolean(self, name: str) -> bool | None:
        return self.bool_value(self.string(name), name)

    def bool_attr(self, name: str) -> bool | None:
        return self.bool_value(self.attr(name), "@" + name)

    def datetime_value(self, v: str | None, where: str) -> datetime | None:
        if v is None:
            return None
        try:
            parsed = datetime.fromisoformat(v)
        except ValueError:
            raise self.error("datetime", f"{v[:60]!r} is not an ISO 8601 date and time", where) from None
        if parsed.tzinfo is None:
            raise self.error("timezone", f"{v!r} has no time zone; dates must carry one (e.g. Z or -07:00)", where)
        return parsed

    def timestamp(self, name: str) -> datetime | None:
        return self.datetime_value(self.string(name), name)

    def day(self, name: str) -> date | None:
        v = self.string(name)
        if v is None:
            return None
        try:
            return date.fromisoformat(v[:10])
        except ValueError:
            raise self.error("date", f"{v[:60]!r} is not an ISO 8601 date", name) from None

    def enum_value(self, enum: type[E], v: str | None, where: str, table: str | None = None) -> E | None:
        if v is None:
            return None
        try:
            return resolve(enum, v, table)
        except UnknownEnumValue as exc:
            raise self.error("enumeration", str(exc), where) from None

    def enum(self, name: str, enum: type[E], table: str | None = None) -> E | None:
        return self.enum_value(enum, self.string(name), name, table)

    def flags(self, enum: type[E]) -> list[E]:
        """Presence flags: each child element's name is a member of ``enum``."""
        out = []
        for i, c in enumerate(self.el):
            self._used.add(i)
            v = self.enum_value(enum, local(c.tag), local(c.tag))
            if v is not None:
                out.append(v)
        return out

    def finish(self) -> None:
        """Record children nobody read, so nothing in a document is silently dropped."""
        for i, c in enumerate(self.el):
            if i not in self._used:
                self.unmapped.append(f"{self.path}/{local(c.tag)}")
