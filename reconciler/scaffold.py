"""The files `reconciler init` writes, as text (pure apart from reading the packaged templates).

The templates live in `reconciler/templates/` so they ship in the wheel. The workflows there are
byte-for-byte copies of this repository's `.github/workflows/reconciler-*.yml` (a test keeps them
equal); only their install step changes on the way out, from this repository's `pip install .`
to the pinned release a stocks repository needs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib.resources import files
from pathlib import PurePosixPath

from reconciler import __version__

DISTRIBUTION = "wechatpay-stock-reconciler"
"""The name on the package index (`reconciler` there is an unrelated project)."""
DEFAULT_PORT = 8765
MCHID = "1900000001"
LOCAL_DIR = PurePosixPath(".reconciler/local")
"""Under the project root: the local emulator's data file and the generated test keys."""
EMULATOR_DATA = LOCAL_DIR / "emulator.json"
WECHATPAY_PUBLIC_KEY = LOCAL_DIR / "wechatpay_pub_key.pem"
WORKFLOWS = ("reconciler-apply.yml", "reconciler-drift.yml", "reconciler-plan.yml")
STOCKS = ("favor/welcome-10-off-100.yaml", "busifavor/welcome-latte-8-off.yaml")
LEAD_DAYS = 7
"""The example stocks begin this many days after init: in the future, so they plan as creates."""
RUN_DAYS = 30
BEIJING = timezone(timedelta(hours=8))

_TOKEN = re.compile(r"\{\{(\w+)\}\}")
_PLAIN = re.compile(r"[A-Za-z0-9_./-]+")
_INSTALL_STEP = re.compile(
    r"^(?P<indent> +)# This repository installs itself\. A stocks repository installs a pinned release\n"
    r"(?P=indent)# instead, e.g\. python -m pip install '[^']+' \(docs/ci\.md\)\.\n"
    r"(?P=indent)run: python -m pip install --disable-pip-version-check --quiet \.\n",
    re.MULTILINE,
)


@dataclass(frozen=True)
class LocalMerchant:
    """What the local project file says about the test merchant (no secret: the key is a file)."""

    mchid: str
    serial_no: str
    wechatpay_public_key_id: str
    port: int


def template(name: str) -> str:
    return (files("reconciler") / "templates" / name).read_text(encoding="utf-8")


def fill(text: str, values: dict[str, str]) -> str:
    """Replace every `{{name}}`; a name without a value is a bug in the templates."""

    def value(match: re.Match[str]) -> str:
        return values[match.group(1)]

    return _TOKEN.sub(value, text)


def key_file(mchid: str) -> PurePosixPath:
    return LOCAL_DIR / f"{mchid}_key.pem"


def pinned_workflow(text: str, version: str = __version__) -> str:
    """A workflow with its install step pinned to this release of the distribution."""
    pinned, count = _INSTALL_STEP.subn(
        lambda m: (
            f"{m['indent']}# A pinned release: apply runs with the merchant's key, and what is installed\n"
            f"{m['indent']}# decides what runs (docs/ci.md). Raise it in a reviewed pull request.\n"
            f"{m['indent']}run: python -m pip install --disable-pip-version-check --quiet "
            f"'{DISTRIBUTION}=={version}'\n"
        ),
        text,
    )
    if count != 1:
        raise ValueError(f"expected one install step in the workflow template, found {count}")
    return pinned


def stock_window(now: datetime) -> tuple[str, str]:
    """Begin and end of the example stocks: midnight Beijing time LEAD_DAYS after `now`'s date,
    for RUN_DAYS days (inside favor's 90 and busifavor's 365)."""
    day = now.astimezone(BEIJING).date() + timedelta(days=LEAD_DAYS)
    begin = datetime(day.year, day.month, day.day, tzinfo=BEIJING)
    end = begin + timedelta(days=RUN_DAYS, seconds=-1)
    return begin.isoformat(), end.isoformat()


def project_files(now: datetime, schema: str, local: LocalMerchant | None = None) -> dict[str, str]:
    """Every text file of a new project, by path relative to its root (POSIX separators).

    `now` dates the example stocks; `schema` is the stock JSON Schema the stock files point at;
    with `local`, reconciler.yaml points at the local emulator and the generated key files.
    """
    begin, end = stock_window(now)
    today = now.astimezone(BEIJING).date().isoformat()
    if local is None:
        project = template("reconciler.yaml")
    else:
        project = fill(
            template("reconciler.local.yaml"),
            {
                "port": str(local.port),
                "mchid": local.mchid,
                "serial_no": local.serial_no,
                "public_key_id": local.wechatpay_public_key_id,
            },
        )
    out = {"reconciler.yaml": project, ".gitignore": template("gitignore")}
    out["stocks/stock.schema.json"] = schema
    for stock in STOCKS:
        out[f"stocks/{stock}"] = fill(
            template(f"stocks/{stock}"), {"begin": begin, "end": end, "today": today}
        )
    for name in WORKFLOWS:
        out[f".github/workflows/{name}"] = pinned_workflow(template(f"workflows/{name}"))
    return out


def merchant_lines(
    mchid: str, serial_no: str, key: str, public_key: str, public_key_id: str
) -> str:
    """The `merchants:` entry to paste into reconciler.yaml (public-key mode)."""
    return (
        f'  - mchid: "{mchid}"\n'
        f"    serial_no: {serial_no}\n"
        f"    private_key: {{file: {_scalar(key)}}}\n"
        f"    wechatpay_public_key: {{file: {_scalar(public_key)}}}\n"
        f"    wechatpay_public_key_id: {public_key_id}\n"
    )


def _scalar(path: str) -> str:
    """A path as a YAML flow scalar: plain when that reads back unchanged, else double-quoted."""
    return path if _PLAIN.fullmatch(path) else json.dumps(path, ensure_ascii=False)
