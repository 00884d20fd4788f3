"""`reconciler emulator`: the local WeChat Pay on a loopback port, and its merchants.

`reconciler emulator [--data FILE | --project DIR]` serves; `reconciler emulator add-merchant
MCHID` registers a merchant in a data file (generating its key pair), so that this tool or any
other WeChat Pay SDK, in public-key mode, can call the emulator.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from reconciler import scaffold
from reconciler.commands.common import PROJECT_FILE
from reconciler.commands.common import runtime as current_runtime
from reconciler.errors import ConfigError
from reconciler.money import money
from reconciler.render import diagnostics as render_diagnostics

if TYPE_CHECKING:
    from reconciler.config import ProjectFile
    from reconciler.emulator import Emulator

# The emulator, the project file's models and httpx are imported where a command runs, so
# that every other command starts without them.

_PROJECT_HELP = (
    "A project directory (or its reconciler.yaml) made by `reconciler init --local`: "
    "use its .reconciler/local/emulator.json"
)


@click.group(invoke_without_command=True)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="0 picks a free port.  [default: the port of the project's api.base_url, else 8765]",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Keep keys, merchants and stocks in this JSON file across restarts.",
)
@click.option(
    "--project",
    "project_path",
    type=click.Path(path_type=Path, exists=True),
    help=_PROJECT_HELP + ", and serve on the port of its api.base_url.",
)
@click.option(
    "--reuse",
    type=click.Choice(["idempotent", "reject"]),
    default="idempotent",
    show_default=True,
    help="What a reused out_request_no gets (UNCONFIRMED for the real API).",
)
@click.option(
    "--latency-ms",
    type=int,
    default=0,
    show_default=True,
    help="Added to every answer (after the work is done).",
)
@click.option(
    "--activation-delay",
    type=click.FloatRange(0, 3600),
    default=60.0,
    show_default=True,
    help="Seconds after a 代金券's create during which its start answers 卡包信息尚未注册完成.",
)
@click.pass_context
def emulator(
    ctx: click.Context,
    port: int | None,
    host: str,
    data_path: Path | None,
    project_path: Path | None,
    reuse: str,
    latency_ms: int,
    activation_delay: float,
) -> None:
    """Serve a local WeChat Pay that signs, verifies and validates like the documented API.

    `--project DIR` serves the emulator of a project made by `reconciler init --local`.
    Prints `listening on <url>` once ready. The clock follows RECONCILER_NOW when set.
    `reconciler emulator add-merchant MCHID` registers a merchant in a data file.
    """
    if ctx.invoked_subcommand is not None:
        given = [
            f"--{name.replace('_path', '').replace('_', '-')}"
            for name in ctx.params
            if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT
        ]
        if given:
            raise click.UsageError(
                f"{', '.join(given)}: options for serving the emulator, not for "
                f"{ctx.invoked_subcommand}; see `reconciler emulator {ctx.invoked_subcommand} --help`"
            )
        return
    from reconciler.emulator import Emulator, EmulatorSettings, Faults

    runtime = current_runtime()
    if project_path is not None:
        if data_path is not None:
            raise ConfigError("give --data FILE or --project DIR, not both")
        project = _project(project_path)
        data_path = _local_data(project, must_exist=True)
        if port is None:
            port = _project_port(project)
    settings = EmulatorSettings(
        out_request_no_reuse=reuse,  # type: ignore[arg-type]
        faults=Faults(latency_ms=latency_ms),
        activation_delay_seconds=activation_delay,
    )
    emu = _open(data_path, lambda path: Emulator(settings, runtime.clock.time, path))
    port = scaffold.DEFAULT_PORT if port is None else port
    try:
        server = emu.serve(host, port)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}; stop what uses it, or pass "
            "--port (and point api.base_url at it)"
        ) from None
    with server:
        click.echo(
            f"reconciler emulator listening on {server.base_url} (WeChat Pay key {emu.wechatpay_public_key_id})"
        )
        if data_path is not None:
            click.echo(f"data: {data_path} · merchants: {_merchants(data_path)}", err=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("stopped", err=True)


@emulator.command("add-merchant")
@click.argument("mchid")
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The emulator's data file (created when missing); the keys are written beside it.",
)
@click.option(
    "--project",
    "project_path",
    type=click.Path(path_type=Path, exists=True),
    help=_PROJECT_HELP + ".  [default: here, when there is a reconciler.yaml]",
)
@click.option(
    "--balance",
    "balance_fen",
    type=click.IntRange(0),
    default=None,
    help="The merchant's balance in fen that 预充值 activations draw from.  [default: unlimited]",
)
@click.option(
    "--apiv3-key",
    "new_apiv3_key",
    is_flag=True,
    help="Give the merchant a new APIv3 key (platform-certificate mode): written to "
    "MCHID_apiv3_key beside the data file, and shown once when the output is a terminal.",
)
@click.option(
    "--apiv3-key-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Give the merchant the APIv3 key held in this file (32 bytes; platform-certificate mode).",
)
@click.option(
    "--name",
    default=None,
    help="The merchant's short or brand name, which WeChat Pay fills into a 商家券 that gives "
    "none (at most 12 characters).  [default: 测试商户 and the mchid's last 4 digits]",
)
@click.option(
    "--logo-url",
    default=None,
    help="The brand logo URL filled into a 商家券 that gives none.  [default: none]",
)
@click.option(
    "--sub-merchant-of",
    "provider",
    metavar="PROVIDER",
    help="Register MCHID as a sub-merchant (子商户) of the service provider PROVIDER, already "
    "registered: no key pair (the provider calls the API for it).",
)
def add_merchant(
    mchid: str,
    data_path: Path | None,
    project_path: Path | None,
    balance_fen: int | None,
    new_apiv3_key: bool,
    apiv3_key_file: Path | None,
    name: str | None,
    logo_url: str | None,
    provider: str | None,
) -> None:
    """Register merchant MCHID in an emulator data file, with a key pair generated now.

    Writes the merchant's private key beside the data file (never printed) and prints the
    emulator's public key id and the reconciler.yaml lines to paste (public-key mode). With
    --apiv3-key (or --apiv3-key-file) the merchant is in platform-certificate mode: GET
    /v3/certificates gives it the platform certificate sealed with that key, and answers to
    requests that name no Wechatpay-Serial are signed with the certificate. An emulator
    already serving that file reads it only at start: restart it afterwards.
    """
    from reconciler.commands.init_cmd import apiv3_key_path, write_private_key, write_secret
    from reconciler.emulator import DemoMerchant, Emulator
    from reconciler.emulator.merchant import generate_apiv3_key
    from reconciler.spec.stock import MCHID_PATTERN

    if not re.fullmatch(MCHID_PATTERN, mchid):
        raise ConfigError(f"{mchid!r} is not a mchid: give the merchant number, 5 to 32 digits")
    if data_path is not None and project_path is not None:
        raise ConfigError("give --data FILE or --project DIR, not both")
    if new_apiv3_key and apiv3_key_file is not None:
        raise ConfigError("give --apiv3-key (a new key) or --apiv3-key-file FILE, not both")
    _check_display(name, logo_url)
    if data_path is None and project_path is None:
        if not Path(PROJECT_FILE).exists():
            raise ConfigError(
                f"no {PROJECT_FILE} here: give --data FILE (an emulator data file) or --project DIR"
            )
        project_path = Path(".")
    if project_path is not None:
        project = _project(project_path)
        data_path = _local_data(project, must_exist=False)
        base = project.root
    assert data_path is not None
    if provider is not None:
        _add_sub_merchant(data_path, provider, mchid)
        return
    key_path = data_path.parent / f"{mchid}_key.pem"
    public_path = data_path.parent / scaffold.WECHATPAY_PUBLIC_KEY.name
    apiv3_path = apiv3_key_path(data_path.parent, mchid) if new_apiv3_key else apiv3_key_file
    for path in (key_path, apiv3_path if new_apiv3_key else None):
        if path is not None and path.exists():
            raise ConfigError(f"{path} already exists; move it away or register another mchid")
    apiv3_key = _read_apiv3_key(apiv3_key_file) if apiv3_key_file is not None else None
    runtime = current_runtime()
    data_path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    emu = _open(data_path, lambda path: Emulator(clock=runtime.clock.time, data_path=path))
    if mchid in _merchant_ids(data_path):
        raise ConfigError(
            f"merchant {mchid} is already registered in {data_path}; use the key it was "
            "registered with, or register another mchid"
        )
    merchant = DemoMerchant.generate(mchid)
    if new_apiv3_key:
        apiv3_key = generate_apiv3_key()
    try:
        write_private_key(key_path, merchant)
        if new_apiv3_key:
            assert apiv3_path is not None and apiv3_key is not None
            write_secret(apiv3_path, apiv3_key.encode("ascii"))
        public_pem = emu.wechatpay_public_key_pem()
        if not public_path.exists() or public_path.read_bytes() != public_pem:
            public_path.write_bytes(public_pem)
    except OSError as exc:
        raise ConfigError(f"cannot write {exc.filename}: {exc.strerror}") from None
    emu.register_merchant(
        mchid,
        merchant.serial_no,
        merchant.public_key,
        apiv3_key,
        signing="public_key" if apiv3_key is None else "platform_certificate",
        name=name,
        logo_url=logo_url,
    )
    if balance_fen is not None:
        emu.set_balance(mchid, balance_fen)

    def shown(path: Path) -> str:
        if project_path is not None:
            return path.resolve().relative_to(base).as_posix()
        return str(path.resolve())

    click.echo(f"registered merchant {mchid} in {data_path}")
    click.echo(f"its private key: {key_path} (generated now; not shown)")
    if apiv3_key is not None:
        assert apiv3_path is not None
        certificate = emu.ensure_platform_certificate()
        made = "generated now" if new_apiv3_key else "as given"
        click.echo(f"its APIv3 key: {apiv3_path} ({made})")
        if new_apiv3_key:
            _show_once(apiv3_key)
        click.echo(
            f"platform certificate serial: {certificate.serial_no} (GET /v3/certificates gives "
            "it sealed with the APIv3 key; answers to requests naming no Wechatpay-Serial are "
            "signed with it)"
        )
    click.echo(
        f"WeChat Pay public key id: {emu.wechatpay_public_key_id} (public key: {public_path})"
    )
    click.echo(
        "A running emulator reads the data file only at start: restart it to serve this merchant."
    )
    click.echo("")
    click.echo("Add to reconciler.yaml, under merchants:")
    click.echo("")
    lines = scaffold.merchant_lines(
        mchid,
        merchant.serial_no,
        shown(key_path),
        shown(public_path),
        emu.wechatpay_public_key_id,
    )
    if apiv3_path is not None:
        lines += f"    apiv3_key: {{file: {scaffold._scalar(shown(apiv3_path))}}}\n"
    click.echo(lines, nl=False)


def _check_display(name: str | None, logo_url: str | None) -> None:
    if name is not None and not 1 <= len(name) <= 12:
        raise ConfigError(
            f"--name is {len(name)} characters long; WeChat Pay shows at most 12 (商户简称 or brand)"
        )
    if logo_url is not None and not re.fullmatch(r"https?://[^\s]{1,500}", logo_url):
        raise ConfigError(
            "--logo-url must be an http(s) URL without spaces, at most 508 characters"
        )


def _read_apiv3_key(path: Path) -> str:
    """The key in `path`, checked like reconciler's own loader; the value is never shown."""
    from reconciler.wechatpay.credentials import load_apiv3_key
    from reconciler.wechatpay.errors import CredentialError

    try:
        raw = load_apiv3_key(path=path)
    except CredentialError as exc:
        raise ConfigError(str(exc)) from None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path}: the APIv3 key must be 32 letters and digits (its value is not shown here)"
        ) from None


