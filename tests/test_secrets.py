"""No secret ever reaches an output: every command, every format, every way credentials fail.

Keys are made at test time: an RSA 2048 merchant key written as PKCS#1 and PKCS#8 PEM, and a
32-character APIv3 key, handed over through environment variables and files that a project
file names. An emulator in this process runs on the same shifted clock as the CLI (one day
before the earliest example stock begins). Every command runs in this process through
`reconciler.cli.main`, with the emulator's in-memory transport and logging at DEBUG for every
logger captured; for each way of handing over secrets (environment, files) the loop also runs
as real subprocesses against the emulator on loopback (`RECONCILER_NOW`, logging at DEBUG on
stderr), which adds the HTTP stack's own logging and a real process environment. Then stdout,
stderr, the log, saved plans, Markdown, the state file, its backup, any lock file and the
messages (and causes) of credential exceptions raised in-process are searched for:

- any PEM body line and any 24-character run of the Base64 DER of every private key used
  (PKCS#1 and PKCS#8), and the leading hex digits of its private exponent;
- the APIv3 keys;
- an `Authorization` value: `WECHATPAY2-SHA256-RSA2048 mchid=...` or a `signature="..."`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import json
import logging
import os
import re
import secrets
import shutil
import string
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from ruamel.yaml import YAML

from reconciler.config import load_project
from reconciler.emulator import Emulator, EmulatorSettings, Faults, generate_keys
from reconciler.emulator.keys import WechatPayKeys, public_key_pem
from reconciler.loader import load_stocks
from reconciler.runtime import NOW_VARIABLE, Clock, Runtime
from reconciler.spec import FavorStock
from reconciler.spec.common import parse_rfc3339
from tests.cli_invoke import invoke
from tests.conftest import ROOT

MCHID = "1900000001"
RUN_TIMEOUT = 120.0
# The CLI with logging at DEBUG for every logger (httpx, httpcore, reconciler.*) on stderr.
DEBUG_CLI = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,"
    " format='%(name)s %(levelname)s %(message)s')\n"
    "from reconciler.cli import entry_point\n"
    "entry_point()\n"
)
SIGNATURE = re.compile(r"WECHATPAY2-SHA256-RSA2048\s+mchid=|signature=\"[A-Za-z0-9+/=]{20,}")


# --- keys -------------------------------------------------------------------------------------


@dataclass
class MerchantKey:
    """One RSA key in both PEM encodings, and the strings that must never be shown."""

    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))

    def pem(self, fmt: serialization.PrivateFormat) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())

    @property
    def pkcs1(self) -> bytes:
        return self.pem(serialization.PrivateFormat.TraditionalOpenSSL)

    @property
    def pkcs8(self) -> bytes:
        return self.pem(serialization.PrivateFormat.PKCS8)

    def needles(self) -> list[str]:
        out = []
        for fmt in (
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.PrivateFormat.PKCS8,
        ):
            der = self.key.private_bytes(
                serialization.Encoding.DER, fmt, serialization.NoEncryption()
            )
            # The first 48 bytes are the same for every RSA 2048 key (version, algorithm).
            b64 = base64.b64encode(der[48:]).decode()
            out += [b64[i : i + 24] for i in range(0, len(b64) - 24, 4)]
            pem = self.pem(fmt).decode().splitlines()
            out += [line for line in pem[2:-1] if len(line) >= 24]
        out.append(format(self.key.private_numbers().d, "x")[:32])
        out.append(str(self.key.private_numbers().d)[:32])
        return out


def apiv3_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


def certificate(key: rsa.RSAPrivateKey, serial: int) -> bytes:
    """A self-signed apiclient_cert.pem for `key` with `serial`."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, MCHID)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Keys:
    """Every key this module uses; all their secrets are searched for in every output."""

    merchant: MerchantKey = field(default_factory=MerchantKey)
    other: MerchantKey = field(default_factory=MerchantKey)
    apiv3: str = field(default_factory=apiv3_key)
    wrong_apiv3: str = field(default_factory=apiv3_key)
    serial: int = field(default_factory=lambda: secrets.randbits(120) | 1 << 120)
    wechatpay: WechatPayKeys = field(default_factory=generate_keys)

    @property
    def serial_no(self) -> str:
        return format(self.serial, "X")

    def needles(self) -> list[str]:
        needles = self.merchant.needles() + self.other.needles()
        needles += [self.apiv3, self.wrong_apiv3, self.apiv3[:-1]]
        return needles


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def assert_no_secret(keys: Keys, where: str, text: str) -> None:
    for needle in keys.needles():
        assert needle not in text, f"{where} shows secret material {needle[:6]}..."
    found = SIGNATURE.search(text)
    assert found is None, f"{where} shows an Authorization value: {found.group(0)[:40]}..."


