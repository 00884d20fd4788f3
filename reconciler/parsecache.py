"""The parse cache: valid stock files, parsed and validated once, kept by content.

A plan over a large repository spends most of its time parsing YAML. The cache keeps, for each
stock file that loaded valid *without any diagnostic* (no error, no warning), what loading
produced: the plain data the model is validated from (as JSON), the line of every key, the
`id:` line and the summary key. An entry is found by the SHA-256 of the file's bytes; the
cache as a whole belongs to one fingerprint of this reconciler (its version and the source of
the package, named in the header, so any change to parsing, the schema or the rules starts
afresh). A file with diagnostics is never
cached, so `validate` and `plan` report its errors from a fresh parse, with file:line:col,
every time.

A hit is not trusted blindly: its data is validated into the model again (pydantic reads the
JSON and validates in one pass, cheap next to parsing YAML), so a cache cannot make an
invalid stock valid; an entry that does not fit is a miss.

The cache is one file, `stocks.cache`. Its first line names the format, the fingerprint and
the SHA-256 of the rest: a damaged file, or one written by another version, is ignored and
replaced. The rest is one line per entry, and one per layout (the field paths that stocks of
one shape share, written once):

    L <tab> layout id <tab> JSON list of the dotted paths
    E <tab> key <tab> kind <tab> id line <tab> summary key <tab> layout id <tab> lines <tab> JSON data

Only the entries a run looks up are parsed, so a large cache costs little more memory than
its bytes. It is written whole with `fsutil.write_atomic`, so concurrent runs never see a
torn file (the last one wins; an entry lost that way only costs a parse). It keeps the
entries the last run used, so it does not grow without bound.

Where: `.reconciler/cache/` beside reconciler.yaml (ignored by git), or the folder named by
RECONCILER_CACHE_DIR; RECONCILER_CACHE_DIR=off turns it off. CI can keep the folder between
runs (actions/cache; the workflow templates do). The cache holds the same data as the stock
files, no secrets.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler import __version__
from reconciler.fsutil import write_atomic

CACHE_FORMAT = 2
CACHE_FILE = "stocks.cache"
CACHE_VARIABLE = "RECONCILER_CACHE_DIR"
DEFAULT_DIR = Path(".reconciler") / "cache"


@dataclass(frozen=True)
class Entry:
    """What a valid file loaded to (the file's name is not part of it)."""

    kind: str
    line: int
    """The line of `id:`."""
    spec_key: str
    paths: tuple[str, ...]
    lines: bytes
    """The line of each of `paths`, comma-separated (`FieldLines.from_csv` reads them)."""
    data: bytes
    """The plain data the model is validated from, as UTF-8 JSON."""


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    """This reconciler: its version and the SHA-256 of every module of the package."""
    package = Path(__file__).resolve().parent
    h = hashlib.sha256(f"{__version__}\0{CACHE_FORMAT}\0".encode())
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def cache_dir(root: Path, environ: Mapping[str, str]) -> Path | None:
    """The cache folder for a project at `root`; None when RECONCILER_CACHE_DIR=off."""
    given = environ.get(CACHE_VARIABLE, "").strip()
    if given.lower() == "off":
        return None
    if given:
        return root / Path(given).expanduser()
    return root / DEFAULT_DIR


REWRITE_MIN = 16
REWRITE_SHARE = 200
"""A cache is rewritten when the files parsed again (or gone) exceed REWRITE_MIN and one in
REWRITE_SHARE of its entries; fewer are parsed again by the next run instead."""

_KEY = re.compile(r"[0-9a-f]{64}")


def _numbers(csv: bytes) -> bool:
    """Whether `csv` is empty or numbers separated by single commas (translate and find are
    C loops: this runs for every entry a run reads)."""
    return not csv.translate(None, b"0123456789,") and not (
        b",," in csv or csv.startswith(b",") or csv.endswith(b",")
    )


@functools.lru_cache(maxsize=64)
def _layout_id(paths: tuple[str, ...]) -> str:
    return hashlib.sha256("\0".join(paths).encode()).hexdigest()[:16]


def _layout_line(layout: str, paths: Sequence[str]) -> bytes:
    text = json.dumps(list(paths), ensure_ascii=False, separators=(",", ":"))
    return f"L\t{layout}\t{text}\n".encode()


class ParseCache:
    """The cache in `directory`: `get` entries by file digest, `put` new ones, `save` once."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / CACHE_FILE
        self._fingerprint = fingerprint()
        self._body = b""
        self._at: dict[str, int] = {}
        """Entry key -> where its line starts in `_body`."""
        self._layouts: dict[str, tuple[str, ...]] = {}
        self._read()
        self._used: dict[str, tuple[str, bytes | int]] = {}
        """Entry key -> (layout id, its line: new bytes, or where it is in `_body`)."""
        self._new_layouts: dict[str, tuple[str, ...]] = {}
        self._replaced = False
        self.hits = 0
        self.misses = 0

    def key(self, digest: str) -> str:
        """The entry key of a file whose bytes have SHA-256 `digest` (hex): the digest itself,
        as the header already ties every entry to this reconciler's fingerprint."""
        return digest

    def _read(self) -> None:
        try:
            raw = self.path.read_bytes()
        except OSError:
            return
        start = raw.find(b"\n") + 1
        try:
            header = json.loads(raw[:start])
        except (ValueError, RecursionError):
            return
        if (
            not start
            or not isinstance(header, dict)
            or header.get("format") != CACHE_FORMAT
            or header.get("fingerprint") != self._fingerprint
            or header.get("sha256") != hashlib.sha256(memoryview(raw)[start:]).hexdigest()
        ):
            return
        at: dict[str, int] = {}
        layouts: dict[str, tuple[str, ...]] = {}
        pos, size = start, len(raw)
        try:
            while pos < size:
                end = raw.index(b"\n", pos)
                tag = raw[pos : pos + 2]
                if tag == b"E\t":
                    at[raw[pos + 2 : pos + 66].decode()] = pos
                elif tag == b"L\t":
                    _, layout, text = raw[pos:end].split(b"\t", 2)
                    paths = json.loads(text)
                    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                        return
                    layouts[layout.decode()] = tuple(paths)
                else:
                    return
                pos = end + 1
        except (ValueError, RecursionError):  # a line cut short, a bad layout: not ours
            return
        self._body, self._at, self._layouts = raw, at, layouts

    def get(self, key: str) -> Entry | None:
        pos = self._at.get(key)
        found = self._entry(pos) if pos is not None else None
        if found is None or pos is None:
            self.misses += 1
            return None
        self.hits += 1
        entry, layout = found
        self._used[key] = (layout, pos)
        return entry

    def _entry(self, pos: int) -> tuple[Entry, str] | None:
        """The entry whose line starts at `pos`, and its layout id; None when it is damaged."""
        line = self._body[pos : self._body.index(b"\n", pos)]
        parts = line.split(b"\t", 7)
        if len(parts) != 8:
            return None
        _, _, kind, id_line, spec_key, layout_id, lines, data = parts
        try:
            layout, key = layout_id.decode(), spec_key.decode()
            entry = Entry(kind.decode(), int(id_line), key, self._layouts[layout], lines, data)
        except (ValueError, KeyError):
            return None
        # The numbers are converted when a plan asks for a line (FieldLines), and checked here.
        count = lines.count(b",") + 1 if lines else 0
        if len(entry.paths) != count or not _numbers(lines) or not _KEY.fullmatch(key):
            return None
        return entry, layout

    def put(self, key: str, entry: Entry) -> None:
        if key in self._at:
            self._replaced = True  # its line did not read: rewrite, or it is parsed every run
        layout = _layout_id(entry.paths)
        if layout not in self._layouts:
            self._new_layouts.setdefault(layout, entry.paths)
        head = f"E\t{key}\t{entry.kind}\t{entry.line}\t{entry.spec_key}\t{layout}\t"
        self._used[key] = (layout, head.encode() + entry.lines + b"\t" + entry.data + b"\n")

    def drop(self, key: str) -> None:
        """Forget an entry `get` gave that turned out not to fit: a miss, not written back."""
        if self._used.pop(key, None) is not None:
            self.hits -= 1
            self.misses += 1

    def save(self) -> None:
        """Write the entries this run used, when they differ from what was read by more than a
        few: rewriting the whole cache for the one file a pull request changed costs more than
        parsing that file again next time (REWRITE_SHARE). A cache that cannot be written is
        only a slower next run: errors are ignored."""
        used, read = self._used.keys(), self._at.keys()
        if used == read and not self._replaced:
            return
        differing = len(used - read) + len(read - used)
        if (
            read
            and not self._replaced
            and differing <= max(REWRITE_MIN, len(used) // REWRITE_SHARE)
        ):
            return
        layouts = {**self._layouts, **self._new_layouts}
        # The header goes first, once the checksum of the rest is known.
        chunks: list[bytes | memoryview] = [b""]
        chunks += [
            _layout_line(layout, layouts[layout])
            for layout in sorted({layout for layout, _ in self._used.values()})
        ]
        body, digest = self._body, hashlib.sha256()
        view = memoryview(body)  # slices of it are not copies
        chunks += [
            line if isinstance(line, bytes) else view[line : body.index(b"\n", line) + 1]
            for _, line in self._used.values()
        ]
        for chunk in chunks:
            digest.update(chunk)
        header = {"format": CACHE_FORMAT, "fingerprint": self._fingerprint}
        chunks[0] = json.dumps({**header, "sha256": digest.hexdigest()}).encode() + b"\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, b"".join(chunks))
        except OSError:
            return


CHECKED_FILE = "states.checked"
CHECKED_KEEP = 16


class CheckedStates:
    """The state files whose every recorded body this reconciler found to match its digest.

    Loading a state checks each stock's `sent_digest` against its `sent_body`, which means
    serialising every body again: about 0.12 s of a 10,000-stock plan. The outcome depends
    only on the file's bytes and on this reconciler, so once a file passed, the SHA-256 of
    the fingerprint and the bytes is kept here, and a file with the same bytes skips that
    one check (everything else is validated as usual). Any other file, a changed one, one
    with a journal, or one read by another version is checked in full.

    The file `states.checked` in the cache folder holds the last CHECKED_KEEP such digests,
    one per line. A file that cannot be read or written only means a full check; so it is
    written without fsync (a write lost in a crash costs one full check)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / CHECKED_FILE

    @staticmethod
    def key(raw: bytes) -> str:
        return hashlib.sha256(f"{fingerprint()}\0".encode() + raw).hexdigest()

    def keys(self) -> list[str]:
        """The digests kept (oldest first); none when the file is missing or unreadable."""
        try:
            text = self.path.read_text(encoding="ascii")
        except (OSError, ValueError):
            return []
        return [line for line in text.split("\n") if _KEY.fullmatch(line)]

    def add(self, key: str, known: list[str]) -> None:
        """Remember `key`, given the `keys()` read before (the file is read once a load)."""
        kept = [k for k in known if k != key][-(CHECKED_KEEP - 1) :]
        content = "".join(f"{k}\n" for k in [*kept, key]).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, content, durable=False)
        except OSError:
            return


def open_checked_states(root: Path, environ: Mapping[str, str]) -> CheckedStates | None:
    """Where the project at `root` keeps `CheckedStates`; None when the cache is turned off."""
    directory = cache_dir(root, environ)
    return None if directory is None else CheckedStates(directory)


def open_cache(root: Path, environ: Mapping[str, str] | None = None) -> ParseCache | None:
    """The project's parse cache, or None when it is turned off."""
    directory = cache_dir(root, os.environ if environ is None else environ)
    return None if directory is None else ParseCache(directory)
