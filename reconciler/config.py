"""The project file (`reconciler.yaml`): where stocks and state live, how to reach WeChat Pay,
and how to find each merchant's credentials. It names environment variables and files; it
never holds a secret itself."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import httpx
from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator

from reconciler.diagnostic_messages import MsgError, coded, msg
from reconciler.diagnostics import Diagnostic, FieldPath, Severity
from reconciler.limits import Limit
from reconciler.spec.common import Strict, shown
from reconciler.spec.stock import Mchid
from reconciler.validation import validate_model
from reconciler.wechatpay.client import DEFAULT_BASE_URL
from reconciler.wechatpay.credentials import MerchantCredentials, load_merchant_credentials
from reconciler.yamlsource import PROJECT_CONTENTS, Document, read_document, read_source

PROJECT_FILE = "reconciler.yaml"
BACKUP_BASE_URL = "https://api2.mch.weixin.qq.com"
EndpointName = Literal[
    "favor_create", "favor_detail", "favor_list", "favor_start", "favor_pause", "favor_restart",
    "favor_stop", "favor_modify_goods_id", "favor_items",
    "busifavor_create", "busifavor_detail", "busifavor_modify", "busifavor_budget", "certificates",
]  # fmt: skip


PathText = Annotated[str, Field(min_length=1, pattern=r"^[^\x00-\x1f\x7f]+$")]
"""A path relative to the project file: no control characters (a NUL makes every file call
raise ValueError instead of OSError)."""


def _check_base_url(value: str) -> str:
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise MsgError(msg("project.not_a_url", value=shown(value), reason=str(exc))) from None
    if url.scheme not in ("http", "https") or not url.host or " " in value:
        raise MsgError(msg("project.not_http", value=shown(value)))
    return value


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LOOKS_LIKE_A_KEY = re.compile(r"^(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9])[A-Za-z0-9]{24,}$")
"""An APIv3 key (32 letters and digits) pasted where the variable's name belongs."""


class Secret(Strict):
    """Where a secret is: an environment variable's name or a file path (never the value)."""

    env: str | None = Field(default=None, pattern=_ENV_NAME.pattern)
    file: PathText | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_the_secret(cls, data: object) -> object:
        """A secret pasted where its source belongs must not be echoed in the error: the
        generic messages quote the value they got."""
        if not isinstance(data, Mapping):
            raise MsgError(msg("project.secret_shape"))
        env, file = data.get("env"), data.get("file")
        if isinstance(env, str) and _LOOKS_LIKE_A_KEY.match(env):
            # A valid name to the pattern, but the error for an unset variable names it.
            raise MsgError(msg("project.env_looks_like_key"))
        if env is not None and not (isinstance(env, str) and _ENV_NAME.match(env)):
            raise MsgError(msg("project.env_name"))
        if file is not None and not (isinstance(file, str) and file and not _CONTROL.search(file)):
            raise MsgError(msg("project.secret_file"))
        return data

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise MsgError(msg("project.one_source"))
        return self


class RateLimitSetting(Strict):
    count: int = Field(ge=1, le=1_000_000)
    per_seconds: float = Field(ge=0.001, le=86_400)
    """At most a day: a longer window makes apply wait for days (or overflow the clock)."""


class SubMerchant(Strict):
    mchid: Mchid
    name: str = Field(default="", max_length=64)
    """For display in plans only."""


CALLBACK_URL_MAX = 256
"""Longest notify URL accepted (the callback docs give no limit; real URLs are far shorter)."""


def _check_callback_url(value: str) -> str:
    from urllib.parse import urlsplit

    if len(value) > CALLBACK_URL_MAX:
        raise MsgError(msg("project.url_long", n=len(value), max=CALLBACK_URL_MAX))
    if re.search(r"[\s\x00-\x1f\x7f]", value):
        raise MsgError(msg("project.url_spaces"))
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError as exc:
        raise MsgError(msg("project.url_invalid", reason=str(exc))) from None
    if parts.scheme != "https":
        raise MsgError(msg("project.url_https"))
    if not host:
        raise MsgError(msg("project.url_host"))
    if parts.query or "?" in value:
        raise MsgError(msg("project.url_query"))
    if parts.fragment or "#" in value:
        raise MsgError(msg("project.url_fragment"))
    return value


