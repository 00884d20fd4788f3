"""Shared pieces of the end-to-end tests (test_e2e_apply, test_apply_faults, test_crash).

Every test gets a project directory of its own: merchant keys written as PEM files, a
`reconciler.yaml` pointing at a WeChat Pay emulator, copies of the repository's stocks (or
generated ones), and the CLI run either in this process (`Workspace.cli`, fast) or as a
subprocess (the real thing, and the only way to SIGKILL it). An emulator in this process
(`LocalEmulator`) is reached through its in-memory transport, or on a loopback port where a
test needs real sockets (read timeouts) or runs the CLI as a process.

The example stocks have fixed dates in 2027, so everything runs on one `VirtualClock`: a fixed
offset from real time, handed to in-process emulators as their clock and to every CLI run as
`RECONCILER_NOW` (computed at the moment of the run, so every process agrees on "now").

Run as a script, this module serves an emulator with options the `reconciler emulator` command
does not have (latency, no rate limiting) and prints `listening on <url>` like it does:

    python tests/e2e_support.py serve --data FILE [--port N] [--latency-ms N] [--reuse MODE]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import io
import json
import multiprocessing
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from ruamel.yaml import YAML

from reconciler.cli import main
from reconciler.config import load_project
from reconciler.emulator import DemoMerchant, Emulator, EmulatorServer, EmulatorSettings, Faults
from reconciler.emulator.keys import WechatPayKeys, generate_keys, public_key_pem
from reconciler.emulator.settings import ReuseMode
from reconciler.runtime import NOW_VARIABLE, Clock, Runtime
from reconciler.state.model import State
from reconciler.state.store import parse_state
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.ratelimit import RateLimiter
from tests.cli_invoke import invoke

REPO = Path(__file__).resolve().parents[1]
MCHID = "1900000001"
CST = timezone(timedelta(hours=8))
VIRTUAL_START = datetime(2027, 2, 1, 9, 0, tzinfo=CST)
"""A month before the first example stock begins (2027-03-01)."""
DEADLINE_SECONDS = 30.0
EXAMPLES = {
    "favor": REPO / "stocks" / "favor" / "spring-sale-10-off-100.yaml",
    "busifavor": REPO / "stocks" / "busifavor" / "member-day-latte-8-off.yaml",
}
LISTENING = re.compile(rb"listening on (http://\S+)")


# --- the clock --------------------------------------------------------------------------------


class VirtualClock:
    """Real time shifted so that it started at `start`; shared by emulators and CLI runs."""

    def __init__(self, start: datetime = VIRTUAL_START) -> None:
        self.offset = start.timestamp() - time.time()

    def time(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def clock(self) -> Clock:
        return Clock(self.offset)

    def env(self) -> dict[str, str]:
        """`RECONCILER_NOW` for a run that starts now (sub-second, so runs stay in order)."""
        return {NOW_VARIABLE: self.now().isoformat(timespec="microseconds")}


# --- keys -------------------------------------------------------------------------------------


@functools.cache
def shared_keys() -> WechatPayKeys:
    """The emulators' WeChat Pay keys; RSA generation is slow, so one pair per test session."""
    return generate_keys()


@functools.cache
def demo_merchant(mchid: str = MCHID) -> DemoMerchant:
    return DemoMerchant.generate(mchid)


def register_merchants(emu: Emulator, mchids: Sequence[str] = (MCHID,)) -> None:
    for mchid in mchids:
        demo_merchant(mchid).register(emu)


def write_keys(root: Path, mchids: Sequence[str] = (MCHID,)) -> None:
    """Each merchant's private key and the emulator's public key, as PEM files under keys/."""
    keys = root / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    (keys / "wechatpay_pub_key.pem").write_bytes(
        public_key_pem(shared_keys().private_key.public_key())
    )
    for mchid in mchids:
        pem = demo_merchant(mchid).private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = keys / f"{mchid}_key.pem"
        path.touch(mode=0o600)
        path.write_bytes(pem)


