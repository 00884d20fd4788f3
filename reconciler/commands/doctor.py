"""`reconciler doctor`: is this project ready to talk to WeChat Pay?

It runs the same credential preflight as plan and apply (every merchant, every source, every
problem at once with its reconciler.yaml line), and with `--online` makes one signed read-only
call per merchant whose credentials load: a favor stock list of one entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.commands.common import EXIT_OK, open_project, project_option, runtime
from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    from reconciler.config import ProjectFile
    from reconciler.wechatpay.credentials import MerchantCredentials

# The engine and the client are imported where the command runs (see plan_apply).


@click.command()
@project_option
@click.option(
    "--online",
    is_flag=True,
    help="Also make one signed read-only call per merchant (a favor stock list of one entry).",
)
def doctor(project_path: Path, online: bool) -> int:
    """Check every merchant's credentials (and, with --online, one signed call each)."""
    from reconciler.engine.preflight import (
        CredentialsInvalid,
        check_credentials,
        describe_sources,
    )

    project = open_project(project_path)
    rt = runtime()
    checked = check_credentials(project, rt.environ)
    merchants = project.project.merchants
    if not merchants:
        click.echo(f"{project.file}: no merchants; add them under merchants: to call WeChat Pay")
    failed: list[str] = []
    for m in merchants:
        ready = m.mchid in checked.credentials
        status = "credentials ok" if ready else "NOT READY"
        if ready and online:
            problem = _online(project, m.mchid, checked.credentials)
            status = "ready (signed call answered)" if problem is None else f"NOT READY: {problem}"
            ready = problem is None
        if not ready:
            failed.append(m.mchid)
        click.echo(f"merchant {m.mchid}: {status}")
        click.echo(f"  {describe_sources(project, m)}")
    click.echo(f"API: {project.project.api.base_url}" + ("" if online else " (not contacted)"))
    if checked.diagnostics:
        raise CredentialsInvalid(
            f"{len(checked.diagnostics)} credential problem(s); {len(failed)} of "
            f"{len(merchants)} merchant(s) not ready",
            checked.diagnostics,
        )
    if failed:
        raise ReconcilerError(f"{len(failed)} of {len(merchants)} merchant(s) not ready")
    click.echo(
        f"Ready: {len(merchants)} merchant(s)"
        + (", each answered a signed call." if online else "; run with --online to call them.")
    )
    return EXIT_OK


def _online(
    project: ProjectFile, mchid: str, credentials: dict[str, MerchantCredentials]
) -> str | None:
    """None when one signed read-only call succeeds, else why not (no secret in it)."""
    from reconciler.engine.workspace import make_client

    try:
        with make_client(project, runtime(), credentials[mchid]) as client:
            client.favor_list(mchid, offset=0, limit=1)
    except ReconcilerError as exc:
        return str(exc)
    return None
