"""The use cases: load, refresh, plan and apply, wired from the pure core and the shell."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.config import ProjectFile
from reconciler.diagnostics import Diagnostic
from reconciler.errors import ApiError, ConfigError, ReconcilerError, StateError
from reconciler.loader import LoadedStock, LoadResult, load_stocks
from reconciler.mapping import ended
from reconciler.plan import Plan
from reconciler.planner import PlanInputs, make_plan
from reconciler.runtime import Runtime, is_loopback
from reconciler.state import State, StateStore
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.credentials import MerchantCredentials
from reconciler.wechatpay.ratelimit import RateLimiter
from reconciler.wechatpay.retry import RetryPolicy

REFRESH_MODES = ("changing", "all", "none")


class PlanInvalid(ReconcilerError):
    """The stock files or project file have errors; nothing can be planned."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__(
            f"{sum(1 for d in diagnostics if d.severity.value == 'error')} error(s) in the stock or project files"
        )
        self.diagnostics = diagnostics


@dataclass
class Context:
    project: ProjectFile
    runtime: Runtime
    loaded: LoadResult
    store: StateStore
    limiter: RateLimiter = field(default_factory=RateLimiter)
    credentials: dict[str, MerchantCredentials] = field(default_factory=dict)
    early_state: State | None = None
    """The state as read while the files loaded (`open_context(read_state=True)`); used once."""
    """Loaded once per run: checking an RSA key costs tens of milliseconds."""

    @property
    def desired(self) -> list[LoadedStock]:
        return self.loaded.stocks


def open_context(project: ProjectFile, runtime: Runtime, *, read_state: bool = False) -> Context:
    """Load the stock files. With `read_state` (a plan that takes no lock), the state file is
    read on a thread meanwhile: the files are parsed in worker processes, so the two overlap."""
    if runtime.shifted and not is_loopback(project.project.api.base_url):
        raise ConfigError(
            "RECONCILER_NOW shifts the clock, which only works against a local emulator; unset it to talk to WeChat Pay"
        )
    store = StateStore(project.state_path, runtime.clock)
    with ThreadPoolExecutor(1, thread_name_prefix="state") as reader:
        early = reader.submit(store.load, create_if_missing=True) if read_state else None
        loaded = load_stocks([project.stocks_dir], base=project.root)
        if not loaded.ok:
            raise PlanInvalid(loaded.diagnostics)
        ctx = Context(project, runtime, loaded, store, RateLimiter(clock=time.monotonic))
        ctx.early_state = early.result() if early is not None else None
    return ctx


def desired_digest(stocks: Sequence[LoadedStock]) -> str:
    """One digest over every stock's id, file and content: a saved plan notices any edit."""
    h = hashlib.sha256()
    for s in sorted(stocks, key=lambda s: s.stock.id):
        h.update(f"{s.stock.id}\0{s.file}\0{s.digest}\n".encode())
    return "sha256:" + h.hexdigest()


def clients_for(ctx: Context, merchants: Sequence[str]) -> dict[str, WeChatPayClient]:
    """One client per merchant, sharing one rate limiter (buckets keyed by merchant)."""
    api = ctx.project.project.api
    out: dict[str, WeChatPayClient] = {}
    for mchid in sorted(set(merchants)):
        if mchid not in ctx.credentials:
            ctx.credentials[mchid] = ctx.project.credentials(mchid, ctx.runtime.environ)
        credentials = ctx.credentials[mchid]
        limits = ctx.project.rate_limits(mchid)
        limiter = RateLimiter(limits, clock=time.monotonic) if limits else ctx.limiter
        out[mchid] = WeChatPayClient(
            credentials,
            base_url=api.base_url,
            transport=ctx.runtime.transport,
            clock=ctx.runtime.clock.time,
            rate_limiter=limiter,
            retry=RetryPolicy(
                max_attempts=api.max_attempts, base_delay=api.retry_base_delay_seconds
            ),
            connect_timeout=api.connect_timeout_seconds,
            read_timeout=api.read_timeout_seconds,
            max_concurrency=ctx.project.project.concurrency,
        )
    return out


