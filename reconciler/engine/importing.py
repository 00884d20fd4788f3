"""The `import` use case: write the stock files of stocks that already exist, and track them.

Nothing is sent that changes a stock: the remote stocks are read (the kind's list, its detail,
and the reads the kind needs for fields the detail lacks, each paced by the client's rate
limiter), every file is decided and checked before anything is written, then:

1. the stock files are written, each whole (a temporary file renamed into place);
2. then the state records every stock at once, under the state lock.

A crash between the two leaves files the state does not track yet, never a state entry
without its file. Running the same import again finds each such file holding exactly what it
would write, keeps it and records its stock (a file that differs is a conflict).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.engine.workspace import Workspace, clients_for
from reconciler.errors import ApiError, ConfigError, ReconcilerError, StateError
from reconciler.fsutil import write_atomic
from reconciler.importfile import relative_schema, render_stock_file, slug_id
from reconciler.kinds import StockApi, StockKind, kind_of
from reconciler.loader import display_path, load_stock_file
from reconciler.state.model import State, StockState


class ImportInterrupted(ReconcilerError):
    """Ctrl-C or SIGTERM while the stocks were read: nothing was written."""

    exit_code = 130


class ImportConflict(StateError):
    """The import would overwrite a file, reuse an id or track a stock twice: nothing written."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        listed = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} conflict(s); nothing was written:\n{listed}")


@dataclass(frozen=True)
class ImportRequest:
    kind: str
    merchant: str
    stock_ids: tuple[str, ...] = ()
    """The stocks to import; empty: every stock the kind's list returns."""
    created_since: datetime | None = None
    status: str | None = None
    out: Path | None = None
    """Where the files go; default: the kind's folder under the project's stocks folder."""
    dry_run: bool = False


@dataclass(frozen=True)
class ImportedFile:
    id: str
    stock_id: str
    path: Path
    file: str
    """The path as messages show it."""
    text: str
    body: dict[str, Any]
    """The create body the file states (under the entry's number), as the state records it."""
    unknown: tuple[str, ...]
    detail: dict[str, Any]
    reused: bool = False
    """The file was already there with exactly this content (an earlier import stopped)."""


