"""A workspace: the project, the loaded stock files, the state store and the clients, opened
once per command; and the reads every use case shares (refreshing details from WeChat Pay)."""

from __future__ import annotations

import gc
import hashlib
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.config import PROJECT_FILE, ProjectFile, load_project
from reconciler.desired import DesiredStock
from reconciler.diagnostics import Diagnostic
from reconciler.engine.partners import partner_diagnostics, partner_rules
from reconciler.errors import ApiError, ConfigError, DiagnosedError
from reconciler.kinds import kind_of
from reconciler.loader import LoadResult, discover, load_stocks
from reconciler.parsecache import open_cache
from reconciler.runtime import Runtime, is_loopback
from reconciler.state.backend import StateBackend
from reconciler.state.factory import open_backend
from reconciler.state.model import State
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.credentials import MerchantCredentials
from reconciler.wechatpay.ratelimit import RateLimiter
from reconciler.wechatpay.retry import RetryPolicy

FREEZE_AT = 500
"""Stocks from which the loaded objects are frozen out of the cyclic collector's passes."""


class PlanInvalid(DiagnosedError):
    """The stock files or project file have errors; nothing can be planned."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__(
            f"{sum(1 for d in diagnostics if d.severity.value == 'error')} error(s) in the stock or project files",
            diagnostics,
        )


def validate(paths: Sequence[Path], base: Path) -> LoadResult:
    """Check every stock file under `paths`; keeps only summaries, so memory stays flat. With
    a project file in `base` that loads, its service-provider rules are checked too (on each
    file as it is read, as plan checks them: docs/partners.md)."""
    project = None
    if (base / PROJECT_FILE).is_file():
        project, _ = load_project(base / PROJECT_FILE)
    partners = partner_rules(project) if project is not None else None
    return load_stocks(list(paths), base=base, keep=False, partners=partners)


@dataclass
class Workspace:
    project: ProjectFile
    runtime: Runtime
    loaded: LoadResult
    store: StateBackend
    limiter: RateLimiter = field(default_factory=RateLimiter)
    credentials: dict[str, MerchantCredentials] = field(default_factory=dict)
    """Loaded once per run: checking an RSA key costs tens of milliseconds."""
    early_state: State | None = None
    """The state as read while the files loaded (`open_workspace(read_state=True)`); used once."""
    init_state: bool = False
    """`--init-state`: start a new state on purpose although files of an old one are there."""

    def load_state(self) -> State:
        """The state, or a new one where none was ever kept (refused while a backup, a lock or a
        temporary file says one was: `StateMissingError` names them)."""
        return self.store.load(create_if_missing=True, init=self.init_state)

    @property
    def desired(self) -> list[DesiredStock]:
        return self.loaded.stocks


def open_workspace(
    project: ProjectFile,
    runtime: Runtime,
    *,
    read_state: bool = False,
    init_state: bool = False,
    credentials: dict[str, MerchantCredentials] | None = None,
) -> Workspace:
    """Load the stock files. With `read_state` (a plan that takes no lock), the state file is
    read on a thread meanwhile: the files are parsed in worker processes, so the two overlap."""
    if runtime.shifted and not is_loopback(project.project.api.base_url):
        raise ConfigError(
            "RECONCILER_NOW shifts the clock, which only works against a local emulator; unset it to talk to WeChat Pay"
        )
    store = open_backend(project, runtime.clock, runtime.environ)
    # Loading makes millions of small objects that all stay alive: the cyclic collector's
    # full passes over them cost about a third of a 10,000-stock plan and find nothing. It
    # is paused meanwhile; for a large repository the loaded objects are then frozen, so
    # later passes skip them (a command runs once per process).
    collecting, count = gc.isenabled(), 0
    gc.disable()
    try:
        # The files are found before the state is read: parsing a state's JSON holds the
        # interpreter lock throughout (half a second at 50,000 stocks), and finding the files
        # meanwhile took 1.6 s instead of 0.2, holding back the processes that parse them.
        found = discover([project.stocks_dir])
        with ThreadPoolExecutor(1, thread_name_prefix="state") as reader:
            early = (
                reader.submit(store.load, create_if_missing=True, init=init_state)
                if read_state
                else None
            )
            loaded = load_stocks(
                [project.stocks_dir],
                base=project.root,
                cache=open_cache(project.root, runtime.environ),
                found=found,
            )
            count = len(loaded.stocks)
            if not loaded.ok:
                raise PlanInvalid(loaded.diagnostics)
            partners = partner_diagnostics(project, loaded.stocks)
            if partners:
                raise PlanInvalid([*loaded.diagnostics, *partners])
            ctx = Workspace(
                project,
                runtime,
                loaded,
                store,
                RateLimiter(clock=time.monotonic, margin=project.project.api.rate_limit_margin),
                credentials=dict(credentials or {}),
                init_state=init_state,
            )
            ctx.early_state = early.result() if early is not None else None
    finally:
        if collecting:
            if count >= FREEZE_AT:
                gc.freeze()
            gc.enable()
    return ctx


def desired_digest(stocks: Sequence[DesiredStock]) -> str:
    """One digest over every stock's id, file and content: a saved plan notices any edit."""
    h = hashlib.sha256()
    for s in sorted(stocks, key=lambda s: s.stock.id):
        h.update(f"{s.stock.id}\0{s.file}\0{s.digest}\n".encode())
    return "sha256:" + h.hexdigest()