# --- stock files ------------------------------------------------------------------------------


def copy_stocks(dest: Path, kinds: Sequence[str] = ("favor", "busifavor")) -> list[str]:
    """Copy the repository's example stocks of `kinds` into `dest`; returns their ids."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "stocks" / "stock.schema.json", dest / "stock.schema.json")
    ids = []
    for kind in kinds:
        shutil.copytree(REPO / "stocks" / kind, dest / kind, dirs_exist_ok=True)
        ids += [load_yaml(p)["id"] for p in sorted((dest / kind).glob("*.yaml"))]
    return sorted(ids)


def load_yaml(path: Path) -> dict[str, Any]:
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def dump_yaml(data: dict[str, Any]) -> str:
    y = YAML()
    y.default_flow_style = False
    y.width = 4096
    out = io.StringIO()
    y.dump(data, out)
    return out.getvalue()


def edit_stock(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite a stock file with `change` applied to its data (comments are not kept)."""
    data = load_yaml(path)
    change(data)
    path.write_text(dump_yaml(data), encoding="utf-8")


def generated_stock(kind: str, index: int, merchant: str = MCHID) -> dict[str, Any]:
    """A valid stock of `kind` and `merchant`, distinct from every other index (name, id)."""
    data = copy.deepcopy(load_yaml(EXAMPLES[kind]))
    data["id"] = f"gen-{kind}-{index:03d}"
    data["merchant"] = merchant
    data["spec"]["stock_name"] = f"gen {kind} {index:03d}"
    data["spec"]["belong_merchant"] = merchant
    if kind == "favor":
        data["spec"]["coupon_use_rule"]["available_merchants"] = [merchant]
    return data