CallbackUrl = Annotated[str, AfterValidator(_check_callback_url)]


class Callbacks(Strict):
    """A merchant's notify URLs (reconciler.callbacks): set by apply, read back by plan."""

    favor: CallbackUrl | None = None
    """代金券 events (POST /v3/marketing/favor/callbacks)."""
    busifavor: CallbackUrl | None = None
    """商家券 events (POST /v3/marketing/busifavor/callbacks); needs 营销事件推送."""


class Merchant(Strict):
    mchid: Mchid
    serial_no: str = Field(pattern=r"^[0-9A-Fa-f]{1,64}$")
    """The merchant API certificate's serial (商户API证书序列号); not a secret."""
    private_key: Secret
    """apiclient_key.pem, PKCS#1 or PKCS#8."""
    certificate: PathText | None = None
    """Optional apiclient_cert.pem path: checks the key and serial belong together."""
    wechatpay_public_key: Secret | None = None
    """pub_key.pem (public-key mode)."""
    wechatpay_public_key_id: str | None = Field(default=None, pattern=r"^PUB_KEY_ID_[0-9A-Za-z]+$")
    apiv3_key: Secret | None = None
    """For platform-certificate mode (download and decrypt /v3/certificates)."""
    rate_limits: dict[EndpointName, RateLimitSetting] = Field(default_factory=dict)
    """Overrides of the documented per-merchant limits, by endpoint."""
    sub_merchants: list[Mchid | SubMerchant] = Field(default_factory=list)
    """A service provider's (服务商) sub-merchants (子商户号): ids, or {mchid, name}. Its
    商家券 may belong to them (belong_merchant) and its 免充值 代金券 may be used there."""
    brand_merchants: list[Mchid] = Field(default_factory=list)
    """Merchants of the same brand that a 免充值 代金券 of this merchant may list in
    available_merchants (WeChat Pay decides brand membership; see docs/partners.md)."""

    @property
    def sub_merchant_names(self) -> dict[str, str]:
        """Each sub-merchant id and its display name ("" when none), in file order."""
        return {
            s if isinstance(s, str) else s.mchid: "" if isinstance(s, str) else s.name
            for s in self.sub_merchants
        }

    @model_validator(mode="after")
    def _partners(self) -> Merchant:
        ids = [s if isinstance(s, str) else s.mchid for s in self.sub_merchants]
        dupes = sorted({m for m in ids if ids.count(m) > 1})
        if dupes:
            raise MsgError(msg("project.subs_twice", mchids=", ".join(dupes)))
        if self.mchid in ids:
            raise MsgError(msg("project.subs_self", mchid=self.mchid))
        return self

    callbacks: Callbacks | None = None
    """Notify URLs by kind, kept as desired state (reconciler.callbacks)."""

    @model_validator(mode="after")
    def _verification(self) -> Merchant:
        if self.wechatpay_public_key is None and self.apiv3_key is None:
            raise MsgError(msg("project.verification"))
        if (self.wechatpay_public_key is None) != (self.wechatpay_public_key_id is None):
            raise MsgError(msg("project.public_key_pair"))
        return self


class Api(Strict):
    base_url: Annotated[str, AfterValidator(_check_base_url)] = DEFAULT_BASE_URL
    """WeChat Pay (https://api.mch.weixin.qq.com), its backup host, or a local emulator."""
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    read_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    max_attempts: int = Field(default=5, ge=1, le=20)
    """Tries per request; 429, 5xx and network failures are retried with the same body."""
    rate_limit_margin: float = Field(default=0.01, ge=0, le=0.5)
    """Each rate-limit window is paced this much longer (0.01: 60/min goes at 60 per 60.6 s),
    so that requests reaching WeChat Pay a little early or late never draw a 429."""
    retry_base_delay_seconds: float = Field(default=0.5, ge=0, le=60)
    """First retry delay; each further one doubles (with jitter, at most 10 s)."""


