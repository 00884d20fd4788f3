"""Reading one stock or project file safely: every way it can be unreadable becomes a
diagnostic, and the nodes it was built from give any field path a line and column.

The file is read with limits (regular files only, at most 1 MiB), decoded, screened for YAML
version directives and odd line breaks, then turned into values by `yamlnodes`. Positions come
from the nodes, so a diagnostic points at a key or value without a second parse.
"""

from __future__ import annotations

import codecs
import errno
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from reconciler.diagnostic_messages import Msg, msg, parts
from reconciler.diagnostics import Diagnostic, FieldPath, Severity
from reconciler.yamlnodes import (
    PRESCAN_ABOVE_BYTES,
    PRESCAN_ABOVE_DEPTH,
    BuildError,
    build,
    compose_all,
    may_nest_deeper,
    node_path,
    prescan,
)

try:
    from _ruamel_yaml import CParser  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - exercised only where the C extension is missing
    CParser = None

MAX_BYTES = 1024 * 1024
_NO_PATH = ("too_deep", "too_many_nodes", "yaml_recursive")
_VERSION_DIRECTIVE = re.compile(r"%YAML[ \t]+(\S+)")
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16 LE, whose mark it starts with
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_SCALAR_NAMES = {str: "value.text", int: "value.number", float: "value.number", bool: "value.bool"}
_ODD_BREAK = re.compile("[\x85\u2028\u2029]")
_ODD_BREAK_NAMES = {
    "\x85": "NEXT LINE",
    "\u2028": "LINE SEPARATOR",
    "\u2029": "PARAGRAPH SEPARATOR",
}
_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
"""What libyaml counts as a line break (YAML 1.1), so that computed lines match its marks."""


