"""Adversarial input: generated and mutated stock and project files never crash the reader.

For every input, valid or broken, YAML text or raw bytes:

- no exception escapes: every problem is a diagnostic;
- each file is read within DEADLINE (hypothesis `deadline`), however it nests or aliases;
- a diagnostic names the file; its line is 0 exactly for the whole-file problems in
  WHOLE_FILE (and then its column is 0 too), otherwise between 1 and the file's line count,
  with a column inside that line;
- the same bytes always give the same diagnostics, and a file loads iff it has no error;
- a 4-byte character (emoji) in any value is an error that names that field;
- rewriting a valid file without changing its meaning (line endings, BOM, %YAML 1.2,
  document markers, quoting, flow style, indentation, key order, comments, anchors) keeps
  it valid, with the same stock;
- `reconciler validate` over a directory of such files exits 0 or 1 in every format and
  never prints a traceback.

Inputs are both generated from scratch (trees of YAML nodes rendered in random styles, raw
bytes) and mutated from the repository's examples. The default run is a few hundred cases;
with RECONCILER_LONG=1 the `long` variants add more than 10,000.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

from reconciler.config import Project, load_project
from reconciler.diagnostics import Diagnostic, FieldPath, Severity, format_path
from reconciler.loader import load_stock_file
from reconciler.spec import BusifavorStock, FavorStock
from reconciler.yamlnodes import events, may_nest_deeper, nesting_bound
from tests.cli_invoke import invoke
from tests.conftest import EXAMPLES, ROOT, dump, example

DEADLINE = timedelta(seconds=2)
LONG_RUN = os.environ.get("RECONCILER_LONG") == "1"
WHOLE_FILE = frozenset({"too_large", "binary", "empty", "yaml_unreadable"})
"""The only codes of a file's contents without a line: the file as a whole is the problem
(or, for yaml_unreadable, the parser gave no position). Every other code has a line >= 1."""
LOADER_WHOLE_FILE = frozenset({"not_found", "unreadable"})
"""Whole-file codes of `load_stocks` itself: a path that does not exist or cannot be read."""
BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
"""Line breaks as libyaml counts them (YAML 1.1), which is how diagnostics count lines."""
CODE = re.compile(r"^[a-z][a-z0-9_]*$")


def quick(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=DEADLINE, suppress_health_check=[HealthCheck.too_slow]
    )


def long(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The exhaustive variant: marked `long`, and skipped unless RECONCILER_LONG=1 even where
    conftest's hook for the mark is missing."""
    options = settings(
        max_examples=examples,
        deadline=DEADLINE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    skip = pytest.mark.skipif(not LONG_RUN, reason="long run; set RECONCILER_LONG=1")

    def mark(test: Callable[..., None]) -> Callable[..., None]:
        marked: Callable[..., None] = pytest.mark.long(skip(options(test)))
        return marked

    return mark


# --- the properties -------------------------------------------------------------------------


def line_count(raw: bytes) -> int:
    """Lines of the file as an editor shows them (a final line break opens an empty line)."""
    text = raw.decode("utf-8", "replace").removeprefix("\ufeff")
    return len(BREAK.split(text))


def check_diagnostics(raw: bytes, file: str, diagnostics: list[Diagnostic]) -> None:
    lines = BREAK.split(raw.decode("utf-8", "replace").removeprefix("\ufeff"))
    for d in diagnostics:
        shown = f"{d.location()}: {d.code}: {d.message}"
        assert d.file == file, shown
        assert isinstance(d.severity, Severity), shown
        assert CODE.match(d.code), shown
        assert d.message and "Traceback" not in d.message, shown
        assert all(isinstance(p, str | int) for p in d.path), shown
        if d.code in WHOLE_FILE:
            assert (d.line, d.col) == (0, 0), shown
            continue
        assert 1 <= d.line <= len(lines), f"{shown} (the file has {len(lines)} lines)"
        assert 1 <= d.col <= len(lines[d.line - 1]) + 1, f"{shown} ({lines[d.line - 1]!r})"


def check_stock(raw: bytes, file: str = "stocks/s.yaml") -> list[Diagnostic]:
    """Every property of one stock file; returns its diagnostics for further checks."""
    loaded, diagnostics = load_stock_file(raw, file)
    check_diagnostics(raw, file, diagnostics)
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    assert (loaded is None) == bool(errors), diagnostics
    if loaded is not None:
        assert 1 <= loaded.line <= line_count(raw)
    _, again = load_stock_file(raw, file)
    assert [d.to_data() for d in again] == [d.to_data() for d in diagnostics]
    return diagnostics


def check_project(raw: bytes) -> list[Diagnostic]:
    with tempfile.TemporaryDirectory(prefix="adversarial-") as tmp:
        path = Path(tmp) / "reconciler.yaml"
        path.write_bytes(raw)
        project, diagnostics = load_project(path, "reconciler.yaml")
        check_diagnostics(raw, "reconciler.yaml", diagnostics)
        errors = [d for d in diagnostics if d.severity is Severity.ERROR]
        assert (project is None) == bool(errors), diagnostics
        _, again = load_project(path, "reconciler.yaml")
        assert [d.to_data() for d in again] == [d.to_data() for d in diagnostics]
        return diagnostics


# --- scalars --------------------------------------------------------------------------------

ODD_CHARS = [
    "\u200f",  # right-to-left mark
    "\u202e",  # right-to-left override
    "\u200d",  # zero-width joiner
    "\u0301",  # combining acute accent
    "\ufeff",  # BOM inside the text
    "\u00a0",  # no-break space
    "\u3000",  # ideographic space
    "\u2028",  # line separator (a line break to libyaml)
    "\x85",  # next line (likewise)
    "\x7f",
    "\x01",
    "\x1b",
    "\t",
    "\ufffe",
    "😀",
    "🎉",
    "\U0001f468\u200d\U0001f469",
    "中",
    "ａ",
    "_",
    "|",
    "#",
    ":",
    "'",
    '"',
    "\\",
]
PLAIN_WORDS = [
    "favor", "busifavor", "NORMAL", "yes", "no", "on", "off", "y", "n", "~", "null", "Null",
    "NULL", "true", "True", "FALSE", "0x1F", "0o17", "0b101", "010", "1_000", "1e3", "1E-3",
    ".inf", "-.Inf", ".nan", ".NaN", "1.5", "-0", "+1", "0.", ".5", "2027-03-01",
    "2027-03-01T00:00:00+08:00", "2027-03-01 00:00:00", "2027-03-01T00:00:00", "12:30:00",
    "1900000001", "=", "<<", "!", "&a", "*a", "*undefined", "@x", "`x", "%x", "|", ">", "-", "?",
    "- x", "a: b", "[x", "{x", "x]", "#x", "x #y", "'x", '"x', "中文", "COLOR010",
]  # fmt: skip
TAGS = ["!!str", "!!int", "!!float", "!!bool", "!!null", "!!binary", "!!set", "!!omap", "!!map",
        "!!seq", "!!timestamp", "!foo", "!", "!<tag:yaml.org,2002:str>", "!!python/object:os.system"]  # fmt: skip

odd_text = st.lists(
    st.one_of(st.sampled_from(ODD_CHARS), st.characters(codec="utf-8")), max_size=12
).map("".join)
numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.integers(19, 110).map(lambda n: "1" + "0" * n),
    st.integers(4000, 6000).map(lambda n: "9" * n),
    st.integers(1, 5000).map(lambda n: "0x" + "f" * n),
    st.integers(1, 400).map(lambda n: "1e" + str(n)),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)