def _on_terminal() -> bool:
    return sys.stdout.isatty()


def _show_once(apiv3_key: str) -> None:
    """The new key on a terminal only, so that it never lands in a CI log or a piped file."""
    if _on_terminal():
        click.echo(f"its APIv3 key, shown this once: {apiv3_key}")
    else:
        click.echo("(the APIv3 key is not shown: this output is not a terminal; read the file)")


_existing_data = click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The emulator's data file.",
)
_data_project = click.option(
    "--project",
    "project_path",
    type=click.Path(path_type=Path, exists=True),
    help=_PROJECT_HELP + ".  [default: here, when there is a reconciler.yaml]",
)


def _existing_emulator(data_path: Path | None, project_path: Path | None) -> tuple[Path, Emulator]:
    """The data file (--data, or the project's) and the emulator over it."""
    from reconciler.emulator import Emulator

    if data_path is not None and project_path is not None:
        raise ConfigError("give --data FILE or --project DIR, not both")
    if data_path is None:
        data_path = _local_data(_project(project_path or Path(".")), must_exist=True)
    runtime = current_runtime()
    return data_path, _open(
        data_path, lambda path: Emulator(clock=runtime.clock.time, data_path=path)
    )


def _add_sub_merchant(data_path: Path, provider: str, mchid: str) -> None:
    from reconciler.emulator import Emulator
    from reconciler.spec.stock import MCHID_PATTERN

    if not re.fullmatch(MCHID_PATTERN, provider):
        raise ConfigError(f"--sub-merchant-of {provider!r} is not a mchid (5 to 32 digits)")
    if provider == mchid:
        raise ConfigError("a merchant cannot be its own sub-merchant")
    if not data_path.exists() or provider not in _merchant_ids(data_path):
        raise ConfigError(
            f"the service provider {provider} is not registered in {data_path}: "
            f"reconciler emulator add-merchant {provider} first"
        )
    runtime = current_runtime()
    emu = _open(data_path, lambda path: Emulator(clock=runtime.clock.time, data_path=path))
    emu.add_sub_merchants(provider, [mchid])
    click.echo(f"registered {mchid} as a sub-merchant of {provider} in {data_path}")
    click.echo(
        "A running emulator reads the data file only at start: restart it to serve this relation."
    )
    click.echo("")
    click.echo(f"Add to reconciler.yaml, under the merchant {provider}:")
    click.echo("")
    click.echo(f'    sub_merchants: ["{mchid}"]')


