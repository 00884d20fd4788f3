"""Finding and loading stock files under `stocks/`: one stock per YAML file, at any depth."""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import re
from collections.abc import Generator, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pydantic_core

from reconciler.codes import CodePool, capacity_problems, duplicates_across, read_pool
from reconciler.desired import DesiredStock, FieldLines, Summary
from reconciler.diagnostic_messages import coded, msg
from reconciler.diagnostics import Diagnostic, Severity, sort_diagnostics
from reconciler.kinds import KINDS
from reconciler.parsecache import Entry, ParseCache
from reconciler.spec.findings import Findings
from reconciler.spec.images import image_files
from reconciler.spec.rules_common import four_byte_text
from reconciler.spec.rules_partner import Partners
from reconciler.spec.stock import Stock
from reconciler.validation import findings_to_diagnostics, validate_model
from reconciler.yamlsource import Document, key_lines, read_document, read_source

SUFFIXES = (".yaml", ".yml")
PARALLEL_THRESHOLD = 500
_FOUR_BYTE = re.compile("[\U00010000-\U0010ffff]")


@dataclass
class LoadResult:
    stocks: list[DesiredStock] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: int = 0
    valid: int = 0
    """Valid stocks; equals len(stocks) unless the stocks were not kept (`keep=False`)."""

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)


def discover(paths: Sequence[Path]) -> tuple[list[str], list[Diagnostic]]:
    """Every .yaml/.yml file under the given files or directories, sorted; hidden dirs skipped."""
    # Paths as text: building and comparing Path objects for every file of a large tree cost
    # more than reading it (a Path is made only for a file that is parsed).
    found: list[str] = []
    problems: list[Diagnostic] = []
    for root in paths:
        if root.is_file():
            found.append(str(root))
        elif root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found += [
                    os.path.join(dirpath, f)
                    for f in filenames
                    if f.endswith(SUFFIXES) and not f.startswith(".")
                ]
        else:
            problems.append(
                Diagnostic(
                    str(root), 0, 0, Severity.ERROR, (), *coded(msg("file.not_found"), "not_found")
                )
            )
    return sorted(set(found), key=lambda p: p.split(os.sep)), problems


def display_path(path: Path, base: Path | None) -> str:
    """Paths are shown relative to `base` (the repository root) when they are inside it."""
    if base is not None:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(base))
        if not rel.startswith(".."):
            return Path(rel).as_posix()
    return path.as_posix()


def _with_display_paths(files: list[str], base: Path | None) -> list[tuple[str, str]]:
    """Each file with its display path; computed once per folder, not once per file."""
    folders: dict[str, str] = {}
    out = []
    for path in files:
        parent, name = os.path.split(path)
        shown = folders.get(parent)
        if shown is None:
            shown = folders[parent] = display_path(Path(parent), base)
        out.append((path, name if shown == "." else f"{shown}/{name}"))
    return out


def load_stock_file(
    raw: bytes, file: str, size: int | None = None
) -> tuple[DesiredStock | None, list[Diagnostic]]:
    """Parse and validate one stock file; every problem becomes a diagnostic. `size` is the
    file's size when `raw` holds only its beginning (a file too large to read whole)."""
    loaded, diagnostics, _ = _load_stock(raw, file, size)
    return loaded, diagnostics