@dataclass
class ImportResult:
    files: list[ImportedFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(stock_id, the id tracking it) of stocks already tracked."""
    serial: int | None = None
    """The state's serial after the import; None for a dry run or when nothing was new."""
    not_imported: list[tuple[str, str]] = field(default_factory=list)
    """(stock_id, why) of stocks whose detail does not make a valid stock file (a value the
    rules refuse, a stock type the model does not know): left out, the others imported."""


Progress = Callable[[int, int], None]
"""Called with (stocks read, stocks to read) as the reads go."""


def _no_progress(done: int, total: int) -> None:
    return None


def import_stocks(
    ws: Workspace,
    request: ImportRequest,
    progress: Progress = _no_progress,
    cancel: threading.Event | None = None,
) -> ImportResult:
    """Read the remote stocks, decide every file, then write the files, then the state."""
    kind = kind_of(request.kind)
    merchant = request.merchant
    if merchant not in {m.mchid for m in ws.project.project.merchants}:
        raise ConfigError(
            f"merchant {merchant} is not in {ws.project.file}; add it under merchants: first"
        )
    out = _out_dir(ws, kind, request.out)
    state = ws.load_state()
    now = ws.runtime.clock.now()
    client = clients_for(ws, [merchant], cancel)[merchant]
    result = ImportResult()
    tracked = {
        s.stock_id: s.id for s in state.stocks.values() if s.kind == kind.name and s.stock_id
    }
    with_files = {d.stock.id for d in ws.desired}
    problems: list[str] = []
    today = now.date().isoformat()

    def decide(stock_id: str, detail: dict[str, Any], reads: dict[str, Any]) -> Decided:
        return _decide(ws, kind, merchant, stock_id, detail, reads, out, today)

    reader = _Reader(ws, kind, client, merchant, progress, decide, cancel)
    seen: set[str] = set()
    try:
        try:
            for stock_id in _stock_ids(kind, client, request, now):
                if stock_id in seen:
                    continue
                seen.add(stock_id)
                owner = tracked.get(stock_id)
                if owner is None:
                    reader.add(stock_id)
                elif owner in with_files:
                    result.skipped.append((stock_id, owner))
                else:
                    problems.append(
                        f"{kind.name} stock {stock_id} is tracked as {owner!r}, which has no stock file; restore that file, or `reconciler state rm {owner}` first"
                    )
        except ApiError:
            if cancel is not None and cancel.is_set():
                raise ImportInterrupted(
                    "interrupted while listing the stocks; nothing was written"
                ) from None
            raise
        decided = reader.results()
    finally:
        reader.close()
        client.close()
    todo = list(decided)
    taken = {d.stock.id: d.file for d in ws.desired}
    for stock_id in todo:
        planned, problem = decided[stock_id]
        if problem.startswith(NOT_VALID):
            result.not_imported.append((stock_id, problem))
            continue
        if problem:
            problems.append(problem)
            continue
        assert planned is not None
        if planned.id in taken and not planned.reused:
            problems.append(
                f"id {planned.id!r} for {kind.name} stock {stock_id} is already used by {taken[planned.id]}; rename that stock or import into another folder"
            )
        elif planned.id in state.stocks and state.stocks[planned.id].stock_id != stock_id:
            problems.append(
                f"id {planned.id!r} for {kind.name} stock {stock_id} is already in the state (`reconciler state list`); `reconciler state rm {planned.id}` if it is stale"
            )
        taken[planned.id] = planned.file
        result.files.append(planned)
    if problems:
        raise ImportConflict(problems)
    if request.dry_run or not result.files:
        return result
    if cancel is not None and cancel.is_set():
        raise ImportInterrupted("interrupted before writing; nothing was written")
    _write_files(result.files, ws.project.project.concurrency)
    result.serial = _record(ws, kind, merchant, result.files)
    return result


def _out_dir(ws: Workspace, kind: StockKind, out: Path | None) -> Path:
    stocks = ws.project.stocks_dir.resolve()
    target = (stocks / kind.name) if out is None else (ws.runtime.cwd / out).resolve()
    if target != stocks and stocks not in target.parents:
        raise ConfigError(
            f"--out {out}: the files must go under the stocks folder ({display_path(stocks, ws.project.root)}), where plan reads them"
        )
    return target


def _stock_ids(
    kind: StockKind, api: StockApi, request: ImportRequest, now: datetime
) -> Iterable[str]:
    """The stocks named, or those the kind's list returns, as its pages come in."""
    if request.stock_ids:
        if request.created_since is not None or request.status is not None:
            raise ConfigError(
                "--created-since and --status choose stocks from the list; leave them out when naming stock ids"
            )
        return list(dict.fromkeys(request.stock_ids))
    # The list takes whole seconds: the end is rounded up, so a stock made this second counts.
    until = (
        now.replace(microsecond=0) + timedelta(seconds=1)
        if request.created_since is not None
        else None
    )
    listed = kind.listed(api, request.merchant, request.created_since, until, request.status)
    if listed is None:
        raise ConfigError(
            f"{kind.label} ({kind.name}) stocks cannot be listed (WeChat Pay has no list endpoint for them); name their stock ids: reconciler import {kind.name} STOCK_ID..."
        )
    return (str(item["stock_id"]) for item in listed)


NOT_VALID = "WeChat Pay's answer does not make a valid stock file"
Decided = tuple[ImportedFile | None, str]
"""A stock's file, or why it cannot be written."""


class _Reader:
    """Each stock's detail and the kind's other reads on a thread pool (the client paces
    them), started as soon as the list names the stock, and its file decided as soon as they
    are in: the listing, the rendering and the checking overlap the waits for the rate
    limits."""

    def __init__(
        self,
        ws: Workspace,
        kind: StockKind,
        api: StockApi,
        merchant: str,
        progress: Progress,
        decide: Callable[[str, dict[str, Any], dict[str, Any]], Decided],
        cancel: threading.Event | None,
    ) -> None:
        self.kind, self.api, self.merchant = kind, api, merchant
        self.progress, self.decide, self.cancel = progress, decide, cancel
        self.pool = ThreadPoolExecutor(
            max(1, ws.project.project.concurrency), thread_name_prefix="import"
        )
        self.futures: dict[str, Future[Decided]] = {}
        self.done = 0
        self.lock = threading.Lock()

    def add(self, stock_id: str) -> None:
        self.futures[stock_id] = self.pool.submit(self._one, stock_id)
        self._report()

    def results(self) -> dict[str, Decided]:
        return {stock_id: f.result() for stock_id, f in self.futures.items()}

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _report(self) -> None:
        with self.lock:
            self.progress(self.done, len(self.futures))

    def _one(self, stock_id: str) -> Decided:
        kind, api, merchant = self.kind, self.api, self.merchant
        try:
            detail = kind.detail(api, stock_id, merchant)
            reads = kind.import_reads(api, stock_id, merchant, detail)
        except ApiError as exc:
            if self.cancel is not None and self.cancel.is_set():
                raise ImportInterrupted(
                    "interrupted while reading the stocks; nothing was written"
                ) from None
            raise ApiError(
                f"reading {kind.name} stock {stock_id}: {exc}; nothing was written"
            ) from exc
        result = self.decide(stock_id, detail, reads)
        with self.lock:
            self.done += 1
        self._report()
        return result


def _decide(
    ws: Workspace,
    kind: StockKind,
    merchant: str,
    stock_id: str,
    detail: Mapping[str, Any],
    reads: Mapping[str, Any],
    out: Path,
    today: str,
) -> tuple[ImportedFile | None, str]:
    """The file for one stock, checked as `validate` checks it; or why it cannot be written."""
    imported = kind.from_detail(detail, reads)
    name = str(imported.spec.get("stock_name") or "")
    id = slug_id(kind.name, name, stock_id)
    path = out / f"{id}.yaml"
    depth = len(path.parent.relative_to(ws.project.stocks_dir.resolve()).parts)
    schema = (
        relative_schema(depth) if (ws.project.stocks_dir / "stock.schema.json").exists() else None
    )
    text = render_stock_file(kind, id, merchant, stock_id, imported, today, schema)
    file = display_path(path, ws.project.root)
    loaded, diagnostics = load_stock_file(text.encode("utf-8"), file)
    if loaded is None:
        errors = "; ".join(
            f"{d.field}: {d.message}" for d in diagnostics if d.severity.value == "error"
        )
        return None, f"{NOT_VALID}: {errors}"
    reused = False
    if path.exists():
        existing, _ = load_stock_file(path.read_bytes(), file)
        if existing is None or existing.stock != loaded.stock:
            return (
                None,
                f"{file} already exists (for {kind.name} stock {stock_id}); move it away or import into another folder (--out)",
            )
        reused = True
    body = kind.create_body(loaded.stock, "")
    return (
        ImportedFile(id, stock_id, path, file, text, body, imported.unknown, dict(detail), reused),
        "",
    )


def _write_files(files: Sequence[ImportedFile], workers: int) -> None:
    """Each file whole (temporary file, fsync, rename); several at once, since most of the
    time is the disk's."""
    for folder in {f.path.parent for f in files}:
        folder.mkdir(parents=True, exist_ok=True)

    def one(f: ImportedFile) -> None:
        if f.path.exists():
            raise StateError(f"{f.file} appeared while importing; run the import again")
        try:
            write_atomic(f.path, f.text.encode("utf-8"))
        except OSError as exc:
            raise StateError(
                f"cannot write {f.file}: {exc.strerror}; run the import again"
            ) from exc

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="write") as pool:
        list(pool.map(one, [f for f in files if not f.reused]))