def write_generated_stocks(
    dest: Path,
    count: int,
    kinds: Sequence[str] = ("busifavor", "favor"),
    start: int = 0,
    merchants: Sequence[str] = (MCHID,),
) -> list[str]:
    """`count` generated stocks numbered from `start`, taking `kinds` and `merchants` in turn
    (the merchant changes every len(kinds) stocks); returns their ids."""
    ids = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        merchant = merchants[(start + i) // len(kinds) % len(merchants)]
        data = generated_stock(kind, start + i, merchant)
        path = dest / kind / f"{data['id']}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_yaml(data), encoding="utf-8")
        ids.append(str(data["id"]))
    return sorted(ids)


# --- running the CLI --------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One CLI run: exit code and what it printed."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> dict[str, Any]:
        data = json.loads(self.stdout)
        assert isinstance(data, dict)
        return data

    def __str__(self) -> str:
        return f"reconciler {' '.join(self.args)} -> {self.exit_code}\n{self.output}"


@dataclass
class Workspace:
    """One project directory: keys, stocks, project file, state, emulator data file."""

    root: Path
    clock: VirtualClock
    mchids: tuple[str, ...] = (MCHID,)
    max_attempts: int = 1
    read_timeout_seconds: float = 5.0
    plan_max_age_minutes: int = 60
    concurrency: int = 8
    base_url: str = "http://127.0.0.1:9"
    creates_per_second: int = 1000
    activation_delay_seconds: float = 0.0
    """What apply waits after a create before it retries a start WeChat Pay was not ready for."""
    activation_retry_seconds: float = 0.2
    activation_max_attempts: int = 6
    """The favor and busifavor create limits written into the project (the documented 60/min
    would make these tests take minutes)."""
    transport: httpx.BaseTransport | None = None
    """Set by an in-memory LocalEmulator: in-process runs reach it instead of the network."""
    callbacks: dict[str, dict[str, str]] = field(default_factory=dict)
    """Notify URLs by merchant, then kind, written under each merchant (reconciler.callbacks)."""

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_keys(self.root, self.mchids)

    @property
    def project_file(self) -> Path:
        return self.root / "reconciler.yaml"

    @property
    def stocks_dir(self) -> Path:
        return self.root / "stocks"

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def emulator_data(self) -> Path:
        return self.root / "emulator.json"

    def stock_file(self, stock: str) -> Path:
        for path in self.stocks_dir.rglob("*.yaml"):
            if load_yaml(path).get("id") == stock:
                return path
        raise AssertionError(f"no stock file with id {stock!r} under {self.stocks_dir}")

    def kinds(self) -> dict[str, str]:
        """id -> kind of every stock file."""
        out = {}
        for path in self.stocks_dir.rglob("*.yaml"):
            data = load_yaml(path)
            out[str(data["id"])] = str(data["kind"])
        return out

    def write_project(self, base_url: str | None = None, **changes: Any) -> None:
        """(Re)write reconciler.yaml; keyword arguments change the workspace's settings."""
        for name, value in changes.items():
            assert hasattr(self, name), name
            setattr(self, name, value)
        if base_url is not None:
            self.base_url = base_url
        merchants = "".join(
            f'  - mchid: "{m}"\n'
            f"    serial_no: {demo_merchant(m).serial_no}\n"
            f"    private_key: {{file: keys/{m}_key.pem}}\n"
            f"    wechatpay_public_key: {{file: keys/wechatpay_pub_key.pem}}\n"
            f"    wechatpay_public_key_id: {shared_keys().public_key_id}\n"
            "    rate_limits:\n"
            f"      favor_create: {{count: {self.creates_per_second}, per_seconds: 1}}\n"
            f"      busifavor_create: {{count: {self.creates_per_second}, per_seconds: 1}}\n"
            + _callback_lines(self.callbacks.get(m, {}))
            for m in self.mchids
        )
        self.project_file.write_text(
            "stocks: stocks\n"
            "state: state.json\n"
            f"concurrency: {self.concurrency}\n"
            f"plan_max_age_minutes: {self.plan_max_age_minutes}\n"
            "api:\n"
            f"  base_url: {self.base_url}\n"
            f"  max_attempts: {self.max_attempts}\n"
            "  connect_timeout_seconds: 2\n"
            f"  read_timeout_seconds: {self.read_timeout_seconds}\n"
            # The emulators here register a new 代金券 at once (no one-minute delay).
            f"activation: {{delay_seconds: {self.activation_delay_seconds}, "
            f"retry_seconds: {self.activation_retry_seconds}, "
            f"max_attempts: {self.activation_max_attempts}}}\n"
            f"merchants:\n{merchants}",
            encoding="utf-8",
        )

    # --- the CLI ----------------------------------------------------------------------------

    def _args(self, args: Sequence[str]) -> list[str]:
        # --project goes after the (sub)command's own words: `state import ID SID --project P`.
        return [*args, "--project", str(self.project_file)]

    def cli(self, *args: str) -> Run:
        """Run the CLI in this process (fast); unexpected exceptions propagate."""
        if self.transport is None:
            result = invoke(self._args(args), env=self.clock.env())
        else:
            # What Runtime.from_environment would build, plus the emulator's transport.
            environ = {**os.environ, **self.clock.env()}
            runtime = Runtime(Path.cwd(), environ, self.clock.clock(), self.transport)
            result = invoke(self._args(args), runtime=runtime)
        return Run(tuple(args), result.exit_code, result.stdout, result.stderr)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "reconciler", *self._args(args)]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != NOW_VARIABLE}
        return {**env, **self.clock.env(), "PYTHONUNBUFFERED": "1"}

    def run(self, *args: str, timeout: float = 120.0) -> Run:
        """Run the CLI as a subprocess, as a user would."""
        done = subprocess.run(
            self.command(*args),
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(tuple(args), done.returncode, done.stdout, done.stderr)

    # --- the state --------------------------------------------------------------------------

    def state(self) -> State:
        return parse_state(self.state_path.read_bytes())

    def stock_ids(self) -> dict[str, str | None]:
        """id -> remote stock_id as the state records it."""
        return {s.id: s.stock_id for s in self.state().stocks.values()}


def _callback_lines(urls: dict[str, str]) -> str:
    if not urls:
        return ""
    return "    callbacks:\n" + "".join(f"      {k}: {v}\n" for k, v in sorted(urls.items()))


def write_code_stock(dest: Path, index: int, codes: Sequence[str], merchant: str = MCHID) -> Path:
    """A 商家券 in MERCHANT_UPLOAD mode whose pool is `codes` (stocks/busifavor/codes/*.txt),
    with max_coupons equal to the number of codes; returns the stock file."""
    data = generated_stock("busifavor", index, merchant)
    data["id"] = f"gen-codes-{index:03d}"
    data["spec"]["coupon_code_mode"] = "MERCHANT_UPLOAD"
    rule = data["spec"]["stock_send_rule"]
    rule["max_coupons"] = len(codes)
    rule.pop("max_coupons_by_day", None)
    data["codes"] = {"file": f"codes/{data['id']}.txt"}
    path = dest / "busifavor" / f"{data['id']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_yaml(data), encoding="utf-8")
    write_codes(path, codes)
    return path


def write_codes(stock_file: Path, codes: Sequence[str]) -> None:
    """Write the codes file a stock file names."""
    target = stock_file.parent / load_yaml(stock_file)["codes"]["file"]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(f"{c}\n" for c in codes), encoding="utf-8")


