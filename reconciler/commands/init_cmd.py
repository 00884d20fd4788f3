"""`reconciler init [DIR] [--local [--port P]]`: a working project skeleton.

Writes reconciler.yaml, one example stock of each kind (dated a week after the clock's today, so
they plan as creates), the stock schema, .gitignore and the CI workflows. With --local the
project is wired to a local emulator: a test merchant's key pair is generated now, under
.reconciler/local/ (git-ignored), and registered in the emulator data file there, which
`reconciler emulator --project DIR` serves. Nothing is overwritten: when any file exists, the
command names them all and writes nothing.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from reconciler import scaffold
from reconciler.commands.common import runtime as current_runtime
from reconciler.errors import ConfigError

if TYPE_CHECKING:
    from reconciler.emulator import DemoMerchant
    from reconciler.runtime import Runtime

# The emulator, the schema's models and cryptography are imported where they are used, so
# that every other command starts without them.


@click.command()
@click.argument("directory", type=click.Path(path_type=Path), default=".")
@click.option(
    "--local",
    is_flag=True,
    help="Wire the project to a local emulator: test keys under .reconciler/local/, no account needed.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=scaffold.DEFAULT_PORT,
    show_default=True,
    help="With --local: the emulator's port, written into api.base_url.",
)
def init(directory: Path, local: bool, port: int) -> None:
    """Write a new project in DIRECTORY (default: here): reconciler.yaml, example stocks,
    .gitignore and the CI workflows. Refuses to overwrite any file."""
    context = click.get_current_context()
    if not local and context.get_parameter_source("port") is not ParameterSource.DEFAULT:
        raise click.UsageError("--port sets the local emulator's port: use it with --local")
    runtime = current_runtime()
    written = write_project(directory, runtime, local=local, port=port)
    for path in written:
        click.echo(f"wrote {directory / path}")
    click.echo("")
    if local:
        where = (
            ""
            if directory.resolve() == runtime.cwd.resolve()
            else f"cd {shlex.quote(str(directory))}\n"
        )
        click.echo(
            "Next: serve its emulator and run the loop against it (README, "
            '"Try your own stocks locally"):\n\n'
            f"{where}reconciler emulator --project . &\n"
            "reconciler validate\nreconciler plan\nreconciler apply --yes\nreconciler plan"
        )
    else:
        click.echo(
            "Next: put your merchant in reconciler.yaml (mchid, serial_no, keys), then run "
            "`reconciler validate` and `reconciler plan`. To try it without an account first: "
            "`reconciler init --local`."
        )


def write_project(root: Path, runtime: Runtime, *, local: bool, port: int) -> list[str]:
    """Write the project under `root`; returns the paths written, relative to `root`.

    Every path is checked before anything is written, so a refusal leaves the directory as it
    was. Keys are generated here and only written to files (mode 0600), never returned.
    """
    from reconciler.schema import stock_schema_text

    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} is a file; give a directory for the new project")
    planned = [*scaffold.project_files(runtime.clock.now(), "").keys()]
    if local:
        planned += [
            str(scaffold.EMULATOR_DATA),
            str(scaffold.WECHATPAY_PUBLIC_KEY),
            str(scaffold.key_file(scaffold.MCHID)),
            str(apiv3_key_path(scaffold.LOCAL_DIR, scaffold.MCHID)),
        ]
    existing = sorted(p for p in planned if (root / p).exists() or (root / p).is_symlink())
    if existing:
        raise ConfigError(
            f"{root}: {', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "nothing was written. Move them away, or give another directory"
        )
    merchant: scaffold.LocalMerchant | None = None
    try:
        if local:
            merchant = _local_emulator(root, runtime, port)
        files = scaffold.project_files(runtime.clock.now(), stock_schema_text(), merchant)
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot write {exc.filename or root}: {exc.strerror}; check the directory's permissions"
        ) from None
    return sorted(planned)


def _local_emulator(root: Path, runtime: Runtime, port: int) -> scaffold.LocalMerchant:
    """The emulator data file with one registered test merchant, and its key files."""
    from reconciler.emulator import DemoMerchant, Emulator

    local = root / scaffold.LOCAL_DIR
    local.mkdir(parents=True, mode=0o700, exist_ok=True)
    emu = Emulator(clock=runtime.clock.time, data_path=root / scaffold.EMULATOR_DATA)
    merchant = DemoMerchant.generate(scaffold.MCHID)
    # Public-key mode, as reconciler.yaml says; the APIv3 key (in its own file, like the private
    # key) lets an SDK in platform-certificate mode download the certificate too.
    merchant.register(emu)
    write_private_key(root / scaffold.key_file(merchant.mchid), merchant)
    write_secret(
        apiv3_key_path(root / scaffold.LOCAL_DIR, merchant.mchid), merchant.apiv3_key.encode()
    )
    (root / scaffold.WECHATPAY_PUBLIC_KEY).write_bytes(emu.wechatpay_public_key_pem())
    return scaffold.LocalMerchant(
        merchant.mchid, merchant.serial_no, emu.wechatpay_public_key_id, port
    )


def apiv3_key_path(directory: Path | PurePosixPath, mchid: str) -> Path:
    """Where a local merchant's APIv3 key is kept: beside its private key."""
    return Path(directory) / f"{mchid}_apiv3_key"


def write_private_key(path: Path, merchant: DemoMerchant) -> None:
    """The merchant's private key as PKCS#8 PEM, readable by the owner only from the start."""
    from cryptography.hazmat.primitives import serialization

    pem = merchant.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_secret(path, pem)


def write_secret(path: Path, data: bytes) -> None:
    """A new file readable by the owner only from the start; never replaces one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
