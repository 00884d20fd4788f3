"""Reading one YAML document safely and quickly, with the position of every value.

libyaml (through ruamel's C extension) builds the node tree in C; tags are resolved here with a
small YAML 1.2 core-schema resolver, and plain Python values are built from the nodes. The
nodes keep their line and column, so a diagnostic can point at a key or value without a second
parse, and the happy path costs a fraction of ruamel's own constructor. Times stay strings
exactly as written: the API wants the text, not a datetime that would lose the offset spelling.
"""

from __future__ import annotations

import codecs
import errno
import math
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    Event,
    ScalarEvent,
)
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from reconciler.diagnostics import Diagnostic, FieldPath, Severity

try:
    from _ruamel_yaml import CParser  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - exercised only where the C extension is missing
    CParser = None

MAX_BYTES = 1024 * 1024
MAX_NODES = 20_000
MAX_DEPTH = 64
MAX_NUMBER_CHARS = 100
"""No field takes a number longer than 20 digits; a longer one is refused before it is
converted (int() of thousands of digits is slow, and str() of them raises)."""
PRESCAN_ABOVE_BYTES = 64 * 1024
PRESCAN_ABOVE_DEPTH = 512
"""libyaml composes nodes recursively in C and its scanner does work per open level for every
token: deep input is quadratic, and tens of thousands of levels overflow the C stack (a crash,
not an exception). A file that might nest deeper than this, or is larger than the byte limit,
is first streamed as events and refused as soon as it goes too deep or too wide."""
_BLOCK_PREFIX = re.compile(r"^[ \t?:-]*", re.MULTILINE)
_NO_PATH = ("too_deep", "too_many_nodes", "yaml_recursive")
_VERSION_DIRECTIVE = re.compile(r"%YAML[ \t]+(\S+)")
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16 LE, whose mark it starts with
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_SCALAR_NAMES = {str: "text", int: "a number", float: "a number", bool: "a boolean"}
_ODD_BREAK = re.compile("[\x85\u2028\u2029]")
_ODD_BREAK_NAMES = {
    "\x85": "NEXT LINE",
    "\u2028": "LINE SEPARATOR",
    "\u2029": "PARAGRAPH SEPARATOR",
}
_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
"""What libyaml counts as a line break (YAML 1.1), so that computed lines match its marks."""

_T = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL, SEQ, MAP = (
    _T + n for n in ("str", "int", "float", "bool", "null", "seq", "map")
)
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


def _resolve_plain(value: str) -> str:
    if _NULL.match(value):
        return NULL
    if value in _BOOL:
        return BOOL
    if _INT.match(value):
        return INT
    if _FLOAT.match(value):
        return FLOAT
    return STR


if CParser is not None:

    class _FastParser(CParser):  # type: ignore[misc]
        """libyaml composer with a YAML 1.2 core-schema resolver (no 1.1 booleans, no dates)."""

        def descend_resolver(self, *_: object) -> None:
            return None

        def ascend_resolver(self, *_: object) -> None:
            return None

        def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
            if kind is ScalarNode:
                return _resolve_plain(value) if implicit[0] else STR
            return SEQ if kind is SequenceNode else MAP


def events(text: str) -> Iterator[Event]:
    """The parser's events, one at a time (libyaml's parser is iterative: safe at any depth)."""
    if CParser is not None:
        parser = _FastParser(text)
        while parser.check_event():
            yield parser.get_event()
        return
    yield from YAML(typ="safe", pure=True).parse(text)


def nesting_bound(text: str) -> int:
    """A cheap upper bound on how deep `text` can nest: every flow level needs a bracket, and
    a nested block collection starts further right than its parent (or one level more for a
    sequence under a key), within the run of blanks and indicators that begins its line."""
    flow = text.count("[") + text.count("{")
    block = max(map(len, _BLOCK_PREFIX.findall(text)), default=0)
    return flow + 2 * block + 2


def prescan(text: str, max_nodes: int = MAX_NODES) -> None:
    """Stream the events and raise BuildError at the first value nested more than MAX_DEPTH
    deep or beyond `max_nodes` values; linear in the size of the file."""
    depth = nodes = 0
    for event in events(text):
        if isinstance(event, CollectionEndEvent):
            depth -= 1
        elif isinstance(event, ScalarEvent | AliasEvent | CollectionStartEvent):
            if depth > MAX_DEPTH:
                raise BuildError(event, f"nested more than {MAX_DEPTH} levels deep", "too_deep")
            nodes += 1
            if nodes > max_nodes:
                raise BuildError(event, _too_many(max_nodes), "too_many_nodes")
            if isinstance(event, CollectionStartEvent):
                depth += 1


def compose_all(text: str) -> list[Node]:
    if CParser is not None:
        parser = _FastParser(text)
        out = []
        while parser.check_node():
            out.append(parser.get_node())
        return out
    return list(YAML(typ="safe", pure=True).compose_all(text))