def make_workspace(root: Path, clock: VirtualClock | None = None, **settings: Any) -> Workspace:
    return Workspace(root, clock or VirtualClock(), **settings)


# --- emulators --------------------------------------------------------------------------------


class LocalEmulator:
    """An Emulator in this process (with `persist`, saved to the data file), reached by the
    workspace's in-process runs through its in-memory transport, or with `loopback` on a
    loopback port (for real sockets: read timeouts, or the CLI as a process).

    `emu` is the app: tests read `emu.stocks` and set `emu.set_faults(...)`. `restart` starts a
    new emulator from the data file (on the same port), optionally editing the file in
    between, which is how a test changes a stock "in the merchant platform".
    """

    def __init__(
        self,
        ws: Workspace,
        settings: EmulatorSettings | None = None,
        *,
        persist: bool = False,
        loopback: bool = False,
    ) -> None:
        self.ws = ws
        self.settings = settings or EmulatorSettings()
        # Saving the data file after every change costs a key serialisation and two fsyncs;
        # only a test that restarts the emulator needs it.
        self.persist = persist
        self.emu = self._new()
        register_merchants(self.emu, ws.mchids)
        self.server: EmulatorServer | None = None
        if loopback:
            self.server = self.emu.serve("127.0.0.1", 0)
            ws.transport = None
            ws.write_project(self.server.base_url)
        else:
            ws.transport = self.emu.transport()
            ws.write_project()

    def _new(self) -> Emulator:
        return Emulator(
            self.settings,
            clock=self.ws.clock.time,
            data_path=self.ws.emulator_data if self.persist else None,
            keys=shared_keys(),
        )

    @property
    def stocks(self) -> dict[str, Any]:
        return self.emu.stocks

    def set_faults(self, faults: Faults) -> None:
        self.emu.set_faults(faults)

    def restart(self, edit: Callable[[dict[str, Any]], None] | None = None) -> None:
        assert self.persist, "a restart needs the data file: LocalEmulator(..., persist=True)"
        port = None if self.server is None else self.server.port
        self.close()
        if edit is not None:
            data = json.loads(self.ws.emulator_data.read_text(encoding="utf-8"))
            edit(data)
            self.ws.emulator_data.write_text(json.dumps(data), encoding="utf-8")
        self.settings.faults = Faults()
        self.emu = self._new()
        if port is None:
            self.ws.transport = self.emu.transport()
        else:
            self.server = self.emu.serve("127.0.0.1", port)

    def client_transport(self) -> httpx.BaseTransport | None:
        """For a client of the test's own: the in-memory transport, or None (the port)."""
        return None if self.server is not None else self.emu.transport()

    def close(self) -> None:
        self.ws.transport = None
        if self.server is not None:
            self.server.close()
            assert self.server.errors == [], self.server.errors

    def __enter__(self) -> LocalEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def project_client(
    ws: Workspace, local: LocalEmulator, rate_limiter: RateLimiter | None = None
) -> WeChatPayClient:
    """The project's WeChat Pay client of the first merchant, used directly (as a separate
    program would), reaching the workspace's emulator."""
    project, diagnostics = load_project(ws.project_file)
    assert project is not None, diagnostics
    return WeChatPayClient(
        project.credentials(ws.mchids[0], {}),
        base_url=project.project.api.base_url,
        clock=ws.clock.time,
        transport=local.client_transport(),
        rate_limiter=rate_limiter,
    )


