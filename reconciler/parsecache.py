"""The parse cache: valid stock files, parsed and validated once, kept by content.

A plan over a large repository spends most of its time parsing YAML. The cache keeps, for each
stock file that loaded valid *without any diagnostic* (no error, no warning), what loading
produced: the plain data the model is validated from, the line of every key, the `id:` line
and the summary key. An entry is found by the SHA-256 of the file's bytes together with a
fingerprint of this reconciler (its version and the source of the package, so any change to
parsing, the schema or the rules starts afresh). A file with diagnostics is never cached, so
`validate` and `plan` report its errors from a fresh parse, with file:line:col, every time.

A hit is not trusted blindly: its data is validated into the model again (cheap next to
parsing YAML), so a cache cannot make an invalid stock valid; an entry that does not fit is a
miss. The cache is one file, `stocks.cache`, whose first line names the format, the
fingerprint and the SHA-256 of the rest: a damaged file, or one written by another version,
is ignored and replaced. It is written whole with `fsutil.write_atomic`, so concurrent runs
never see a torn file (the last one wins; an entry lost that way only costs a parse). It
keeps the entries the last run used, so it does not grow without bound.

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.fsutil import write_atomic

CACHE_FORMAT = 1
CACHE_FILE = "stocks.cache"
CACHE_VARIABLE = "RECONCILER_CACHE_DIR"
DEFAULT_DIR = Path(".reconciler") / "cache"

Entry = dict[str, Any]
"""kind, data, line, paths, lines, spec_key: what a valid file loaded to (JSON values)."""


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


class ParseCache:
    """The cache in `directory`: `get` entries by file digest, `put` new ones, `save` once."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / CACHE_FILE
        self._fingerprint = fingerprint()
        self._entries = self._read()
        self._used: dict[str, Entry] = {}
        self.hits = 0
        self.misses = 0

    def key(self, digest: str) -> str:
        """The entry key of a file whose bytes have SHA-256 `digest`."""
        return hashlib.sha256(f"{self._fingerprint}\0{digest}".encode()).hexdigest()

    def _read(self) -> dict[str, Entry]:
        try:
            raw = self.path.read_bytes()
        except OSError:
            return {}
        head, _, body = raw.partition(b"\n")
        try:
            header = json.loads(head)
            if (
                not isinstance(header, dict)
                or header.get("format") != CACHE_FORMAT
                or header.get("fingerprint") != self._fingerprint
                or header.get("sha256") != hashlib.sha256(body).hexdigest()
            ):
                return {}
            entries = json.loads(body)
        except ValueError:
            return {}
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if isinstance(entry, dict):
            self.hits += 1
            self._used[key] = entry
            return entry
        self.misses += 1
        return None

    def put(self, key: str, entry: Entry) -> None:
        self._used[key] = entry

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
        used, read = self._used.keys(), self._entries.keys()
        if used == read:
            return
        differing = len(used - read) + len(read - used)
        if read and differing <= max(REWRITE_MIN, len(used) // REWRITE_SHARE):
            return
        body = json.dumps(self._used, ensure_ascii=False, separators=(",", ":")).encode()
        header = {
            "format": CACHE_FORMAT,
            "fingerprint": self._fingerprint,
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(header).encode() + b"\n" + body)
        except OSError:
            return
        self._entries = dict(self._used)


def open_cache(root: Path, environ: Mapping[str, str] | None = None) -> ParseCache | None:
    """The project's parse cache, or None when it is turned off."""
    directory = cache_dir(root, os.environ if environ is None else environ)
    return None if directory is None else ParseCache(directory)