@emulator.command("set-balance")
@click.argument("mchid")
@click.argument("balance_fen", metavar="FEN", type=click.IntRange(0))
@_existing_data
@_data_project
def set_balance(
    mchid: str, balance_fen: int, data_path: Path | None, project_path: Path | None
) -> None:
    """Set (top up) merchant MCHID's balance, in fen, that 预充值 activations draw from.

    A running emulator reads the data file only at start: restart it afterwards."""
    data_path, emu = _existing_emulator(data_path, project_path)
    if mchid not in _merchant_ids(data_path):
        raise ConfigError(f"merchant {mchid} is not registered in {data_path}")
    emu.set_balance(mchid, balance_fen)
    _, locked = emu.balance(mchid)
    click.echo(
        f"merchant {mchid}: balance {money(balance_fen)}; locked by activations so far "
        f"{money(locked)}. Restart a running emulator to use it."
    )


@emulator.command("seed")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@_existing_data
@_data_project
def seed(file: Path, data_path: Path | None, project_path: Path | None) -> None:
    """Add the stocks listed in FILE to an emulator data file, as if made elsewhere.

    FILE (YAML or JSON) lists `stocks:`, each with kind, merchant, body (the create body)
    and optionally created and status; every body is checked by the create rules first, and
    nothing is added unless all pass. A running emulator reads the data file only at start:
    restart it afterwards."""
    from reconciler.emulator.seed import SeedError, read_seed
    from reconciler.emulator.seed import seed as seed_stocks

    data_path, emu = _existing_emulator(data_path, project_path)
    try:
        made = seed_stocks(emu, read_seed(file), current_runtime().clock.time(), f"{file}: ")
    except SeedError as exc:
        raise ConfigError(f"{exc}; nothing was added") from None
    click.echo(f"seeded {len(made)} stock(s) into {data_path}: {', '.join(made) or 'none'}")
    click.echo("A running emulator reads the data file only at start: restart it to serve them.")