def double_quoted(text: str, ascii_only: bool) -> str:
    # JSON strings are YAML double-quoted scalars, except that ensure_ascii writes emoji as
    # surrogate-pair escapes, which YAML refuses: both are worth feeding in.
    return json.dumps(text, ensure_ascii=ascii_only)


def single_quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


scalar_tokens = st.one_of(
    st.sampled_from(PLAIN_WORDS),
    numbers,
    odd_text,
    st.builds(double_quoted, odd_text, st.booleans()),
    st.builds(single_quoted, odd_text),
    st.builds(
        lambda tag, word: f"{tag} {word}", st.sampled_from(TAGS), st.sampled_from(PLAIN_WORDS)
    ),
)


def _field_names() -> list[str]:
    names: set[str] = set()

    def walk(schema: Any) -> None:
        if isinstance(schema, dict):
            names.update(schema.get("properties", {}))
            for value in schema.values():
                walk(value)
        elif isinstance(schema, list):
            for value in schema:
                walk(value)

    for model in (FavorStock, BusifavorStock, Project):
        walk(model.model_json_schema())
    return sorted(names)


FIELD_NAMES = _field_names()
key_tokens = st.one_of(
    st.sampled_from(FIELD_NAMES),
    st.sampled_from(FIELD_NAMES).map(lambda k: k[:-1] if len(k) > 2 else k + "s"),  # typos
    scalar_tokens,
    st.sampled_from(["<<", "[a, b]", "{a: 1}", "? x", "1", "~", "true", "1.5", "out_request_no"]),
)
anchor_names = st.sampled_from(["a", "b", "x1", "id001"])


