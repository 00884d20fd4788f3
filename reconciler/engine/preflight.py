"""Credential preflight: before a command calls WeChat Pay, read every merchant's credential
sources and report every problem at once, each at the `reconciler.yaml` line of its setting.

Each source is read on its own (a missing key file does not hide an unset variable of another
merchant), then the sources of one merchant are cross-checked (key against certificate and
serial). Messages name the variable or file, never a secret's content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.config import Merchant, ProjectFile, Secret
from reconciler.diagnostics import Diagnostic, FieldPath, Severity
from reconciler.engine.workspace import Workspace
from reconciler.errors import DiagnosedError
from reconciler.wechatpay.credentials import (
    MerchantCredentials,
    check_certificate,
    load_apiv3_key,
    load_certificate,
    load_private_key,
    load_wechatpay_public_key,
)
from reconciler.wechatpay.errors import CredentialError

CODE = "credential"


@dataclass
class Checked:
    """The outcome of a preflight: the credentials that loaded, and every problem found."""

    credentials: dict[str, MerchantCredentials] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diagnostics


class CredentialsInvalid(DiagnosedError):
    """One or more merchants' credentials cannot be used; each problem is a diagnostic."""


def check_credentials(project: ProjectFile, environ: Mapping[str, str]) -> Checked:
    """Read and cross-check the credentials of every merchant in the project file (effects:
    reads the named files and environment variables)."""
    out = Checked()
    for i, merchant in enumerate(project.project.merchants):
        loaded = _check_merchant(project, ("merchants", i), merchant, environ, out)
        if loaded is not None:
            out.credentials[merchant.mchid] = loaded
    return out


def require_credentials(project: ProjectFile, environ: Mapping[str, str]) -> Checked:
    """`check_credentials`, raising CredentialsInvalid with every problem when there is one."""
    checked = check_credentials(project, environ)
    if not checked.ok:
        merchants = len({d.path[1] for d in checked.diagnostics if len(d.path) > 1})
        raise CredentialsInvalid(
            f"{len(checked.diagnostics)} credential problem(s) for {merchants} merchant(s) in "
            f"{project.file}; fix them before calling WeChat Pay (`reconciler doctor` checks again)",
            checked.diagnostics,
        )
    return checked


def _check_merchant(
    project: ProjectFile,
    at: FieldPath,
    m: Merchant,
    environ: Mapping[str, str],
    out: Checked,
) -> MerchantCredentials | None:
    problems = len(out.diagnostics)

    def report(path: FieldPath, message: str) -> None:
        line, col = project.position((*at, *path))
        out.diagnostics.append(
            Diagnostic(
                project.file,
                line,
                col,
                Severity.ERROR,
                (*at, *path),
                f"merchant {m.mchid}: {message}",
                CODE,
            )
        )

    def source(secret: Secret) -> tuple[FieldPath, dict[str, object]]:
        if secret.env is not None:
            return ("env",), {"env": secret.env, "environ": environ}
        assert secret.file is not None
        return ("file",), {"path": project.root / secret.file}

    private_key: rsa.RSAPrivateKey | None = None
    where, kwargs = source(m.private_key)
    try:
        private_key = load_private_key(**kwargs)  # type: ignore[arg-type]
    except CredentialError as exc:
        report(("private_key", *where), str(exc))
    certificate: x509.Certificate | None = None
    if m.certificate is not None:
        try:
            certificate = load_certificate(project.root / m.certificate)
        except CredentialError as exc:
            report(("certificate",), str(exc))
    if private_key is not None and certificate is not None:
        try:
            check_certificate(private_key, certificate, m.serial_no.upper())
        except CredentialError as exc:
            serial_wrong = int(m.serial_no, 16) != certificate.serial_number
            report(("serial_no",) if serial_wrong else ("certificate",), str(exc))
    public_key: rsa.RSAPublicKey | None = None
    if m.wechatpay_public_key is not None:
        where, kwargs = source(m.wechatpay_public_key)
        try:
            public_key = load_wechatpay_public_key(**kwargs)  # type: ignore[arg-type]
        except CredentialError as exc:
            report(("wechatpay_public_key", *where), str(exc))
    apiv3_key: bytes | None = None
    if m.apiv3_key is not None:
        where, kwargs = source(m.apiv3_key)
        try:
            apiv3_key = load_apiv3_key(**kwargs)  # type: ignore[arg-type]
        except CredentialError as exc:
            report(("apiv3_key", *where), str(exc))
    if len(out.diagnostics) > problems or private_key is None:
        return None
    try:
        return MerchantCredentials(
            mchid=m.mchid,
            serial_no=m.serial_no.upper(),
            private_key=private_key,
            wechatpay_public_key=public_key,
            wechatpay_public_key_id=m.wechatpay_public_key_id,
            apiv3_key=apiv3_key,
        )
    except CredentialError as exc:
        report((), str(exc))
        return None


def describe_sources(project: ProjectFile, m: Merchant) -> str:
    """Where a merchant's credentials come from, for `doctor` (names only, never values)."""
    parts = [f"private key {_source_text(m.private_key)}"]
    if m.certificate is not None:
        parts.append(f"certificate {Path(m.certificate).as_posix()}")
    if m.wechatpay_public_key is not None:
        parts.append(
            f"WeChat Pay public key {_source_text(m.wechatpay_public_key)} ({m.wechatpay_public_key_id})"
        )
    if m.apiv3_key is not None:
        parts.append(f"APIv3 key {_source_text(m.apiv3_key)}")
    return ", ".join(parts)


def _source_text(secret: Secret) -> str:
    return f"${secret.env}" if secret.env is not None else f"file {secret.file}"


def preflight(ws: Workspace) -> None:
    """Check every merchant's credentials before a command calls WeChat Pay, once per run;
    keeps them on the workspace for its clients. Raises CredentialsInvalid with every problem."""
    if all(m.mchid in ws.credentials for m in ws.project.project.merchants):
        return
    ws.credentials.update(require_credentials(ws.project, ws.runtime.environ).credentials)