# --- the world: clock, emulator, project directory ----------------------------------------------


def earliest_begin() -> dt.datetime:
    loaded = load_stocks([ROOT / "stocks"])
    return min(
        parse_rfc3339(
            s.stock.spec.available_begin_time
            if isinstance(s.stock, FavorStock)
            else s.stock.spec.coupon_use_rule.coupon_available_time.available_begin_time
        )
        for s in loaded.stocks
    )


@dataclass
class Run:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"reconciler {' '.join(self.args)} -> {self.code}\n{self.stdout}{self.stderr}"


@dataclass
class World:
    """A project directory, its emulator and every output produced so far."""

    root: Path
    keys: Keys
    emulator: Emulator
    base_url: str
    clock: Clock
    environ: dict[str, str]
    outputs: list[tuple[str, str]] = field(default_factory=list)

    def _environ(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k != NOW_VARIABLE and not k.startswith("WECHATPAY_")
        }
        env.update(self.environ)
        env[NOW_VARIABLE] = self.clock.now().isoformat(timespec="microseconds")
        return env

    def _record(self, run: Run, expect: int | tuple[int, ...] | None) -> Run:
        self.outputs.append((f"{' '.join(run.args)}: stdout", run.stdout))
        self.outputs.append((f"{' '.join(run.args)}: stderr", run.stderr))
        assert "Traceback" not in run.stderr, run
        if expect is not None:
            assert run.code in (expect if isinstance(expect, tuple) else (expect,)), run
        return run

    def run(self, *args: str, expect: int | tuple[int, ...] | None = 0) -> Run:
        """The CLI in this process, from the project directory, through the emulator's
        transport, with every log record at DEBUG captured into stderr."""
        runtime = Runtime(
            self.root, self._environ(), Clock(self.clock.offset), self.emulator.transport()
        )
        with debug_log() as log, contextlib.chdir(self.root):
            result = invoke(args, runtime=runtime)
        run = Run(args, result.exit_code, result.stdout, result.stderr + log.getvalue())
        return self._record(run, expect)

    def run_process(self, *args: str, expect: int | tuple[int, ...] | None = 0) -> Run:
        """The CLI as a subprocess against the emulator on loopback, logging at DEBUG."""
        env = {**self._environ(), "PYTHONUNBUFFERED": "1"}
        done = subprocess.run(
            [sys.executable, "-c", DEBUG_CLI, *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        return self._record(Run(args, done.returncode, done.stdout, done.stderr), expect)

    def write_project(self, merchant: dict[str, Any], **api: Any) -> None:
        project = {
            "stocks": "stocks",
            "state": "state/state.json",
            "api": {
                "base_url": self.base_url,
                "max_attempts": 1,
                "connect_timeout_seconds": 2,
                "read_timeout_seconds": 10,
                **api,
            },
            "merchants": [
                {
                    "mchid": MCHID,
                    "serial_no": self.keys.serial_no,
                    **merchant,
                    "rate_limits": {
                        "favor_create": {"count": 1000, "per_seconds": 1},
                        "busifavor_create": {"count": 1000, "per_seconds": 1},
                    },
                }
            ],
        }
        with (self.root / "reconciler.yaml").open("w", encoding="utf-8") as f:
            YAML().dump(project, f)

    def files(self) -> Iterator[Path]:
        """Everything the runs wrote: plans, Markdown, state, backup, locks."""
        for path in sorted(self.root.rglob("*")):
            written = path.suffix in (".json", ".md", ".backup", ".lock", ".tmp")
            if path.is_file() and (written or "state" in path.name):
                yield path

    def assert_clean(self) -> None:
        assert self.outputs
        for where, text in self.outputs:
            assert_no_secret(self.keys, where, text)
        for path in self.files():
            assert_no_secret(
                self.keys, str(path.relative_to(self.root)), path.read_text("utf-8", "replace")
            )


@contextlib.contextmanager
def debug_log() -> Iterator[io.StringIO]:
    """Every log record of every logger at DEBUG, as `logging.basicConfig(level=DEBUG)` in a
    process would show it, into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.setLevel(level)
        root.removeHandler(handler)


@pytest.fixture
def world(tmp_path: Path, keys: Keys, request: pytest.FixtureRequest) -> Iterator[World]:
    platform = getattr(request, "param", "public_key") == "platform_certificate"
    clock = Clock.starting_at(earliest_begin() - dt.timedelta(days=1))
    settings = EmulatorSettings(
        platform_certificates=platform,
        signing_key="platform_certificate" if platform else "public_key",
        rate_limiting=False,
    )
    emu = Emulator(settings, clock=clock.time, keys=keys.wechatpay)
    emu.register_merchant(MCHID, keys.serial_no, keys.merchant.key.public_key(), keys.apiv3)
    root = tmp_path / "project"
    (root / "keys").mkdir(parents=True, mode=0o700)
    shutil.copytree(ROOT / "stocks", root / "stocks")
    (root / "keys" / "pub_key.pem").write_bytes(public_key_pem(emu.wechatpay_public_key))
    with emu.serve("127.0.0.1", 0) as server:
        yield World(root, keys, emu, server.base_url, clock, {})
        assert server.errors == []


def key_file(world: World, name: str, data: bytes | str) -> dict[str, str]:
    path = world.root / "keys" / name
    path.touch(mode=0o600)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return {"file": f"keys/{name}"}


def key_env(world: World, name: str, data: bytes | str) -> dict[str, str]:
    world.environ[name] = data.decode() if isinstance(data, bytes) else data
    return {"env": name}


def public_key_mode(world: World) -> dict[str, Any]:
    return {
        "wechatpay_public_key": {"file": "keys/pub_key.pem"},
        "wechatpay_public_key_id": world.emulator.wechatpay_public_key_id,
    }


# --- every command, every format ---------------------------------------------------------------


def stock_ids(world: World) -> list[str]:
    return sorted(s.stock.id for s in load_stocks([world.root / "stocks"]).stocks)


def every_command(world: World) -> None:
    ids = stock_ids(world)
    for fmt in ("text", "json", "github"):
        world.run("validate", "--format", fmt)
    world.run("plan", "--out", "plan.json", "--markdown-out", "plan.md")
    for fmt in ("json", "markdown"):
        world.run("plan", "--format", fmt, "--out", f"plan-{fmt}.json")
    world.run("plan", "--detailed-exitcode", expect=2)
    applied = world.run("apply", "plan.json")
    assert f"{len(ids)} succeeded" in applied.stdout, applied
    assert "httpx INFO HTTP Request: POST" in applied.stderr, applied  # the log is captured
    assert len(world.emulator.stocks) == len(ids)
    world.run("plan", "--detailed-exitcode", "--refresh", "all")
    world.run("plan", "--refresh", "false", "--format", "json")
    world.run("state", "list")
    for stock in ids:
        world.run("state", "show", stock)
    state = json.loads((world.root / "state" / "state.json").read_text("utf-8"))
    busifavor = next(s for s in ids if state["stocks"][s]["kind"] == "busifavor")
    world.run("state", "import", busifavor, state["stocks"][busifavor]["stock_id"], expect=1)

    # A change WeChat Pay allows, refused by the emulator: a failing apply.
    path = next(
        p
        for p in (world.root / "stocks").rglob("*.yaml")
        if f"id: {busifavor}\n" in p.read_text("utf-8")
    )
    path.write_text(
        re.sub(r"(?m)^  comment: .*$", "  comment: changed by test", path.read_text("utf-8")),
        "utf-8",
    )
    world.run("plan", "--out", "plan-update.json", "--detailed-exitcode", expect=2)
    world.emulator.set_faults(
        Faults(error_500_share=1.0, endpoints=frozenset({"busifavor.modify"}))
    )
    failed = world.run("apply", "--yes", expect=1)
    assert re.search(r"Apply finished: .*(failed|unresolved)", failed.stdout), failed
    world.emulator.set_faults(Faults())
    world.run("apply", "--yes")
    world.run("apply", "plan-update.json", expect=1)  # the state moved on since that plan
    world.run("plan", "--detailed-exitcode")


def as_a_process(world: World) -> None:
    """The loop as a user runs it, over loopback HTTP: every request kind (certificates in
    platform-certificate mode, creates, details) with the HTTP stack logging at DEBUG."""
    ids = stock_ids(world)
    applied = world.run_process("apply", "--yes")
    assert f"{len(ids)} succeeded" in applied.stdout, applied
    assert "httpcore" in applied.stderr, applied  # the log is there to be searched
    assert len(world.emulator.stocks) == len(ids)
    world.run_process("plan", "--detailed-exitcode", "--refresh", "all")


def secrets_in_env(world: World) -> None:
    """Platform-certificate mode: the APIv3 key decrypts the downloaded certificates."""
    world.write_project(
        {
            "private_key": key_env(
                world, "WECHATPAY_1900000001_PRIVATE_KEY", world.keys.merchant.pkcs1
            ),
            "certificate": key_file(
                world, "apiclient_cert.pem", certificate(world.keys.merchant.key, world.keys.serial)
            )["file"],
            "apiv3_key": key_env(world, "WECHATPAY_1900000001_APIV3_KEY", world.keys.apiv3),
        }
    )


def secrets_in_files(world: World) -> None:
    """Public-key mode with the APIv3 key present too (a merchant migrating)."""
    world.write_project(
        {
            "private_key": key_file(world, "apiclient_key.pem", world.keys.merchant.pkcs8),
            "apiv3_key": key_file(world, "apiv3.key", world.keys.apiv3 + "\n"),
            **public_key_mode(world),
        }
    )


@pytest.mark.parametrize("world", ["platform_certificate"], indirect=True)
def test_pkcs1_in_env_and_apiv3_key_in_env(world: World) -> None:
    secrets_in_env(world)
    every_command(world)
    world.assert_clean()


@pytest.mark.parametrize("world", ["platform_certificate"], indirect=True)
def test_pkcs1_in_env_and_apiv3_key_in_env_as_processes(world: World) -> None:
    secrets_in_env(world)
    as_a_process(world)
    world.assert_clean()


def test_pkcs8_in_file_with_public_key_and_apiv3_key_in_file(world: World) -> None:
    secrets_in_files(world)
    every_command(world)
    world.assert_clean()


def test_pkcs8_in_file_with_public_key_and_apiv3_key_in_file_as_processes(world: World) -> None:
    secrets_in_files(world)
    as_a_process(world)
    world.assert_clean()


# --- credentials that fail --------------------------------------------------------------------


def _corrupt(pem: bytes) -> bytes:
    lines = pem.decode().splitlines()
    lines[5] = lines[5][::-1]  # still Base64, no longer a key
    return ("\n".join(lines) + "\n").encode()


BAD_CREDENTIALS: dict[str, tuple[Callable[[World], dict[str, Any]], str, int]] = {
    # name: (merchant settings, what the error says, exit code of apply --yes)
    "wrong-key": (lambda w: {"private_key": key_file(w, "k.pem", w.keys.other.pkcs8)}, "401", 1),
    "bad-pem": (
        lambda w: {"private_key": key_env(w, "WECHATPAY_KEY", _corrupt(w.keys.merchant.pkcs1))},
        "cannot be parsed",
        1,
    ),
    "missing-variable": (
        lambda w: {"private_key": {"env": "WECHATPAY_NOT_SET"}},
        "WECHATPAY_NOT_SET is not set",
        1,
    ),
    "key-file-missing": (lambda w: {"private_key": {"file": "keys/nope.pem"}}, "keys/nope.pem", 1),
    "public-key-as-private": (
        lambda w: {"private_key": {"file": "keys/pub_key.pem"}},
        "does not hold a private key",
        1,
    ),
    "serial-mismatch": (
        lambda w: {
            "private_key": key_file(w, "k.pem", w.keys.merchant.pkcs1),
            "certificate": key_file(
                w, "cert.pem", certificate(w.keys.merchant.key, w.keys.serial + 2)
            )["file"],
        },
        "is not the certificate's serial",
        1,
    ),
    "key-certificate-mismatch": (
        lambda w: {
            "private_key": key_file(w, "k.pem", w.keys.merchant.pkcs8),
            "certificate": key_file(w, "cert.pem", certificate(w.keys.other.key, w.keys.serial))[
                "file"
            ],
        },
        "does not match the merchant certificate",
        1,
    ),
    "apiv3-wrong-length": (
        lambda w: {
            "private_key": key_file(w, "k.pem", w.keys.merchant.pkcs8),
            "apiv3_key": key_env(w, "WECHATPAY_APIV3", w.keys.apiv3[:-1]),
        },
        "must be exactly 32",
        1,
    ),
    "pem-with-escaped-newlines": (
        lambda w: {
            "private_key": key_env(
                w, "WECHATPAY_KEY", w.keys.merchant.pkcs8.decode().replace("\n", "\\n")
            )
        },
        "succeeded",
        0,
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
def test_credential_problems_never_show_the_secret(world: World, case: str) -> None:
    settings, says, code = BAD_CREDENTIALS[case]
    merchant = settings(world)
    if "apiv3_key" not in merchant or "wechatpay_public_key" not in merchant:
        merchant = {**public_key_mode(world), **merchant}
    world.write_project(merchant)
    applied = world.run("apply", "--yes", expect=code)
    assert says in applied.stdout + applied.stderr, applied
    # Another command that reads the credentials, whatever the state holds.
    world.run("state", "import", "spring-sale-10-off-100", "99999999", expect=1)
    # The same failure in this process: the exception, its cause and its traceback.
    project, diagnostics = load_project(world.root / "reconciler.yaml")
    assert project is not None, diagnostics
    try:
        credentials = project.credentials(MCHID, world.environ)
    except Exception as exc:
        world.outputs.append((f"{case}: exception", "".join(traceback.format_exception(exc))))
        world.outputs.append((f"{case}: repr", repr(exc) + repr(exc.args)))
    else:
        world.outputs.append((f"{case}: credentials", repr(credentials) + str(credentials)))
    world.assert_clean()


@pytest.mark.parametrize("world", ["platform_certificate"], indirect=True)
def test_wrong_apiv3_key_fails_without_showing_either_key(world: World) -> None:
    world.write_project(
        {
            "private_key": key_file(world, "k.pem", world.keys.merchant.pkcs8),
            "apiv3_key": key_env(world, "WECHATPAY_APIV3", world.keys.wrong_apiv3),
        }
    )
    applied = world.run("apply", "--yes", expect=1)
    assert "certificate" in (applied.stdout + applied.stderr).lower(), applied
    world.assert_clean()


def test_the_needles_would_be_found(keys: Keys) -> None:
    """The search itself works: each kind of leak is caught."""
    leaks = [
        keys.merchant.pkcs1.decode(),
        keys.merchant.pkcs8.decode().replace("\n", "\\n"),
        json.dumps(
            {
                "key": base64.b64encode(
                    keys.other.key.private_bytes(
                        serialization.Encoding.DER,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    )
                ).decode()
            }
        ),
        f"APIv3 key is {keys.apiv3}",
        'Authorization: WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="x"',
        f"{keys.merchant.key.private_numbers().d:x}",
    ]
    for leak in leaks:
        with pytest.raises(AssertionError):
            assert_no_secret(keys, "test", leak)
