"""Reading one YAML document safely, and finding where a field path sits in it.

The fast path parses with the C-backed safe loader (no positions). Only when a file has
something to report is it parsed again with the round-trip loader, which knows lines and
columns, so the happy path never pays for positions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from io import StringIO
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor, SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from reconciler.diagnostics import Diagnostic, FieldPath, Severity

MAX_BYTES = 1024 * 1024
MAX_NODES = 20_000
_VERSION_DIRECTIVE = re.compile(rb"^%YAML[ \t]+(\S+)", re.MULTILINE)


class _SafeConstructor(SafeConstructor):
    """Times stay strings exactly as written: the API wants the text, and a YAML timestamp
    would silently lose the offset's spelling."""


class _RoundTripConstructor(RoundTripConstructor):
    pass


_SafeConstructor.add_constructor("tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str)
_RoundTripConstructor.add_constructor("tag:yaml.org,2002:timestamp", RoundTripConstructor.construct_yaml_str)


def _safe_yaml() -> YAML:
    y = YAML(typ="safe")
    y.Constructor = _SafeConstructor
    return y


def _rt_yaml() -> YAML:
    y = YAML(typ="rt")
    y.Constructor = _RoundTripConstructor
    return y


_SAFE = _safe_yaml()


@dataclass
class Document:
    """One parsed file: its data (None when unreadable) and file-level diagnostics."""

    file: str
    text: str
    data: Any = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    _positions: Positions | None = None

    def error(self, line: int, col: int, message: str, code: str, path: FieldPath = ()) -> None:
        self.diagnostics.append(Diagnostic(self.file, line, col, Severity.ERROR, path, message, code))

    def positions(self) -> Positions:
        if self._positions is None:
            self._positions = Positions(self.text)
        return self._positions


def read_document(raw: bytes, file: str) -> Document:
    """Decode and parse one file, turning every way it can be unreadable into a diagnostic."""
    doc = Document(file, "")
    if len(raw) > MAX_BYTES:
        doc.error(0, 0, f"file is {len(raw):,} bytes; a stock or project file may be at most {MAX_BYTES:,}", "too_large")
        return doc
    if b"\x00" in raw:
        doc.error(0, 0, "file looks binary (it contains NUL bytes); expected UTF-8 YAML text", "binary")
        return doc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        doc.error(line, 1, f"file is not UTF-8 (invalid byte 0x{raw[exc.start]:02x}); save it as UTF-8", "encoding")
        return doc
    doc.text = text.removeprefix("\ufeff")
    m = _VERSION_DIRECTIVE.search(raw)
    if m and m.group(1) != b"1.2":
        line = raw[: m.start()].count(b"\n") + 1
        doc.error(line, 1, f"%YAML {m.group(1).decode(errors='replace')} directive: only YAML 1.2 is read; remove the directive (1.1 changes what yes/no/010 mean)", "yaml_version")
        return doc
    try:
        docs = list(_SAFE.load_all(doc.text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        problem = (exc.problem or "").strip()
        context = (exc.context or "").strip()
        text_msg = ", ".join(x for x in (context, problem) if x) or "invalid YAML"
        if "duplicate key" in text_msg:
            text_msg = _duplicate_message(exc)
            doc.error(line, col, text_msg, "duplicate_key")
        else:
            doc.error(line, col, f"YAML syntax error: {text_msg}", "yaml_syntax")
        return doc
    except (YAMLError, RecursionError, ValueError, OverflowError) as exc:
        doc.error(0, 0, f"cannot read YAML: {type(exc).__name__}: {_first_line(exc)}", "yaml_syntax")
        return doc
    if not docs or (len(docs) == 1 and docs[0] is None):
        doc.error(0, 0, "file is empty; a stock file holds one mapping with id, kind, merchant and spec", "empty")
        return doc
    if len(docs) > 1:
        doc.error(0, 0, f"file holds {len(docs)} YAML documents; put one stock per file", "multiple_documents")
        return doc
    data = docs[0]
    if not isinstance(data, Mapping):
        doc.error(1, 1, f"top level is a {_kind(data)}; expected a mapping with id, kind, merchant and spec", "not_mapping")
        return doc
    size = expanded_size(data)
    if size > MAX_NODES:
        doc.error(0, 0, f"file expands to more than {MAX_NODES:,} values (anchors/aliases?); refusing to read it", "too_many_nodes")
        return doc
    doc.data = data
    return doc


def expanded_size(data: Any, limit: int = MAX_NODES) -> int:
    """How many values the document has once aliases are expanded (memoised, so linear time)."""
    memo: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        if depth > 200:
            return limit + 1
        if isinstance(node, Mapping):
            children: list[Any] = [*node.keys(), *node.values()]
        elif isinstance(node, list):
            children = node
        else:
            return 1
        key = id(node)
        if key in memo:
            return memo[key]
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > limit:
                break
        memo[key] = total
        return total

    return size(data, 0)


def _duplicate_message(exc: MarkedYAMLError) -> str:
    first = exc.context_mark
    m = re.search(r'found duplicate key "([^"]*)"', str(exc.problem))
    key = m.group(1) if m else "?"
    where = f" (the mapping starts on line {first.line + 1})" if first is not None else ""
    return f"duplicate key {key!r}{where}; each key may appear once"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


class Positions:
    """Line and column (1-based) of a field path, from a round-trip parse of the same text."""

    def __init__(self, text: str) -> None:
        try:
            self.root: Any = _rt_yaml().load(StringIO(text))
        except (YAMLError, RecursionError, ValueError):
            self.root = None

    def locate(self, path: FieldPath, *, key: bool = True) -> tuple[int, int]:
        """Where `path` is; for a missing leaf, where its parent is. `key` prefers the key's
        position over the value's (unknown and missing fields point at keys)."""
        node, pos = self.root, (1, 1)
        last = len(path) - 1
        for i, part in enumerate(path):
            if isinstance(node, CommentedMap) and part in node:
                line, col = node.lc.value(part) if (i == last and not key) else node.lc.key(part)
                pos = (line + 1, col + 1)
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line, col = node.lc.item(part)
                pos = (line + 1, col + 1)
                node = node[part]
            else:
                break
        return pos