# --- node trees, rendered in random styles --------------------------------------------------
# A node is ("scalar", text) | ("alias", name) | ("literal", text) | ("anchor", name, node) |
# ("tag", tag, node) | ("seq", [node], flow) | ("map", [(key, node)], flow).


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.tuples(st.just("seq"), st.lists(children, max_size=5), st.booleans()),
        st.tuples(
            st.just("map"), st.lists(st.tuples(key_tokens, children), max_size=5), st.booleans()
        ),
        st.tuples(st.just("anchor"), anchor_names, children),
        st.tuples(st.just("tag"), st.sampled_from(TAGS), children),
    )


leaves = st.one_of(
    st.tuples(st.just("scalar"), scalar_tokens),
    st.tuples(st.just("alias"), anchor_names),
    st.tuples(st.just("literal"), odd_text),
)
trees = st.recursive(leaves, _extend, max_leaves=25)


def inline(node: Any) -> str:
    kind = node[0]
    if kind == "scalar":
        return str(node[1])
    if kind == "alias":
        return f"*{node[1]}"
    if kind == "literal":
        return double_quoted(node[1], False)
    if kind == "anchor":
        return f"&{node[1]} {inline(node[2])}"
    if kind == "tag":
        return f"{node[1]} {inline(node[2])}"
    if kind == "seq":
        return "[" + ", ".join(inline(c) for c in node[1]) + "]"
    return "{" + ", ".join(f"{k}: {inline(v)}" for k, v in node[1]) + "}"


def block(node: Any, indent: int) -> tuple[str, list[str]] | None:
    """(properties for the parent's line, lines) for a block node; None for an inline one."""
    kind, pad = node[0], " " * indent
    if kind in ("anchor", "tag"):
        inner = block(node[2], indent)
        if inner is None:
            return None
        prop = f"&{node[1]}" if kind == "anchor" else str(node[1])
        return f" {prop}{inner[0]}", inner[1]
    if kind == "literal":
        body = node[1].replace("\r", "").split("\n")
        return " |", [f"{pad}{line}" for line in body]
    if kind not in ("seq", "map") or node[2] or not node[1]:
        return None
    lines: list[str] = []
    for item in node[1]:
        lead, value = ("- ", item) if kind == "seq" else (f"{item[0]}: ", item[1])
        sub = block(value, indent + 2)
        if sub is None:
            lines.append(pad + lead + inline(value))
        else:
            lines.append(pad + lead.rstrip() + sub[0])
            lines += sub[1]
    return "", lines


def render(node: Any) -> str:
    top = block(node, 0)
    if top is None:
        return inline(node) + "\n"
    head = top[0].strip()
    return (head + "\n" if head else "") + "\n".join(top[1]) + "\n"


KIND_TOKENS = ["favor", "busifavor", "Favor", "''", "😀", "[favor]", "~", "1"]
stock_like_trees = st.builds(
    lambda id_, kind, merchant, spec, extra: (
        "map",
        [("id", id_), ("kind", ("scalar", kind)), ("merchant", merchant), ("spec", spec), *extra],
        False,
    ),
    st.one_of(st.just(("scalar", "a-stock")), leaves),
    st.sampled_from(KIND_TOKENS),
    st.one_of(st.just(("scalar", "'1900000001'")), leaves),
    trees,
    st.lists(st.tuples(key_tokens, trees), max_size=2),
)


# --- mutations of the repository's examples ----------------------------------------------------

NASTY_VALUES: list[Any] = [
    None, [], {}, "", " ", 0, -1, 10**30, 2**64, 2**63, 1.5, float("1e308"), True, False, "😀",
    "春季🎉", "a" * 5000, "\u202e1900000001", "１９００", "\x01", "\t", "yes", "NORMAL_",
    [None], [[[]]], {"a": {"b": {"c": None}}}, "2027-02-30T00:00:00+08:00",
    "2027-03-01T00:00:00", "2027-03-01", 20000000.0, "20000000",
]  # fmt: skip


