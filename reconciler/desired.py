"""A stock as the files want it (pure): the validated stock and where it came from.

The loader produces these; the planner and the engine consume them without knowing how a file
is read.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

from reconciler.codes import CodePool
from reconciler.spec.images import ImageFile, ImageRole, image_files
from reconciler.spec.stock import Stock


class FieldLines:
    """The line of every mapping key of a stock file, by dotted path (`spec.stock_use_rule`);
    lists are not entered. Two tuples rather than a dict: files with the same keys in the same
    order share one `paths` tuple, so 10,000 stocks cost about 300 bytes each.

    From the parse cache the lines come as the cache holds them (comma-separated numbers) and
    are read on first use: a plan needs the lines of the stocks it changes only."""

    __slots__ = ("_csv", "_lines", "paths")

    def __init__(self, paths: tuple[str, ...] = (), lines: tuple[int, ...] = ()) -> None:
        self.paths = paths
        self._lines: tuple[int, ...] | None = lines
        self._csv = b""

    @classmethod
    def from_csv(cls, paths: tuple[str, ...], csv: bytes) -> FieldLines:
        """Lines written as `12,13,15`, one for each of `paths`; read when first asked for
        (numbers that do not read, or do not match the paths, count as no lines at all)."""
        out = cls(paths)
        out._lines, out._csv = None, csv
        return out

    @property
    def lines(self) -> tuple[int, ...]:
        if self._lines is None:
            try:
                lines = tuple(map(int, self._csv.split(b","))) if self._csv else ()
            except ValueError:
                lines = ()
            self._lines = lines if len(lines) == len(self.paths) else ()
        return self._lines

    def csv(self) -> bytes:
        """The lines as the parse cache keeps them."""
        return self._csv if self._lines is None else ",".join(map(str, self._lines)).encode()

    def get(self, path: str) -> int | None:
        try:
            return self.lines[self.paths.index(path)]
        except (ValueError, IndexError):
            return None


@dataclass(frozen=True)
class Summary:
    """What the cross-file checks need of a valid stock; small, so that validating a large
    tree does not hold every model in memory."""

    id: str
    file: str
    line: int
    spec_key: str
    """sha256 over merchant, kind and spec: equal keys mean identical stocks."""
    merchant: str = ""
    codes: CodePool | None = None
    """The stock's code pool, for the checks across stocks (reconciler.codes)."""


@dataclass(frozen=True)
class DesiredStock:
    """A valid stock file as the planner takes it: the stock, and where it came from."""

    stock: Stock
    file: str
    line: int
    digest: str
    """sha256 of the file's bytes: a saved plan records it to notice edits."""
    lines: FieldLines = field(default_factory=lambda: FieldLines(), compare=False, repr=False)
    """Where each field is in the file, so that a plan can point at the field it is about."""
    codes: CodePool | None = field(default=None, compare=False, repr=False)
    """The code pool named by `codes: {file: ...}` (reconciler.codes), read with the file."""

    @functools.cached_property
    def images(self) -> tuple[tuple[str, ImageRole, ImageFile], ...]:
        """(dotted path, role, file reference) of every image field written as a file; found
        once per stock (the plan asks several times)."""
        return tuple(image_files(self.stock.spec))

    def naming_no_files(self) -> DesiredStock:
        """This stock, known to name no image file (so `images` need not look): the loader
        says so of a stock from the parse cache, which keeps no stock that names a file."""
        self.__dict__["images"] = ()
        return self

    def line_of(self, path: str) -> int:
        """The line of `path`, or of its nearest parent in the file; else the `id:` line."""
        while path:
            found = self.lines.get(path)
            if found is not None:
                return found
            path = path.rpartition(".")[0]
        return self.line

    def summary(self) -> Summary:
        key = f"{self.stock.merchant}\0{self.stock.kind}\0{self.stock.spec.model_dump_json()}"
        return Summary(
            self.stock.id,
            self.file,
            self.line,
            hashlib.sha256(key.encode()).hexdigest(),
            self.stock.merchant,
            self.codes,
        )