def _project(path: Path) -> ProjectFile:
    """The project at `path` (a directory holding reconciler.yaml, or that file itself)."""
    from reconciler.config import load_project

    file = path / PROJECT_FILE if path.is_dir() else path
    if not file.exists():
        raise ConfigError(
            f"no {PROJECT_FILE} in {path}; create one with `reconciler init --local {path}`"
        )
    project, diagnostics = load_project(file, str(file))
    if project is None:
        first = render_diagnostics.text(diagnostics).splitlines()[:1]
        raise ConfigError(f"{file} has errors: {first[0] if first else 'unreadable'}")
    return project


def _local_data(project: ProjectFile, *, must_exist: bool) -> Path:
    data = project.root / scaffold.EMULATOR_DATA
    if must_exist and not data.exists():
        raise ConfigError(
            f"{project.file}: no local emulator data at {data}; `reconciler init --local` makes "
            "one, or `reconciler emulator add-merchant MCHID --project DIR` registers a merchant"
        )
    return data


def _project_port(project: ProjectFile) -> int:
    import httpx

    from reconciler.runtime import is_loopback

    base_url = project.project.api.base_url
    if not is_loopback(base_url):
        raise ConfigError(
            f"{project.file}: api.base_url is {base_url}, not a local emulator; set it to "
            f"http://127.0.0.1:{scaffold.DEFAULT_PORT} to use the emulator, or pass --port"
        )
    url = httpx.URL(base_url)
    return url.port or (443 if url.scheme == "https" else 80)


def _open(data_path: Path | None, make: Callable[[Path | None], Emulator]) -> Emulator:
    """The emulator over `data_path`, with an unreadable data file as a user error."""
    try:
        return make(data_path)
    except (ValueError, KeyError, TypeError):
        # json.JSONDecodeError is a ValueError; store.load raises ValueError for another format.
        raise ConfigError(
            f"{data_path}: not a reconciler emulator data file; "
            "give another --data path (a missing file is created)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot use {data_path}: {exc.strerror}") from None


def _merchant_ids(data_path: Path) -> list[str]:
    """The merchants registered in a data file (saved by the Emulator on every change)."""
    data = json.loads(data_path.read_text(encoding="utf-8"))
    return sorted(data.get("merchants", {}))


def _merchants(data_path: Path) -> str:
    ids = _merchant_ids(data_path)
    return ", ".join(ids) if ids else "none yet (reconciler emulator add-merchant MCHID)"