def leaf_paths(data: Any, path: FieldPath = ()) -> Iterator[FieldPath]:
    yield path
    if isinstance(data, dict):
        for k, v in data.items():
            yield from leaf_paths(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from leaf_paths(v, (*path, i))


def string_paths(data: Any) -> list[FieldPath]:
    return [p for p in leaf_paths(data) if isinstance(get(data, p), str)]


def get(data: Any, path: FieldPath) -> Any:
    for part in path:
        data = data[part]
    return data


def put(data: Any, path: FieldPath, value: Any) -> None:
    get(data, path[:-1])[path[-1]] = value


def delete(data: Any, path: FieldPath) -> None:
    del get(data, path[:-1])[path[-1]]


TIME_TEXTS = [
    "2027-03-01T00:00:00+08:00", "2027-06-01T00:00:00Z", "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00", "2027-03-01T00:00:00.123456789+08:00", "2027-13-01T00:00:00Z",
]  # fmt: skip
ENUM_TEXTS = ["NORMAL", "DISCOUNT", "EXCHANGE", "MINI_PROGRAMS", "OFF_LINE", "COLOR010", "Color010"]


def same_type(value: Any) -> st.SearchStrategy[Any]:
    """Another value of the kind the field holds, often in range: exercises the rules."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        edges = [0, 1, 5, 60, 86400, 86401, 2**32, 2**63, 2**64 - 1, 2**64]
        return st.one_of(
            st.integers(-10, 100_000), st.sampled_from(edges), st.integers(-(2**66), 2**66)
        )
    if isinstance(value, str):
        return st.one_of(st.text(max_size=30), st.sampled_from(TIME_TEXTS + ENUM_TEXTS))
    if isinstance(value, list):
        return st.lists(st.one_of(st.integers(-5, 10), st.text(max_size=8)), max_size=60)
    return st.none()


@st.composite
def mutated_data(draw: st.DrawFn) -> dict[str, Any]:
    data = example(draw(st.sampled_from(sorted(EXAMPLES))))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in leaf_paths(data) if p]
        path = draw(st.sampled_from(paths))
        op = draw(
            st.sampled_from(["set", "same_type", "delete", "typo", "unknown", "wrap", "emoji"])
        )
        if op == "same_type":
            put(data, path, draw(same_type(get(data, path))))
        elif op == "set":
            put(data, path, copy.deepcopy(draw(st.sampled_from(NASTY_VALUES))))
        elif op == "delete":
            delete(data, path)
        elif op == "wrap":
            put(data, path, [get(data, path)])
        elif op == "emoji":
            put(data, path, f"{get(data, path)}😀")
        else:
            parent = get(data, path[:-1])
            if isinstance(parent, dict) and isinstance(path[-1], str):
                name = path[-1] if op == "typo" else draw(st.sampled_from(FIELD_NAMES))
                new = name[1:] + name[0] if op == "typo" else name
                parent[new + ("_" if new in parent else "")] = parent.pop(path[-1])
    return data


def _crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


TEXT_EDITS: dict[str, Callable[[str, int], str]] = {
    "crlf": lambda t, _: _crlf(t),
    "cr": lambda t, _: t.replace("\n", "\r"),
    "bom": lambda t, _: "\ufeff" + t,
    "yaml11": lambda t, _: "%YAML 1.1\n---\n" + t,
    "yaml12": lambda t, _: "%YAML 1.2\n---\n" + t,
    "second_document": lambda t, _: t + "---\n" + t,
    "document_end": lambda t, _: t + "...\n",
    "truncate": lambda t, n: t[: n % (len(t) + 1)],
    "tab": lambda t, n: _edit_line(t, n, lambda line: "\t" + line.lstrip(" ")),
    "indent": lambda t, n: _edit_line(t, n, lambda line: " " + line),
    "dedent": lambda t, n: _edit_line(t, n, lambda line: line[1:]),
    "duplicate_line": lambda t, n: _edit_line(t, n, lambda line: line + "\n" + line),
    "drop_line": lambda t, n: _edit_line(t, n, lambda line: ""),
    "anchor": lambda t, n: _edit_line(t, n, lambda line: line.replace(": ", ": &a ", 1)),
    "alias": lambda t, n: _edit_line(t, n, lambda line: re.sub(r": .*", ": *a", line)),
    "merge": lambda t, n: _edit_line(t, n, lambda line: line + "\n" + re.sub(r"\S.*", "<<: *a", line)),
    "odd_char": lambda t, n: t[: n % (len(t) + 1)] + ODD_CHARS[n % len(ODD_CHARS)] + t[n % (len(t) + 1) :],
}  # fmt: skip


def _edit_line(text: str, n: int, change: Callable[[str], str]) -> str:
    lines = text.split("\n")
    i = n % len(lines)
    lines[i] = change(lines[i])
    return "\n".join(lines)


def _bytes_edit(raw: bytes, ops: list[tuple[int, int, bytes]]) -> bytes:
    for op, pos, chunk in ops:
        at = pos % (len(raw) + 1)
        if op == 0:
            raw = raw[:at] + chunk + raw[at:]
        elif op == 1:
            raw = raw[:at] + raw[at + len(chunk) :]
        else:
            raw = raw[:at] + chunk + raw[at + len(chunk) :]
    return raw


INVALID_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe4\xb8", b"\x80", b"\xf4\x90\x80\x80"]
example_texts = st.sampled_from(sorted(EXAMPLES)).map(
    lambda kind: EXAMPLES[kind].read_text(encoding="utf-8")
)
byte_ops = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.integers(0, 10**6),
        st.one_of(st.binary(min_size=1, max_size=8), st.sampled_from(INVALID_UTF8)),
    ),
    min_size=1,
    max_size=4,
)
raw_inputs = st.one_of(
    st.binary(max_size=600),
    st.builds(lambda text, ops: _bytes_edit(text.encode(), ops), example_texts, byte_ops),
    st.builds(
        lambda text, codec: text.encode(codec, "replace"),
        example_texts,
        st.sampled_from(["utf-16", "utf-16-le", "utf-32", "gbk", "big5", "latin-1", "cp1252"]),
    ),
)


@st.composite
def text_mutations(draw: st.DrawFn) -> bytes:
    source = draw(st.one_of(example_texts, mutated_data().map(dump)))
    for name in draw(st.lists(st.sampled_from(sorted(TEXT_EDITS)), max_size=3)):
        source = TEXT_EDITS[name](source, draw(st.integers(0, 10**6)))
    return source.encode("utf-8", "surrogatepass")


# --- bombs, depth, size -----------------------------------------------------------------------


def laughs(width: int, depth: int, merge: bool) -> str:
    lines = ["a0: &a0 [lol]"]
    for i in range(1, depth):
        refs = [f"*a{i - 1}"] * width
        if merge:
            inner = ", ".join(f"k{j}: {r}" for j, r in enumerate(refs))
            lines.append(f"a{i}: &a{i} {{<<: {{{inner}}}}}")
        else:
            lines.append(f"a{i}: &a{i} [{', '.join(refs)}]")
    return "\n".join(lines) + "\n"


def deep_block(depth: int, step: int, style: str) -> str:
    out = []
    for i in range(depth):
        pad = " " * (i * step)
        out.append(f"{pad}k{i}:" if style == "map" else f"{pad}- ")
    return "\n".join(out) + " x\n"


heavy_inputs = st.one_of(
    st.builds(laughs, st.integers(2, 12), st.integers(2, 14), st.booleans()),
    st.builds(
        lambda n, opener, closed: (
            "a: " + opener * n + (("]" if opener == "[" else "}") * n if closed else "")
        ),
        st.integers(10, 120_000),
        st.sampled_from(["[", "{", "{a: "]),
        st.booleans(),
    ),
    st.builds(
        deep_block, st.integers(10, 3000), st.integers(1, 3), st.sampled_from(["map", "seq"])
    ),
    st.builds(lambda n: "- " * n + "x\n", st.integers(10, 50_000)),
    st.builds(
        lambda unit, n: unit * n,
        st.sampled_from(
            ["k: v\n", "- 1\n", "[1, 2]\n", "a: [1, 2]\n", "---\n", "# c\n", "\n", "x"]
        ),
        st.integers(1000, 300_000),
    ),
    st.builds(lambda n: "a: [" + "1, " * n + "1]\n", st.integers(10_000, 300_000)),
    st.builds(lambda n: "a: " + "x" * n + "\n", st.integers(1000, 1_100_000)),
).map(str.encode)


# --- meaning-preserving rewrites --------------------------------------------------------------


def _dump_with(data: Any, **options: Any) -> str:
    y = YAML()
    y.width = 4096
    y.default_flow_style = options.get("flow", False)
    if "indent" in options:
        y.indent(**options["indent"])
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


def _shuffled(data: Any, seed: int) -> Any:
    import random

    rng = random.Random(seed)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            items = list(value.items())
            rng.shuffle(items)
            return {k: walk(v) for k, v in items}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(data)


def _quoted(data: Any, double: bool) -> Any:
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            return DoubleQuotedScalarString(value) if double else SingleQuotedScalarString(value)
        return value

    return walk(data)


def _commented(text: str) -> str:
    # Every line of a dumped example is a key, a list item or a one-line value: a trailing
    # comment cannot change any of them.
    return "# leading comment\n" + "\n".join(
        f"{line}  # comment {i}" if line.strip() else line
        for i, line in enumerate(text.split("\n"))
    )


def _anchored(text: str) -> str:
    """merchant: &m '...' and belong_merchant: *m, when they hold the same value."""
    m = re.search(r"^merchant: ('\d+')$", text, re.MULTILINE)
    if m is None or f"belong_merchant: {m.group(1)}" not in text:
        return text
    text = text.replace(m.group(0), f"merchant: &m {m.group(1)}", 1)
    return text.replace(f"belong_merchant: {m.group(1)}", "belong_merchant: *m")


REWRITES: dict[str, Callable[[Any, int], str]] = {
    # Quoted: libyaml refuses ':' inside a plain scalar in flow style ({a: 7:00}), which
    # YAML 1.2 allows and ruamel's emitter writes (see tests/nasty/flow-colon-in-plain.yaml).
    "flow": lambda d, _: _dump_with(_quoted(d, True), flow=True),
    "indent4": lambda d, _: _dump_with(d, indent={"mapping": 4, "sequence": 6, "offset": 4}),
    "shuffle": lambda d, seed: dump(_shuffled(d, seed)),
    "double_quotes": lambda d, _: dump(_quoted(d, True)),
    "single_quotes": lambda d, _: dump(_quoted(d, False)),
    "comments": lambda d, _: _commented(dump(d)),
    "anchors": lambda d, _: _anchored(dump(d)),
}
FRAMES: dict[str, Callable[[str], str]] = {
    "none": lambda t: t,
    "crlf": _crlf,
    "bom": lambda t: "\ufeff" + t,
    "yaml12": lambda t: "%YAML 1.2\n---\n" + t,
    "markers": lambda t: "---\n" + t + "...\n",
    "blank_lines": lambda t: "\n\n" + t.replace("\n", "\n\n"),
    "trailing_blanks": lambda t: t.replace("\n", "   \n"),
    "bom_crlf_yaml12": lambda t: "\ufeff" + _crlf("%YAML 1.2\n---\n" + t),
}


# --- the tests --------------------------------------------------------------------------------


def _raw_bytes(raw: bytes) -> None:
    check_stock(raw)


@quick(60)
@given(raw_inputs)
def test_raw_bytes(raw: bytes) -> None:
    _raw_bytes(raw)


@long(2500)
@given(raw_inputs)
def test_raw_bytes_long(raw: bytes) -> None:
    _raw_bytes(raw)


def _generated(tree: Any) -> None:
    check_stock(render(tree).encode("utf-8", "surrogatepass"))


@quick(70)
@given(st.one_of(stock_like_trees, trees))
def test_generated_yaml(tree: Any) -> None:
    _generated(tree)


@long(2500)
@given(st.one_of(stock_like_trees, trees))
def test_generated_yaml_long(tree: Any) -> None:
    _generated(tree)


@quick(70)
@given(text_mutations())
# Found by these tests: libyaml placed both positions past the end of the file.
@hypothesis.example(b"id:\nk")
@hypothesis.example(b"%YAML 1.2\n---\n%YAML 1.1\n---")
def test_mutated_examples(raw: bytes) -> None:
    check_stock(raw)


@long(2500)
@given(text_mutations())
def test_mutated_examples_long(raw: bytes) -> None:
    check_stock(raw)


@st.composite
def emoji_cases(draw: st.DrawFn) -> tuple[bytes, FieldPath]:
    data = (
        draw(mutated_data())
        if draw(st.booleans())
        else example(draw(st.sampled_from(sorted(EXAMPLES))))
    )
    paths = string_paths(data)
    if not paths:
        data["spec"] = {"stock_name": ""}
        paths = [("spec", "stock_name")]
    path = draw(st.sampled_from(paths))
    at = draw(st.integers(0, len(get(data, path))))
    char = draw(st.sampled_from(["😀", "🎉", "\U0001f468\u200d\U0001f469", "𠀀", "\U0010fffd"]))
    put(data, path, get(data, path)[:at] + char + get(data, path)[at:])
    return dump(data).encode(), path


def _emoji(case: tuple[bytes, FieldPath]) -> None:
    raw, path = case
    diagnostics = check_stock(raw)
    named = [d for d in diagnostics if d.code == "four_byte_char" and d.path == path]
    assert named, (format_path(path), diagnostics)
    assert all(d.severity is Severity.ERROR for d in named)


@quick(30)
@given(emoji_cases())
def test_emoji_is_an_error_naming_the_field(case: tuple[bytes, FieldPath]) -> None:
    _emoji(case)


@long(1000)
@given(emoji_cases())
def test_emoji_is_an_error_naming_the_field_long(case: tuple[bytes, FieldPath]) -> None:
    _emoji(case)


def _rewrites(kind: str, rewrite: str, frame: str, seed: int) -> None:
    original, expected = load_stock_file(EXAMPLES[kind].read_bytes(), "s.yaml")
    assert original is not None
    text = FRAMES[frame](REWRITES[rewrite](example(kind), seed))
    loaded, diagnostics = load_stock_file(text.encode(), "s.yaml")
    assert loaded is not None, (text, diagnostics)
    assert loaded.stock == original.stock
    assert [(d.code, d.path) for d in diagnostics] == [(d.code, d.path) for d in expected]
    # The repository's file itself, comments and all, survives the framing too.
    framed = FRAMES[frame](EXAMPLES[kind].read_text(encoding="utf-8"))
    again, _ = load_stock_file(framed.encode(), "s.yaml")
    assert again is not None and again.stock == original.stock


rewrite_args = (
    st.sampled_from(sorted(EXAMPLES)),
    st.sampled_from(sorted(REWRITES)),
    st.sampled_from(sorted(FRAMES)),
    st.integers(0, 2**32),
)


@quick(40)
@given(*rewrite_args)
def test_meaning_preserving_rewrites_stay_valid(
    kind: str, rewrite: str, frame: str, seed: int
) -> None:
    _rewrites(kind, rewrite, frame, seed)


@long(1000)
@given(*rewrite_args)
def test_meaning_preserving_rewrites_stay_valid_long(
    kind: str, rewrite: str, frame: str, seed: int
) -> None:
    _rewrites(kind, rewrite, frame, seed)


@quick(30)
@given(heavy_inputs)
def test_bombs_deep_nesting_and_huge_files(raw: bytes) -> None:
    check_stock(raw)


@long(1000)
@given(heavy_inputs)
def test_bombs_deep_nesting_and_huge_files_long(raw: bytes) -> None:
    check_stock(raw)


def _max_depth(text: str) -> int:
    """How deep the parser's events go before the end or the first syntax error."""
    depth = deepest = 0
    try:
        for event in events(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                deepest = max(deepest, depth)
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except YAMLError:
        pass
    return deepest


nesting_texts = st.one_of(
    trees.map(render),
    st.builds(deep_block, st.integers(1, 60), st.integers(1, 3), st.sampled_from(["map", "seq"])),
    st.builds(lambda n: "- " * n + "x\n", st.integers(1, 100)),
    st.builds(
        lambda n: "a:\n" + "".join(" " * (2 * i) + "- k:\n" for i in range(n)), st.integers(1, 60)
    ),
    st.builds(lambda n: "? " * n + "x\n", st.integers(1, 60)),
    st.builds(lambda n: "- ? " * n + "x\n", st.integers(1, 60)),
)


def _bound(text: str) -> None:
    # The prescan is skipped when this bound is small; libyaml must then never nest deeper.
    assert _max_depth(text) <= nesting_bound(text), text
    # The reader asks only whether the bound passes a depth, which must agree with it.
    bound = nesting_bound(text)
    for depth in {0, 1, bound - 2, bound - 1, bound, bound + 1, 512}:
        assert may_nest_deeper(text, depth) is (bound > depth), (text, depth)


@quick(50)
@given(nesting_texts)
def test_nesting_bound_is_an_upper_bound(text: str) -> None:
    _bound(text)


@long(1000)
@given(nesting_texts)
def test_nesting_bound_is_an_upper_bound_long(text: str) -> None:
    _bound(text)


# --- project files ----------------------------------------------------------------------------

VALID_PROJECT = """\
# a project file that loads
stocks: stocks
state: .reconciler/state.json
api:
  base_url: http://127.0.0.1:8765
  connect_timeout_seconds: 5
  read_timeout_seconds: 15
  max_attempts: 5
concurrency: 16
plan_max_age_minutes: 1440
merchants:
  - mchid: "1900000001"
    serial_no: 5F1C72E2A8931B72A2E13AF8DEE92471EB397115
    private_key: {env: WECHATPAY_1900000001_PRIVATE_KEY}
    certificate: keys/apiclient_cert.pem
    wechatpay_public_key: {file: keys/pub_key.pem}
    wechatpay_public_key_id: PUB_KEY_ID_0114232134912410000000000000
    apiv3_key: {env: WECHATPAY_1900000001_APIV3_KEY}
    rate_limits:
      favor_create: {count: 60, per_seconds: 60}
"""
PROJECT_KEYS = [
    "stocks",
    "state",
    "api",
    "concurrency",
    "plan_max_age_minutes",
    "merchants",
    "version",
]
project_trees = st.builds(
    lambda entries: ("map", entries, False),
    st.lists(st.tuples(st.one_of(st.sampled_from(PROJECT_KEYS), key_tokens), trees), max_size=6),
)


@st.composite
def project_inputs(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return render(draw(project_trees)).encode("utf-8", "surrogatepass")
    text = VALID_PROJECT
    if choice == 1:
        data = YAML(typ="safe").load(text)
        paths = [p for p in leaf_paths(data) if p]
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(paths))
            with contextlib.suppress(KeyError, IndexError, TypeError):
                put(data, path, copy.deepcopy(draw(st.sampled_from(NASTY_VALUES))))
            paths = [p for p in leaf_paths(data) if p]
        text = dump(data)
    for name in draw(st.lists(st.sampled_from(sorted(TEXT_EDITS)), max_size=2)):
        text = TEXT_EDITS[name](text, draw(st.integers(0, 10**6)))
    return text.encode("utf-8", "surrogatepass")


def test_the_valid_project_is_valid() -> None:
    for frame in FRAMES.values():
        assert check_project(frame(VALID_PROJECT).encode()) == []


@quick(50)
@given(st.one_of(project_inputs(), raw_inputs, heavy_inputs))
def test_project_files(raw: bytes) -> None:
    check_project(raw)


@long(2000)
@given(st.one_of(project_inputs(), raw_inputs, heavy_inputs))
def test_project_files_long(raw: bytes) -> None:
    check_project(raw)


# --- `reconciler validate` over a generated directory ----------------------------------------

file_names = st.text(
    alphabet=st.sampled_from("abcXYZ019-_ .%,:中💥\n\t#'\""), min_size=1, max_size=10
).map(lambda s: s.replace("/", "_"))
file_contents = st.one_of(
    raw_inputs,
    text_mutations(),
    trees.map(render).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
directories = st.lists(
    st.tuples(
        st.sampled_from(["", "favor/", "deep/er/", ".hidden/"]),
        file_names,
        st.sampled_from([".yaml", ".yml", ".txt"]),
        file_contents,
    ),
    min_size=1,
    max_size=5,
)


def _validate(files: list[tuple[str, str, str, bytes]]) -> None:
    with tempfile.TemporaryDirectory(prefix="adversarial-") as tmp:
        root = Path(tmp) / "stocks"
        for folder, name, suffix, content in files:
            path = root / folder / (name + suffix)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        for fmt in ("text", "json", "github"):
            result = invoke(["validate", str(root), "--format", fmt])
            shown = f"validate --format {fmt} -> {result.exit_code}\n{result.output}"
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                shown,
                result.exception,
            )
            assert result.exit_code in (0, 1), shown
            assert "Traceback" not in result.output, shown
            if fmt == "json":
                doc = json.loads(result.stdout)
                errors = [d for d in doc["diagnostics"] if d["severity"] == "error"]
                assert doc["errors"] == len(errors)
                assert result.exit_code == (1 if errors else 0)
                for d in doc["diagnostics"]:
                    assert (d["line"] == 0) == (d["code"] in WHOLE_FILE | LOADER_WHOLE_FILE), d


@quick(15)
@given(directories)
def test_validate_command_on_generated_directories(
    files: list[tuple[str, str, str, bytes]],
) -> None:
    _validate(files)


@long(300)
@given(directories)
def test_validate_command_on_generated_directories_long(
    files: list[tuple[str, str, str, bytes]],
) -> None:
    _validate(files)


def test_repository_examples_are_the_baseline() -> None:
    """The rewrites above compare against these: they must load, without diagnostics."""
    for path in sorted((ROOT / "stocks").rglob("*.yaml")):
        loaded, diagnostics = load_stock_file(path.read_bytes(), path.name)
        assert loaded is not None and diagnostics == [], (path, diagnostics)