def _record(ws: Workspace, kind: StockKind, merchant: str, files: Sequence[ImportedFile]) -> int:
    """Track every imported stock in one save: stock_id, the file's body, the detail read,
    the fields unknown at import; no create number is sent, none is known."""
    with ws.store.lock(f"import {kind.name} ({len(files)} stocks)"):
        current: State = ws.load_state()
        now = ws.runtime.clock.now()
        entries = []
        known = {s.stock_id for s in current.stocks.values() if s.kind == kind.name}
        for f in files:
            if f.stock_id in known or f.id in current.stocks:
                raise StateError(
                    f"{f.stock_id} or {f.id!r} was added to the state while importing; the files are written, run the import again to record the rest"
                )
            generation = current.free_generation(merchant, kind.name, f.id)  # type: ignore[arg-type]
            entry = StockState.new(f.id, kind.name, merchant, generation)  # type: ignore[arg-type]
            entries.append(
                StockState.model_validate(
                    {
                        **dict(entry),
                        "stock_id": f.stock_id,
                        "applied_body": {**f.body, "out_request_no": entry.out_request_no},
                        "observed": f.detail,
                        "observed_at": now,
                        "unknown_at_import": f.unknown,
                    }
                )
            )
        return ws.store.save(current.with_stocks(entries)).serial