def clients_for(
    ctx: Workspace, merchants: Sequence[str], cancel: threading.Event | None = None
) -> dict[str, WeChatPayClient]:
    """One client per merchant, sharing one rate limiter (buckets keyed by merchant). Once
    `cancel` is set, no client starts a new request (one already on the wire finishes)."""
    out: dict[str, WeChatPayClient] = {}
    for mchid in sorted(set(merchants)):
        if mchid not in ctx.credentials:
            ctx.credentials[mchid] = ctx.project.credentials(mchid, ctx.runtime.environ)
        out[mchid] = make_client(
            ctx.project, ctx.runtime, ctx.credentials[mchid], ctx.limiter, cancel=cancel
        )
    return out


def make_client(
    project: ProjectFile,
    runtime: Runtime,
    credentials: MerchantCredentials,
    limiter: RateLimiter | None = None,
    *,
    cancel: threading.Event | None = None,
) -> WeChatPayClient:
    """A client for one merchant as the project configures it; `limiter` is shared across
    merchants (a merchant's own rate limits are set on it, so the limits across all merchants
    still hold)."""
    api = project.project.api
    limits = project.rate_limits(credentials.mchid)
    if limiter is None:
        limiter = RateLimiter(clock=time.monotonic, margin=api.rate_limit_margin)
    if limits:
        limiter.set_merchant_limits(credentials.mchid, limits)
    return WeChatPayClient(
        credentials,
        base_url=api.base_url,
        transport=runtime.transport,
        clock=runtime.clock.time,
        rate_limiter=limiter,
        retry=RetryPolicy(max_attempts=api.max_attempts, base_delay=api.retry_base_delay_seconds),
        connect_timeout=api.connect_timeout_seconds,
        read_timeout=api.read_timeout_seconds,
        max_concurrency=project.project.concurrency,
        cancel=cancel,
    )


def refresh_targets(
    state: State, desired: Sequence[DesiredStock], mode: str, now: datetime
) -> list[str]:
    """Which recorded stocks to query: by default those that can still change (not ended)."""
    if mode == "none":
        return []
    out = []
    for st in state.stocks.values():
        if st.stock_id is None:
            continue
        body = st.applied_body or st.sent_body
        if (
            mode == "all"
            or body is None
            or not kind_of(st.kind).ended(body, now)
            or st.pending is not None
        ):
            out.append(st.id)
    return sorted(out)


def refresh(
    ctx: Workspace, state: State, ids: Sequence[str], clients: Mapping[str, WeChatPayClient]
) -> dict[str, dict[str, Any]]:
    """Query the details of `ids` concurrently (bounded by the clients' concurrency)."""

    def one(stock_id: str) -> tuple[str, dict[str, Any]]:
        st = state.stock(stock_id)
        client = clients[st.merchant]
        assert st.stock_id is not None
        try:
            return stock_id, kind_of(st.kind).detail(client, st.stock_id, st.merchant)
        except ApiError as exc:
            raise ApiError(f"refreshing {stock_id!r} ({st.kind} {st.stock_id}): {exc}") from exc

    workers = max(1, min(len(ids), ctx.project.project.concurrency * max(1, len(clients))))
    with ThreadPoolExecutor(workers, thread_name_prefix="refresh") as pool:
        return dict(pool.map(one, ids))