def _load_stock(
    raw: bytes,
    file: str,
    size: int | None = None,
    positions: bool = True,
    source: str | None = None,
    partners: Partners | None = None,
) -> tuple[DesiredStock | None, list[Diagnostic], Any]:
    """`load_stock_file`, plus the plain data the stock was validated from. `positions`:
    keep the line of every field (for the plan; validate needs none of a valid stock).
    `source`: where the file is on disk, to check the image files and the code pool it names
    (a `Path` is made only for a stock that names one). `partners`: the
    project's service-provider rules, checked here while the file's positions are at hand."""
    doc = read_document(raw, file, size=size)
    if doc.data is None:
        return None, doc.diagnostics, None
    diagnostics = list(doc.diagnostics)
    if _FOUR_BYTE.search(doc.text):
        text_findings = Findings()
        four_byte_text(text_findings, doc.data)
        diagnostics += findings_to_diagnostics(doc, text_findings.items)
    kind = doc.data.get("kind")
    stock_kind = KINDS.get(kind) if isinstance(kind, str) else None
    if stock_kind is None:
        diagnostics.append(_kind_problem(doc, kind))
        return None, diagnostics, None
    valid, errors = validate_model(stock_kind.model, doc)
    diagnostics += errors
    if valid is None:
        return None, diagnostics, None
    stock = cast(Stock, valid)
    diagnostics += findings_to_diagnostics(doc, stock_kind.rules(stock))
    if partners is not None:
        diagnostics += findings_to_diagnostics(doc, partners.findings(stock))
    if source is not None and any(image_files(stock.spec)):
        from reconciler.media import image_findings, root_of  # Pillow only when needed

        found = image_findings(stock, file, root_of(Path(source), file))
        diagnostics += findings_to_diagnostics(doc, found)
    pool, digest = None, hashlib.sha256(raw).hexdigest()
    ref = getattr(stock, "codes", None)
    if ref is not None and source is not None and not diagnostics_have_errors(diagnostics):
        pool, problems = read_pool(
            Path(source).parent, file, ref.file, doc.locate(("codes", "file"), key=False)
        )
        diagnostics += problems
        if pool is not None:
            digest = hashlib.sha256(f"{digest}\0{pool.digest}".encode()).hexdigest()
            rule = ("spec", "stock_send_rule", "max_coupons")
            where = doc.locate(rule) if _has(doc.data, rule) else doc.locate(("codes",))
            diagnostics += capacity_problems(
                pool, stock_kind.code_capacity(stock), (file, where[0], where[1])
            )
    if diagnostics_have_errors(diagnostics):
        return None, diagnostics, None
    line = doc.locate(("id",))[0]
    lines = _field_lines(*key_lines(doc.node)) if positions else FieldLines()
    loaded = DesiredStock(stock, file, line, digest, lines, pool)
    return loaded, diagnostics, doc.data


def diagnostics_have_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


def _has(data: Any, path: tuple[str, ...]) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


_LAYOUTS: dict[tuple[str, ...], tuple[str, ...]] = {}
"""One tuple per distinct set of field paths, shared by every stock with those fields."""


def _shared(paths: tuple[str, ...]) -> tuple[str, ...]:
    return _LAYOUTS.setdefault(paths, paths)


def _field_lines(paths: tuple[str, ...], lines: tuple[int, ...]) -> FieldLines:
    return FieldLines(_shared(paths), lines)


def _kind_problem(doc: Document, kind: object) -> Diagnostic:
    if kind is None:
        line, col = doc.locate(())
        return Diagnostic(
            doc.file,
            line,
            col,
            Severity.ERROR,
            ("kind",),
            *coded(msg("kind.missing"), "missing"),
        )
    line, col = doc.locate(("kind",), key=False)
    return Diagnostic(
        doc.file,
        line,
        col,
        Severity.ERROR,
        ("kind",),
        *coded(msg("kind.unknown", kind=kind), "literal_error"),
    )


@dataclass(frozen=True)
class _Shipped:
    """A valid stock as a worker process hands it back: its plain data as JSON, not the model.
    Pickling pydantic models costs several times more than rebuilding them from data, and
    pydantic reads JSON and validates in one pass (the same bytes become the cache entry)."""

    kind: str
    data: Any
    """The plain data as UTF-8 JSON (`bytes`), or as values where JSON cannot hold them."""
    file: str
    line: int
    digest: str
    summary: Summary
    lines: FieldLines
    codes: CodePool | None = None
    loaded: DesiredStock | None = field(default=None, compare=False)
    """The stock itself, when it was loaded in this process (nothing to rebuild)."""

    def unpack(self) -> DesiredStock:
        if self.loaded is not None:
            return self.loaded
        stock = _validated(KINDS[self.kind].model, self.data)
        lines = _field_lines(self.lines.paths, self.lines.lines)
        return DesiredStock(stock, self.file, self.line, self.digest, lines, self.codes)

    def entry(self) -> Entry | None:
        """What the parse cache keeps of it; None when its data is not plain JSON."""
        if not isinstance(self.data, bytes):
            return None
        paths, lines = self.lines.paths, self.lines.csv()
        return Entry(self.kind, self.line, self.summary.spec_key, paths, lines, self.data)


def _as_json(data: Any) -> Any:
    """A valid stock's plain data as compact UTF-8 JSON; the data itself where JSON cannot
    hold it (a YAML .nan, a lone surrogate from a `\\ud800` escape)."""
    try:
        # pydantic's serialiser is about twice as fast as json.dumps here; it writes NaN and
        # Infinity as such, which are not JSON, so text naming either takes the exact path.
        out = pydantic_core.to_json(data, inf_nan_mode="constants")
    except ValueError:
        return data
    if b"NaN" not in out and b"Infinity" not in out:
        return out
    try:
        return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except ValueError:
        return data