def refresh_targets(
    state: State, desired: Sequence[LoadedStock], mode: str, now: datetime
) -> list[str]:
    """Which recorded stocks to query: by default those that can still change (not ended)."""
    if mode == "none":
        return []
    out = []
    for st in state.stocks.values():
        if st.stock_id is None:
            continue
        body = st.applied_body or st.sent_body
        if mode == "all" or body is None or not ended(st.kind, body, now) or st.pending is not None:
            out.append(st.id)
    return sorted(out)


def refresh(
    ctx: Context, state: State, ids: Sequence[str], clients: Mapping[str, WeChatPayClient]
) -> dict[str, dict[str, Any]]:
    """Query the details of `ids` concurrently (bounded by the clients' concurrency)."""

    def one(stock_id: str) -> tuple[str, dict[str, Any]]:
        st = state.stock(stock_id)
        client = clients[st.merchant]
        assert st.stock_id is not None
        try:
            if st.kind == "favor":
                return stock_id, client.favor_detail(st.stock_id, st.merchant)
            return stock_id, client.busifavor_detail(st.stock_id)
        except ApiError as exc:
            raise ApiError(f"refreshing {stock_id!r} ({st.kind} {st.stock_id}): {exc}") from exc

    workers = max(1, min(len(ids), ctx.project.project.concurrency * max(1, len(clients))))
    with ThreadPoolExecutor(workers, thread_name_prefix="refresh") as pool:
        return dict(pool.map(one, ids))


def plan(
    ctx: Context, refresh_mode: str = "changing", refresh_note: str = ""
) -> tuple[Plan, State]:
    state, ctx.early_state = ctx.early_state or ctx.store.load(create_if_missing=True), None
    now = ctx.runtime.clock.now()
    ids = refresh_targets(state, ctx.desired, refresh_mode, now)
    observed: dict[str, dict[str, Any]] = {}
    if ids:
        merchants = [state.stock(i).merchant for i in ids]
        clients = clients_for(ctx, merchants)
        try:
            observed = refresh(ctx, state, ids, clients)
        finally:
            for c in clients.values():
                c.close()
    result = make_plan(
        PlanInputs(
            desired=ctx.desired,
            state=state,
            observed=observed,
            now=now,
            refresh=refresh_mode,
            refresh_note=refresh_note,
            desired_digest=desired_digest(ctx.desired),
            tool_version=__version__,
            rate_limits={
                m.mchid: ctx.project.rate_limits(m.mchid) for m in ctx.project.project.merchants
            },
        )
    )
    return result, state


def load_plan_file(path: Path) -> Plan:
    """Read a saved plan, refusing one that was edited (checksum) or is not a plan."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        checksum = data.pop("checksum", None)
        saved = Plan.from_data(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: not a readable reconciler plan ({type(exc).__name__}: {exc}); make a new one with `reconciler plan --out {path}`"
        ) from None
    if checksum != saved.checksum():
        raise ConfigError(
            f"{path}: the plan's checksum does not match its content (edited or truncated); make a new plan"
        )
    return saved


def check_fresh(
    saved: Plan, state: State, digest: str, now: datetime, max_age_minutes: int
) -> None:
    """Refuse a saved plan whose inputs moved since it was made."""
    problems = []
    if saved.state_serial == 0 and state.serial != 0:
        problems.append(
            f"there was no state when the plan was made; one was written since (serial {state.serial})"
        )
    elif not (saved.state_serial == 0 and state.serial == 0):
        if saved.state_lineage != state.lineage:
            problems.append(
                f"the state is a different lineage ({state.lineage}, the plan was made from {saved.state_lineage})"
            )
        elif saved.state_serial != state.serial:
            problems.append(
                f"the state moved from serial {saved.state_serial} to {state.serial} since the plan was made"
            )
    if saved.desired_digest != digest:
        problems.append("the stock files changed since the plan was made")
    made = datetime.fromisoformat(saved.created_at)
    if now - made > timedelta(minutes=max_age_minutes):
        problems.append(
            f"the plan is older than {max_age_minutes} minutes (made {saved.created_at})"
        )
    if problems:
        raise StateError("stale plan: " + "; ".join(problems) + ". Make a new plan and review it.")