def prepare_data_file(ws: Workspace) -> None:
    """An emulator data file with the shared keys and the workspace's merchants registered."""
    emu = Emulator(clock=ws.clock.time, data_path=ws.emulator_data, keys=shared_keys())
    register_merchants(emu, ws.mchids)


class EmulatorProcess:
    """The emulator as a separate process on the workspace's data file, so it survives (and
    can itself be) a SIGKILL. `cli=True` runs `reconciler emulator`; otherwise this module's
    `serve`, which can add latency and turn the emulator's rate limiting off."""

    def __init__(
        self,
        ws: Workspace,
        *,
        reuse: ReuseMode = "idempotent",
        latency_ms: int = 0,
        cli: bool = False,
        log: Path | None = None,
    ) -> None:
        self.ws = ws
        self.reuse = reuse
        self.latency_ms = latency_ms
        self.use_cli = cli
        self.log_path = log or ws.root / "emulator.log"
        self.port = 0
        self.base_url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        if not ws.emulator_data.exists():
            prepare_data_file(ws)

    def start(self) -> None:
        assert self.proc is None
        data = str(self.ws.emulator_data)
        if self.use_cli:
            cmd = [sys.executable, "-m", "reconciler", "emulator", "--data", data]
            cmd += ["--port", str(self.port), "--reuse", self.reuse, "--activation-delay", "0"]
        else:
            cmd = [sys.executable, __file__, "serve", "--data", data, "--port", str(self.port)]
            cmd += ["--reuse", self.reuse, "--latency-ms", str(self.latency_ms)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, env=self.ws.env(), cwd=self.ws.root
            )
        try:
            line = _read_until(self.proc, LISTENING, DEADLINE_SECONDS)
        except BaseException:
            self.kill()
            raise
        url = line.group(1).decode()
        self.base_url = url
        self.port = int(url.rsplit(":", 1)[1])

    def kill(self) -> None:
        """SIGKILL: no chance to finish a request or a save."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGINT)

    def _end(self, sig: signal.Signals) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    def stocks(self) -> list[dict[str, Any]]:
        """The stocks in the data file (saved atomically, so readable at any moment)."""
        data = json.loads(self.ws.emulator_data.read_text(encoding="utf-8"))
        stocks = data["stocks"]
        assert isinstance(stocks, list)
        return stocks

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        log = self.log_path.read_text(encoding="utf-8", errors="replace")
        assert "Traceback" not in log, log


def _read_until(
    proc: subprocess.Popen[bytes], pattern: re.Pattern[bytes], timeout: float
) -> re.Match[bytes]:
    """Read the process's stdout until `pattern` matches, within `timeout` seconds."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buffer = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            found = pattern.search(buffer)
            if found is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern.pattern!r} within {timeout} s; got {buffer!r}")
            if sel.select(left):
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise AssertionError(
                        f"process exited ({proc.wait()}) before {pattern.pattern!r}; got {buffer!r}"
                    )
                buffer += chunk


# --- CLI runs as killable child processes ---------------------------------------------------