@dataclass
class Document:
    """One parsed file: its data (None when unreadable), its root node and file diagnostics."""

    file: str
    text: str
    data: Any = None
    node: Node | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(
        self, line: int, col: int, message: str | Msg, code: str, path: FieldPath = ()
    ) -> None:
        text, message_id, params = parts(message)
        self.diagnostics.append(
            Diagnostic(self.file, line, col, Severity.ERROR, path, text, code, message_id, params)
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


def key_lines(root: Node | None) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The dotted path and 1-based line of every mapping key under `root`, in one order for
    one layout of keys; lists and merged entries are not entered (a path that is not found
    falls back to its parent)."""
    paths: list[str] = []
    lines: list[int] = []
    stack: list[tuple[Node, str]] = [(root, "")] if type(root) is MappingNode else []
    while stack and len(paths) < 1000:  # a valid stock has dozens; aliases could repeat them
        node, prefix = stack.pop()
        for knode, vnode in node.value:
            if type(knode) is not ScalarNode or knode.value == "<<":
                continue
            path = prefix + knode.value
            paths.append(path)
            lines.append(knode.start_mark.line + 1)
            if type(vnode) is MappingNode:
                stack.append((vnode, path + "."))
    return tuple(paths), tuple(lines)


STOCK_CONTENTS = (msg("contents.stock"), msg("contents.stock_keys"))
PROJECT_CONTENTS = (msg("contents.project"), msg("contents.project_keys"))


def read_source(path: Path | str, limit: int = MAX_BYTES) -> tuple[bytes, int]:
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
            if len(chunks) == 1 and len(chunk) == info.st_size:
                break  # the whole file in one read: no second call to learn of its end
        raw = b"".join(chunks)
        return raw, max(info.st_size, len(raw))
    finally:
        os.close(fd)


def read_document(
    raw: bytes,
    file: str,
    contents: tuple[str | Msg, str | Msg] = STOCK_CONTENTS,
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
            msg("file.too_large", size=f"{size:,}", max=f"{MAX_BYTES:,}"),
            "too_large",
        )
        return doc
    wide = next((name for bom, name in _WIDE_BOMS if raw.startswith(bom)), None)
    if wide is not None:
        doc.error(
            1,
            1,
            msg("file.wide", encoding=wide),
            "encoding",
        )
        return doc
    if b"\x00" in raw:
        doc.error(0, 0, msg("file.binary"), "binary")
        return doc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8").removeprefix("\ufeff")
        doc.error(
            *_line_col(before, len(before)),
            msg("file.not_utf8", byte=f"0x{raw[exc.start]:02x}"),
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
            msg("yaml.version", version=version),
            "yaml_version",
        )
        return doc
    try:
        if len(raw) > PRESCAN_ABOVE_BYTES or may_nest_deeper(doc.text, PRESCAN_ABOVE_DEPTH):
            prescan(doc.text)
        nodes = compose_all(doc.text)
    except BuildError as exc:
        doc.error(*_within(doc.text, exc.line, exc.col), exc.message, exc.code)
        return doc
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        tab = _tab_near(doc.text, line, col)
        if tab is not None:
            doc.error(
                *tab,
                msg("yaml.tab"),
                "yaml_tab",
            )
            return doc
        problem = ", ".join(x.strip() for x in (exc.context, exc.problem) if x) or "invalid YAML"
        odd = _ODD_BREAK.search(doc.text)
        syntax = msg("yaml.syntax", problem=problem)
        if odd is not None:
            # Invisible in an editor, and a line break to libyaml (YAML 1.1): a likely cause.
            at = ":".join(map(str, _line_col(doc.text, odd.start())))
            char = f"U+{ord(odd.group()):04X} ({_ODD_BREAK_NAMES[odd.group()]})"
            syntax = msg("yaml.syntax_odd_break", problem=problem, char=char, at=at)
        doc.error(*_within(doc.text, line, col), syntax, "yaml_syntax")
        return doc
    except ReaderError as exc:
        # libyaml reports the offset in the UTF-8 bytes it was given; the pure reader in characters.
        offset = exc.position
        if CParser is not None:
            offset = len(doc.text.encode("utf-8")[:offset].decode("utf-8", "ignore"))
        doc.error(
            *_line_col(doc.text, offset),
            msg("yaml.character", char=f"U+{exc.character:04X}"),
            "yaml_character",
        )
        return doc
    except (YAMLError, RecursionError, ValueError, MemoryError) as exc:
        # No position to give (the reader's own errors are handled above): the whole file.
        doc.error(
            0,
            0,
            msg("yaml.unreadable", error=f"{type(exc).__name__}: {_first_line(exc)}"),
            "yaml_unreadable",
        )
        return doc
    if not nodes:
        doc.error(
            0,
            0,
            msg("file.empty", what=what, keys=keys),
            "empty",
        )
        return doc
    if len(nodes) > 1:
        line, _ = _within(doc.text, nodes[1].start_mark.line + 1, 1)
        doc.error(
            line,
            1,
            msg("yaml.documents", n=len(nodes)),
            "multiple_documents",
        )
        return doc
    doc.node = nodes[0]
    try:
        data = build(nodes[0])
    except BuildError as exc:
        path = () if exc.code in _NO_PATH else node_path(nodes[0], exc.node)
        doc.error(*_within(doc.text, exc.line, exc.col), exc.message, exc.code, path)
        return doc
    if not isinstance(data, Mapping):
        shown = msg(
            "value.nothing"
            if data is None
            else (
                "value.list"
                if isinstance(data, list)
                else _SCALAR_NAMES.get(type(data), "value.other")
            )
        )
        doc.error(
            1,
            1,
            msg("file.not_mapping", shown=shown, keys=keys),
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


def _tab_near(text: str, line: int, col: int) -> tuple[int, int] | None:
    """Where a tab is the likely cause of a syntax error at `line`:`col`: a tab in the blanks
    that start that line (libyaml's own message never says "tab"), or right at the error."""
    if "\t" not in text:
        return None
    lines = _BREAK.split(text)
    if not 1 <= line <= len(lines):
        return None
    current = lines[line - 1]
    indent = len(current) - len(current.lstrip(" \t"))
    at = current.find("\t", 0, max(indent, col))
    if at < 0 or (at >= indent and at != col - 1):
        return None
    return line, at + 1


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