def _validated(model: type[Stock], data: Any) -> Stock:
    """The stock model of `data`: JSON bytes (`_as_json`) or plain values. Validation from
    data is the authority: JSON that pydantic's JSON mode refuses is read and validated the
    way the file was, so the result never depends on the path the data came by."""
    if isinstance(data, bytes):
        try:
            return model.model_validate_json(data)
        except ValueError:
            data = json.loads(data)
    return model.model_validate(data)


def _names_files(data: bytes) -> bool:
    """Whether a stock's JSON data may name other files (`{file: ...}`: images, a code pool).
    Such a stock is never cached: its checks read those files, whose content the cache key
    does not cover; and a stock from the cache is taken to name none. A `"file"` anywhere
    counts (in a JSON string its quotes would be escaped), and so does any `\\u` escape,
    which could spell the key another way (`"fil\\u0065"`; the writer escapes only control
    characters). Either may keep out a stock that names no file: only a parse more."""
    return b'"file"' in data or b"\\u" in data


def _from_cache(
    jobs: list[tuple[str, str]],
    cache: ParseCache,
    result: LoadResult,
    summaries: list[Summary],
) -> list[tuple[str, str]]:
    """Load the files the cache holds into `result`; returns the jobs left to parse."""
    left = []
    for path, file in jobs:
        try:
            raw, _ = read_source(path)
        except OSError:
            left.append((path, file))  # parsing reports it
            continue
        digest = hashlib.sha256(raw).hexdigest()
        key = cache.key(digest)
        entry = cache.get(key)
        loaded = _cached_stock(entry, file, digest) if entry is not None else None
        if loaded is None:
            if entry is not None:
                cache.drop(key)
            left.append((path, file))
            continue
        result.stocks.append(loaded[0])
        summaries.append(loaded[1])
    return left


def _cached_stock(entry: Entry, file: str, digest: str) -> tuple[DesiredStock, Summary] | None:
    """A cache entry as the stock it stands for; None when it does not fit (never trusted
    further than the model's own validation)."""
    kind = KINDS.get(entry.kind)
    if kind is None or _names_files(entry.data):  # never put; not trusted to name no file
        return None
    try:
        stock = _validated(kind.model, entry.data)
    except (ValueError, RecursionError):  # ValidationError is a ValueError; JSON too deep
        return None
    if stock.kind != kind.name:
        return None
    lines = FieldLines.from_csv(_shared(entry.paths), entry.lines)
    loaded = DesiredStock(stock, file, entry.line, digest, lines).naming_no_files()
    return loaded, Summary(stock.id, file, entry.line, entry.spec_key)


_Outcome = tuple[DesiredStock | _Shipped | Summary | None, list[Diagnostic]]


def _load_path(
    where: str,
    file: str,
    keep: bool,
    ship: bool,
    partners: Partners | None = None,
    remote: bool = False,
) -> _Outcome:
    """One file. `ship`: a valid stock comes back as `_Shipped`, with its data as JSON (for
    the cache); `remote`: to another process, so without its model."""
    try:
        raw, size = read_source(where)
    except OSError as exc:
        return None, [
            Diagnostic(
                file,
                0,
                0,
                Severity.ERROR,
                (),
                *coded(msg("file.unreadable", reason=exc.strerror), "unreadable"),
            )
        ]
    loaded, diagnostics, data = _load_stock(
        raw, file, size, positions=keep, source=where, partners=partners
    )
    if loaded is None:
        return None, diagnostics
    if not keep:
        return loaded.summary(), diagnostics
    if ship:
        shipped = _Shipped(
            loaded.stock.kind,
            _as_json(data),
            file,
            loaded.line,
            loaded.digest,
            loaded.summary(),
            loaded.lines,
            loaded.codes,
            None if remote else loaded,
        )
        return shipped, diagnostics
    return loaded, diagnostics


def _load_chunk(
    chunk: list[tuple[str, str]],
    keep: bool = True,
    ship: bool = False,
    partners: Partners | None = None,
    remote: bool = False,
) -> list[_Outcome]:
    return [_load_path(path, file, keep, ship, partners, remote) for path, file in chunk]