class PostgresState(Strict):
    dsn: Secret
    """Where the connection string is ({env: VARIABLE} or {file: path}): it may hold a
    password, so it is a secret and never written here."""
    schema_: str = Field(default="reconciler", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """The PostgreSQL schema holding the state's tables (created on first use)."""


class StateBackendSetting(Strict):
    postgres: PostgresState
    """Keep the state in PostgreSQL: many pipelines share it, locking per merchant."""


def _state_kind(value: object) -> str:
    return "function-backend" if isinstance(value, Mapping) else "function-path"


# A path or a backend mapping, told apart by shape, so an error names only the form meant.
# The tags start with "function-" because the diagnostics leave such parts out of a field's
# path (as for validator functions): an error stays at `state` or `state.postgres.dsn`.
StateSetting = Annotated[
    Annotated[PathText, Tag("function-path")]
    | Annotated[StateBackendSetting, Tag("function-backend")],
    Discriminator(_state_kind),
]


class ActivationSetting(Strict):
    """How apply waits for a new 代金券 to be registered before activating it."""

    delay_seconds: float = Field(default=60.0, ge=0, le=3600)
    """A start answered "卡包信息尚未注册完成" (or a server error) is retried once this long
    after the stock's create time has passed (WeChat Pay needs about a minute)."""
    retry_seconds: float = Field(default=15.0, ge=0, le=3600)
    """The wait between later retries."""
    max_attempts: int = Field(default=6, ge=1, le=100)
    """Starts per stock and apply; then the stock is reported created but not activated, and
    the next apply activates it."""


class Project(Strict):
    version: Literal[1] = 1
    stocks: PathText = "stocks"
    """Directory of stock files, relative to this file."""
    state: StateSetting = ".reconciler/state.json"
    """State file, relative to this file; or `{postgres: {dsn: {env: VARIABLE}, schema: NAME}}`."""
    api: Api = Api()
    concurrency: int = Field(default=16, ge=1, le=64)
    """Requests in flight at once, per merchant (the rate limits still apply)."""
    plan_max_age_minutes: int = Field(default=24 * 60, ge=1, le=366 * 24 * 60)
    """A saved plan older than this is refused by apply."""
    activation: ActivationSetting = ActivationSetting()
    merchants: list[Merchant] = Field(default_factory=list)
    language: Literal["zh", "en"] | None = None
    """The language of plans, apply and validate output (`--lang` overrides it); unset: the
    locale's (LANG zh_*: Chinese), else English."""

    @model_validator(mode="after")
    def _unique(self) -> Project:
        seen = [m.mchid for m in self.merchants]
        dupes = sorted({m for m in seen if seen.count(m) > 1})
        if dupes:
            raise MsgError(msg("project.merchant_twice", mchids=", ".join(dupes)))
        return self


@dataclass(frozen=True)
class ProjectFile:
    """A loaded project and the directory its relative paths start from."""

    project: Project
    root: Path
    file: str
    source: Document | None = field(default=None, compare=False, repr=False)
    """The parsed file, for the line and column of a setting (credential checks name them)."""

    def position(self, path: FieldPath) -> tuple[int, int]:
        """Line and column of a setting's value (1, 1 when the file is not at hand)."""
        return (1, 1) if self.source is None else self.source.locate(path, key=False)

    @property
    def stocks_dir(self) -> Path:
        return self.root / self.project.stocks

    @property
    def state_path(self) -> Path:
        """The local state file (for a PostgreSQL state: where `state pull` would put it)."""
        state = self.project.state
        return self.root / (state if isinstance(state, str) else ".reconciler/state.json")

    @property
    def postgres_state(self) -> PostgresState | None:
        state = self.project.state
        return None if isinstance(state, str) else state.postgres

    def postgres_dsn(self, environ: Mapping[str, str]) -> tuple[str, str]:
        """(the DSN, where it came from) for a PostgreSQL state. Errors name the variable or
        file, never the value."""
        from reconciler.errors import ConfigError

        setting = self.postgres_state
        if setting is None:
            raise ConfigError(f"{self.file}: the state is not kept in PostgreSQL")
        source = setting.dsn
        if source.env is not None:
            value = environ.get(source.env, "")
            if not value.strip():
                raise ConfigError(
                    f"{self.file}: state.postgres.dsn names the environment variable "
                    f"{source.env}, which is not set (or empty); set it to the PostgreSQL "
                    "connection string"
                )
            return value.strip(), f"${source.env}"
        assert source.file is not None
        path = self.root / source.file
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(
                f"{self.file}: cannot read the PostgreSQL DSN file {path}: {reason}"
            ) from None
        if not value.strip():
            raise ConfigError(f"{self.file}: the PostgreSQL DSN file {path} is empty")
        return value.strip(), str(path)

    def merchant(self, mchid: str) -> Merchant | None:
        return next((m for m in self.project.merchants if m.mchid == mchid), None)

    def callback_urls(self) -> dict[str, str]:
        """Every configured notify URL by `<mchid>/<kind>`."""
        return {
            f"{m.mchid}/{kind}": url
            for m in self.project.merchants
            if m.callbacks is not None
            for kind, url in m.callbacks.model_dump(exclude_none=True).items()
        }

    def rate_limits(self, mchid: str) -> dict[str, Limit]:
        m = self.merchant(mchid)
        return {k: Limit(v.count, v.per_seconds) for k, v in (m.rate_limits if m else {}).items()}

    def credentials(self, mchid: str, environ: Mapping[str, str]) -> MerchantCredentials:
        """Read one merchant's credentials from the places the project file names."""
        m = self.merchant(mchid)
        if m is None:
            from reconciler.errors import ConfigError

            raise ConfigError(
                f"{self.file}: merchant {mchid} has stocks but no entry under merchants; add its credentials there"
            )

        def path(secret: Secret | None) -> Path | None:
            return None if secret is None or secret.file is None else self.root / secret.file

        def env(secret: Secret | None) -> str | None:
            return None if secret is None else secret.env

        return load_merchant_credentials(
            mchid=m.mchid,
            serial_no=m.serial_no.upper(),
            private_key_path=path(m.private_key),
            private_key_env=env(m.private_key),
            certificate_path=None if m.certificate is None else self.root / m.certificate,
            wechatpay_public_key_path=path(m.wechatpay_public_key),
            wechatpay_public_key_env=env(m.wechatpay_public_key),
            wechatpay_public_key_id=m.wechatpay_public_key_id,
            apiv3_key_path=path(m.apiv3_key),
            apiv3_key_env=env(m.apiv3_key),
            environ=environ,
        )


def load_project(
    path: Path, display: str | None = None
) -> tuple[ProjectFile | None, list[Diagnostic]]:
    """Read and validate a project file with the same diagnostics as stock files."""
    file = display or path.name
    try:
        raw, size = read_source(path)
    except OSError as exc:
        return None, [
            Diagnostic(
                file,
                0,
                0,
                Severity.ERROR,
                (),
                *coded(msg("project.unreadable", reason=exc.strerror), "unreadable"),
            )
        ]
    doc = read_document(raw, file, PROJECT_CONTENTS, size)
    if doc.data is None:
        return None, doc.diagnostics
    project, diagnostics = validate_model(Project, doc)
    if project is None:
        return None, diagnostics
    return ProjectFile(project, path.resolve().parent, file, doc), diagnostics