def _cli_child(args: list[str], env: dict[str, str], log: str) -> None:
    """In a forked child: run the CLI with exactly `env`, its output appended to `log`."""
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.exit(main(args))


class CliChildren:
    """CLI runs as real child processes (their own pid, state, lock and sockets, and killable
    with SIGKILL), forked from a server that has already imported reconciler, so a run starts
    in milliseconds instead of paying the interpreter's start-up each time."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(["tests.e2e_support", "reconciler.cli"])

    def start(self, ws: Workspace, *args: str, log: Path) -> BaseProcess:
        proc = self._ctx.Process(
            target=_cli_child,
            args=(ws._args(args), ws.env(), str(log)),
            name=f"reconciler {' '.join(args)}",
        )
        proc.start()
        return proc


def finish(proc: BaseProcess, timeout: float = DEADLINE_SECONDS) -> int:
    """Wait for a child (killed if it overstays `timeout`), release it, return its exit code."""
    proc.join(timeout)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
    code = proc.exitcode
    assert code is not None
    proc.close()
    return code


# --- assertions about both sides --------------------------------------------------------------


def remote_by_request_no(stocks: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """out_request_no -> the remote stock_ids created with it (more than one is a duplicate)."""
    out: dict[str, list[str]] = {}
    for s in stocks:
        out.setdefault(str(s["out_request_no"]), []).append(str(s["stock_id"]))
    return out


def assert_one_remote_per_id(
    state: State, remote: Sequence[dict[str, Any]], ids: Sequence[str]
) -> None:
    """Exactly one remote stock per id, and the state maps each id to that very stock."""
    by_number = remote_by_request_no(remote)
    problems = [f"{n}: {len(s)} remote stocks {s}" for n, s in by_number.items() if len(s) != 1]
    assert not problems, problems
    assert len(remote) == len(ids), f"{len(remote)} remote stocks for {len(ids)} ids"
    for stock in ids:
        entry = state.stocks.get(stock)
        assert entry is not None, f"{stock} is not in the state"
        assert entry.pending is None, f"{stock} still has a pending {entry.pending}"
        assert by_number.get(entry.out_request_no) == [entry.stock_id], (
            f"{stock}: state says {entry.stock_id}, remote has {by_number.get(entry.out_request_no)}"
        )


def emulator_stocks(emu: Emulator) -> list[dict[str, Any]]:
    return [
        {"stock_id": s.stock_id, "out_request_no": s.out_request_no, "kind": s.kind}
        for s in emu.stocks.values()
    ]


# --- polling ----------------------------------------------------------------------------------


def wait_for(
    condition: Callable[[], bool], what: str, timeout: float = DEADLINE_SECONDS, step: float = 0.01
) -> None:
    """Poll `condition` until true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


@contextlib.contextmanager
def stopped(proc: subprocess.Popen[Any]) -> Iterator[subprocess.Popen[Any]]:
    """Make sure a subprocess is gone (killed if needed) and its pipes closed on exit."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


# --- the `serve` script -----------------------------------------------------------------------


def serve(argv: Sequence[str]) -> None:
    """Serve an emulator until SIGINT or SIGTERM; the clock follows RECONCILER_NOW."""
    from reconciler.runtime import Runtime

    parser = argparse.ArgumentParser(prog="e2e_support.py serve")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--reuse", choices=["idempotent", "reject"], default="idempotent")
    ns = parser.parse_args(argv)
    settings = EmulatorSettings(
        out_request_no_reuse=ns.reuse,
        rate_limiting=False,
        faults=Faults(latency_ms=ns.latency_ms),
        code_upload_delay_seconds=0.0,
    )
    emu = Emulator(settings, clock=Runtime.from_environment().clock.time, data_path=ns.data)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with emu.serve("127.0.0.1", ns.port) as server:
        print(f"e2e emulator listening on {server.base_url}", flush=True)
        while not done.wait(0.1):
            pass


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:])
    else:
        sys.exit(__doc__)