def _load_parallel(
    jobs: list[tuple[str, str]], workers: int, keep: bool, partners: Partners | None = None
) -> Generator[_Outcome, None, None]:
    """Files are independent, so large trees are split across processes (forked on Linux, where
    the parent's imports are shared for free). Outcomes are handed on as each part arrives,
    so the parent never holds every file's data at once."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    size = -(-len(jobs) // (workers * 4))
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        n = len(chunks)
        parts = pool.map(_load_chunk, chunks, [keep] * n, [True] * n, [partners] * n, [True] * n)
        for part in parts:
            yield from part


def load_stocks(
    paths: Sequence[Path],
    base: Path | None = None,
    workers: int | None = None,
    keep: bool = True,
    cache: ParseCache | None = None,
    partners: Partners | None = None,
    found: tuple[list[str], list[Diagnostic]] | None = None,
) -> LoadResult:
    """Load every stock file under `paths`, reporting all problems of all files at once.

    `workers` > 1 splits the files across processes; by default that happens only for trees
    of at least PARALLEL_THRESHOLD files, where it pays for the process start-up. `cache`
    (with `keep`): files whose content it holds are not parsed again, and files that load
    valid without any diagnostic are added to it (see `parsecache`). `partners`: also check
    the project's service-provider rules on each file as it is read (validate; plan and
    apply check them after loading, as cached files are not read again). `found`: what
    `discover(paths)` gave, when the caller already ran it."""
    files, problems = discover(paths) if found is None else found
    result = LoadResult(diagnostics=list(problems), files=len(files))
    jobs = _with_display_paths(files, base)
    summaries: list[Summary] = []
    if cache is not None and keep:
        jobs = _from_cache(jobs, cache, result, summaries)
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if len(jobs) >= PARALLEL_THRESHOLD else 1
    parallel = workers > 1 and len(jobs) > 1
    ship = cache is not None and keep
    # Both one at a time, so a valid stock's data is dropped once it is a model (and a line of
    # the cache); closed at the end, so an error stops the worker processes at once.
    outcomes: Generator[_Outcome, None, None] = (
        _load_parallel(jobs, workers, keep, partners)
        if parallel
        else (_load_path(path, file, keep, ship, partners) for path, file in jobs)
    )
    with contextlib.closing(outcomes):
        _take(outcomes, result, summaries, cache)
    if cache is not None and keep:
        cache.save()
    result.valid = len(summaries)
    result.diagnostics += _cross_file(summaries)
    result.diagnostics += duplicates_across(
        (s.merchant, s.id, s.codes) for s in summaries if s.codes is not None
    )
    result.diagnostics = sort_diagnostics(result.diagnostics)
    result.stocks.sort(key=lambda s: s.stock.id)
    return result


def _take(
    outcomes: Iterable[_Outcome],
    result: LoadResult,
    summaries: list[Summary],
    cache: ParseCache | None,
) -> None:
    """Add each file's outcome to `result` (and a valid stock's entry to `cache`)."""
    for outcome, diagnostics in outcomes:
        result.diagnostics += diagnostics
        if isinstance(outcome, _Shipped):
            result.stocks.append(outcome.unpack())
            summaries.append(outcome.summary)
            entry = outcome.entry() if cache is not None and not diagnostics else None
            if cache is not None and entry is not None and not _names_files(entry.data):
                cache.put(cache.key(outcome.digest), entry)
        elif isinstance(outcome, DesiredStock):
            result.stocks.append(outcome)
            summaries.append(outcome.summary())
        elif outcome is not None:
            summaries.append(outcome)


def _cross_file(stocks: Iterable[Summary]) -> list[Diagnostic]:
    """Duplicate ids name every place; identical specs under different ids are suspicious."""
    out: list[Diagnostic] = []
    by_id: dict[str, list[Summary]] = {}
    by_body: dict[str, list[Summary]] = {}
    for s in stocks:
        by_id.setdefault(s.id, []).append(s)
        by_body.setdefault(s.spec_key, []).append(s)
    for stock_id, group in by_id.items():
        if len(group) > 1:
            for s in group:
                others = ", ".join(f"{o.file}:{o.line}" for o in group if o is not s)
                out.append(
                    Diagnostic(
                        s.file,
                        s.line,
                        1,
                        Severity.ERROR,
                        ("id",),
                        *coded(
                            msg("duplicate_id", stock_id=stock_id, others=others), "duplicate_id"
                        ),
                    )
                )
    for group in by_body.values():
        if len(group) > 1 and len({s.id for s in group}) > 1:
            for s in group[1:]:
                out.append(
                    Diagnostic(
                        s.file,
                        s.line,
                        1,
                        Severity.WARNING,
                        ("spec",),
                        *coded(
                            msg("duplicate_spec", other=group[0].id, file=group[0].file),
                            "duplicate_spec",
                        ),
                    )
                )
    return out