class BuildError(Exception):
    """A document that parses as YAML but cannot become data (duplicate key, odd tag, ...)."""

    def __init__(self, node: Node | Event, message: str, code: str) -> None:
        super().__init__(message)
        self.node = node
        self.line = node.start_mark.line + 1
        self.col = node.start_mark.column + 1
        self.code = code


def node_path(root: Node, target: Node | Event) -> FieldPath:
    """The field path of `target` (a value, or a key for its own entry) under `root`; () when
    it is the root or not found. Each node is visited once, so aliases cannot blow this up."""
    seen: set[int] = set()
    stack: list[tuple[Node, FieldPath]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if node is target or id(node) in seen:
            if node is target:
                return path
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for knode, vnode in reversed(node.value):
                if not isinstance(knode, ScalarNode):
                    if knode is target:  # a list or mapping used as a key: its mapping
                        return path
                    continue
                if knode is target:
                    return (*path, str(knode.value))
                stack.append((vnode, (*path, str(knode.value))))
        elif isinstance(node, SequenceNode):
            stack.extend((child, (*path, i)) for i, child in reversed(list(enumerate(node.value))))
    return ()


def _too_many(max_nodes: int) -> str:
    return f"expands to more than {max_nodes:,} values (through anchors and aliases?); refusing to read it"


def _tag(node: Node) -> str:
    # Our resolver hands back plain strings, kept as a Tag's suffix; str(tag) is slow.
    ctag = node.ctag
    return str(ctag.suffix) if ctag.handle is None else str(ctag)


def build(root: Node, max_nodes: int = MAX_NODES) -> Any:
    """Plain Python values from nodes. Aliases share one object, and the expanded size is
    counted as we go (memoised per node), so an alias bomb is refused in linear time."""
    memo: dict[int, Any] = {}
    sizes: dict[int, int] = {}

    def scalar(node: ScalarNode) -> Any:
        tag, value = _tag(node), node.value
        if tag == STR or tag.endswith(":timestamp"):
            return value
        if tag == NULL:
            if _NULL.match(value):
                return None
            raise BuildError(node, f"{value[:40]!r} is tagged !!null but is not null", "yaml_value")
        if tag == BOOL:
            if value in _BOOL:
                return _BOOL[value]
            raise BuildError(
                node, f"{value[:40]!r} is not a boolean; write true or false", "yaml_value"
            )
        if tag in (INT, FLOAT) and len(value) > MAX_NUMBER_CHARS:
            raise BuildError(
                node,
                f"a number written with {len(value):,} characters; no field takes one that long",
                "yaml_value",
            )
        try:
            if tag == INT:
                text = value.replace("_", "")
                if text.startswith(("0o", "0x")):
                    return int(text[2:], 8 if text[1] == "o" else 16)
                return int(text)
            if tag == FLOAT:
                number = float(value.replace("_", ""))
                if math.isinf(number):
                    raise ValueError(value)
                return number
        except ValueError:
            raise BuildError(node, f"{value[:40]!r} is not a usable number", "yaml_value") from None
        raise BuildError(node, f"unsupported YAML tag {tag!r}; remove it", "yaml_tag")

    def walk(node: Node, depth: int) -> Any:
        value, _ = walk_sized(node, depth)
        return value

    def walk_sized(node: Node, depth: int) -> tuple[Any, int]:
        if depth > MAX_DEPTH:
            raise BuildError(node, f"nested more than {MAX_DEPTH} levels deep", "too_deep")
        if isinstance(node, ScalarNode):
            return scalar(node), 1
        key = id(node)
        if key in memo:
            if sizes[key] < 0:
                raise BuildError(node, "an alias refers to its own anchor", "yaml_recursive")
            return memo[key], sizes[key]
        sizes[key] = -1
        total = 1
        tag = _tag(node)
        if tag != (SEQ if isinstance(node, SequenceNode) else MAP):
            raise BuildError(node, f"unsupported YAML tag {tag!r}; remove it", "yaml_tag")
        if isinstance(node, SequenceNode):
            items: list[Any] = []
            memo[key] = items
            for child in node.value:
                value, n = walk_sized(child, depth + 1)
                items.append(value)
                total += n
                if total > max_nodes:
                    raise BuildError(node, _too_many(max_nodes), "too_many_nodes")
            sizes[key] = total
            return items, total
        if isinstance(node, MappingNode):
            mapping: dict[Any, Any] = {}
            memo[key] = mapping
            # Keyed with the type: 1, 1.0 and true are equal in Python but not in YAML.
            seen: dict[tuple[type, Any], Node] = {}
            for knode, vnode in node.value:
                # A plain `<<` (libyaml gives plain scalars style "", the pure parser None).
                if _tag(knode) == _T + "merge" or (
                    isinstance(knode, ScalarNode) and knode.value == "<<" and not knode.style
                ):
                    total += merge(mapping, vnode, depth)
                    if total > max_nodes:
                        raise BuildError(node, _too_many(max_nodes), "too_many_nodes")
                    continue
                if not isinstance(knode, ScalarNode):
                    raise BuildError(
                        knode,
                        "a mapping key must be a plain value, not a list or mapping",
                        "yaml_key",
                    )
                k = scalar(knode)
                if (type(k), k) in seen:
                    first = seen[type(k), k].start_mark.line + 1
                    raise BuildError(
                        knode,
                        f"duplicate key {k!r} (first on line {first}); each key may appear once",
                        "duplicate_key",
                    )
                seen[type(k), k] = knode
                value, n = walk_sized(vnode, depth + 1)
                mapping[k] = value
                total += n + 1
                if total > max_nodes:
                    raise BuildError(node, _too_many(max_nodes), "too_many_nodes")
            sizes[key] = total
            return mapping, total
        raise BuildError(node, "unsupported YAML node", "yaml_node")

    def merge(mapping: dict[Any, Any], vnode: Node, depth: int) -> int:
        """Merge the sources' entries; returns their expanded size, which counts towards the
        mapping's (merged values are shared, not copied, but whoever reads them walks them)."""
        sources = vnode.value if isinstance(vnode, SequenceNode) else [vnode]
        size = 0
        for src in sources:
            value, n = walk_sized(src, depth + 1)
            size += n
            if not isinstance(value, dict):
                raise BuildError(
                    src, "a merge key (<<) takes a mapping or a list of mappings", "yaml_merge"
                )
            for k, v in value.items():
                mapping.setdefault(k, v)
        return size

    return walk(root, 0)


@dataclass
class Document:
    """One parsed file: its data (None when unreadable), its root node and file diagnostics."""

    file: str
    text: str
    data: Any = None
    node: Node | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, line: int, col: int, message: str, code: str, path: FieldPath = ()) -> None:
        self.diagnostics.append(
            Diagnostic(self.file, line, col, Severity.ERROR, path, message, code)
        )

    def locate(self, path: FieldPath, *, key: bool = True) -> tuple[int, int]:
        """Line and column (1-based) of `path`; for a missing leaf, of its deepest parent.
        `key` prefers a mapping key's position over its value's (unknown and missing fields
        point at keys, wrong values at values)."""
        node, pos = self.node, (1, 1)
        last = len(path) - 1
        for i, part in enumerate(path):
            child: Node | None = None
            if isinstance(node, MappingNode):
                for knode, vnode in node.value:
                    if isinstance(knode, ScalarNode) and knode.value == str(part):
                        mark = vnode.start_mark if (i == last and not key) else knode.start_mark
                        pos, child = (mark.line + 1, mark.column + 1), vnode
                        break
            elif (
                isinstance(node, SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                child = node.value[part]
                pos = (child.start_mark.line + 1, child.start_mark.column + 1)
            if child is None:
                break
            node = child
        return pos


STOCK_CONTENTS = ("a stock file", "id, kind, merchant and spec")


def read_source(path: Path, limit: int = MAX_BYTES) -> tuple[bytes, int]:
    """At most `limit` + 1 bytes of a regular file, and its size (for the too_large message).

    Anything else raises OSError without being read: a FIFO named x.yaml blocks a plain read
    forever, and a link to /dev/zero never ends (it ran validate out of memory)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or socket)")
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        raw = b"".join(chunks)
        return raw, max(info.st_size, len(raw))
    finally:
        os.close(fd)


def read_document(
    raw: bytes,
    file: str,
    contents: tuple[str, str] = STOCK_CONTENTS,
    size: int | None = None,
) -> Document:
    """Decode and parse one file, turning every way it can be unreadable into a diagnostic.

    `contents` names the kind of file and the keys its mapping holds, for the messages about
    an empty file or one whose top level is not a mapping; `size` is the file's size when
    `raw` is only its beginning (see read_source)."""
    what, keys = contents
    doc = Document(file, "")
    size = len(raw) if size is None else size
    if size > MAX_BYTES:
        doc.error(
            0,
            0,
            f"file is {size:,} bytes; a stock or project file may be at most {MAX_BYTES:,}",
            "too_large",
        )
        return doc
    wide = next((name for bom, name in _WIDE_BOMS if raw.startswith(bom)), None)
    if wide is not None:
        doc.error(
            1,
            1,
            f"file is {wide} (it starts with a {wide} byte order mark); save it as UTF-8",
            "encoding",
        )
        return doc
    if b"\x00" in raw:
        doc.error(
            0, 0, "file looks binary (it contains NUL bytes); expected UTF-8 YAML text", "binary"
        )
        return doc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8").removeprefix("\ufeff")
        doc.error(
            *_line_col(before, len(before)),
            f"file is not UTF-8 (invalid byte 0x{raw[exc.start]:02x}); save it as UTF-8",
            "encoding",
        )
        return doc
    doc.text = text.removeprefix("\ufeff")
    directive = _yaml_version(doc.text)
    if directive is not None:
        line, version = directive
        doc.error(
            line,
            1,
            f"%YAML {version} directive: only YAML 1.2 is read; remove the directive (1.1 changes what yes, no and 010 mean)",
            "yaml_version",
        )
        return doc
    try:
        if len(raw) > PRESCAN_ABOVE_BYTES or nesting_bound(doc.text) > PRESCAN_ABOVE_DEPTH:
            prescan(doc.text)
        nodes = compose_all(doc.text)
    except BuildError as exc:
        doc.error(*_within(doc.text, exc.line, exc.col), str(exc), exc.code)
        return doc
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = ", ".join(x.strip() for x in (exc.context, exc.problem) if x) or "invalid YAML"
        odd = _ODD_BREAK.search(doc.text)
        if odd is not None:
            # Invisible in an editor, and a line break to libyaml (YAML 1.1): a likely cause.
            at = ":".join(map(str, _line_col(doc.text, odd.start())))
            problem += (
                f"; note: the file holds U+{ord(odd.group()):04X} ({_ODD_BREAK_NAMES[odd.group()]})"
                f" at {at}, which this YAML reader takes as a line break unless it is inside "
                "double quotes: remove it, or quote the value"
            )
        doc.error(*_within(doc.text, line, col), f"YAML syntax error: {problem}", "yaml_syntax")
        return doc
    except ReaderError as exc:
        # libyaml reports the offset in the UTF-8 bytes it was given; the pure reader in characters.
        offset = exc.position
        if CParser is not None:
            offset = len(doc.text.encode("utf-8")[:offset].decode("utf-8", "ignore"))
        doc.error(
            *_line_col(doc.text, offset),
            f"character U+{exc.character:04X} is not allowed in YAML (a control or non-character); remove it",
            "yaml_character",
        )
        return doc
    except (YAMLError, RecursionError, ValueError, MemoryError) as exc:
        # No position to give (the reader's own errors are handled above): the whole file.
        doc.error(
            0, 0, f"cannot read YAML: {type(exc).__name__}: {_first_line(exc)}", "yaml_unreadable"
        )
        return doc
    if not nodes:
        doc.error(
            0,
            0,
            f"file is empty; {what} holds one mapping with {keys}",
            "empty",
        )
        return doc
    if len(nodes) > 1:
        line, _ = _within(doc.text, nodes[1].start_mark.line + 1, 1)
        doc.error(
            line,
            1,
            f"file holds {len(nodes)} YAML documents; put one per file",
            "multiple_documents",
        )
        return doc
    doc.node = nodes[0]
    try:
        data = build(nodes[0])
    except BuildError as exc:
        path = () if exc.code in _NO_PATH else node_path(nodes[0], exc.node)
        doc.error(*_within(doc.text, exc.line, exc.col), str(exc), exc.code, path)
        return doc
    if not isinstance(data, Mapping):
        shown = (
            "nothing"
            if data is None
            else ("a list" if isinstance(data, list) else _SCALAR_NAMES.get(type(data), "a value"))
        )
        doc.error(
            1,
            1,
            f"top level is {shown}; expected a mapping with {keys}",
            "not_mapping",
        )
        return doc
    doc.data = data
    return doc


def _yaml_version(text: str) -> tuple[int, str] | None:
    """Line and version of a %YAML directive other than 1.2 in the header (the lines before
    the first content line), where directives live; elsewhere `%YAML` is just text."""
    if "%" not in text:
        return None
    for number, line in enumerate(_BREAK.split(text), 1):
        if not line.strip(" \t") or line.lstrip(" \t").startswith("#"):
            continue
        if not line.startswith("%"):
            return None
        m = _VERSION_DIRECTIVE.match(line)
        if m and m.group(1) != "1.2":
            return number, m.group(1)
    return None


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of the character at `index`, counting lines like libyaml."""
    lines = _BREAK.split(text[:index])
    return len(lines), len(lines[-1]) + 1


def _within(text: str, line: int, col: int) -> tuple[int, int]:
    """libyaml can point past the end ('id:\nk' without a final newline: line 3 of 2; the
    empty second document of '...\n---' at EOF); such a position moves to the end of the last
    line, where editors and annotations can show it."""
    lines = _BREAK.split(text)
    if line > len(lines):
        return len(lines), len(lines[-1]) + 1
    return line, min(col, len(lines[line - 1]) + 1)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]
