"""The project file: validated with the same file:line diagnostics as stock files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.config import load_project
from reconciler.engine import check_fresh
from reconciler.errors import ConfigError, StateError
from reconciler.plan import Plan
from reconciler.runtime import Clock, Runtime, is_loopback
from reconciler.state.model import State

GOOD = """\
stocks: stocks
state: .reconciler/state.json
api:
  base_url: https://api.mch.weixin.qq.com
merchants:
  - mchid: "1900000001"
    serial_no: 5F1C72E2A8931B72A2E13AF8DEE92471EB397115
    private_key: {env: WECHATPAY_1900000001_PRIVATE_KEY}
    wechatpay_public_key: {file: keys/pub_key.pem}
    wechatpay_public_key_id: PUB_KEY_ID_0114232134912410000000000000
    rate_limits:
      favor_create: {count: 30, per_seconds: 60}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reconciler.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_project(tmp_path: Path) -> None:
    project, diagnostics = load_project(write(tmp_path, GOOD))
    assert diagnostics == [] and project is not None
    assert project.state_path == tmp_path / ".reconciler" / "state.json"
    assert project.rate_limits("1900000001")["favor_create"].rate == 0.5


@pytest.mark.parametrize(
    ("edit", "line", "field", "needle"),
    [
        (
            (
                "    private_key: {env: WECHATPAY_1900000001_PRIVATE_KEY}",
                "    private_key: {env: X, file: y}",
            ),
            8,
            "merchants[0].private_key",
            "exactly one of env",
        ),
        (
            ("    wechatpay_public_key_id: PUB_KEY_ID_0114232134912410000000000000\n", ""),
            6,
            "merchants[0]",
            "go together",
        ),
        (
            ("      favor_create:", "      favour_create:"),
            12,
            "merchants[0].rate_limits.favour_create",
            "must be one of",
        ),
        (
            (
                "  base_url: https://api.mch.weixin.qq.com",
                "  base_uri: https://api.mch.weixin.qq.com",
            ),
            4,
            "api.base_uri",
            "did you mean 'base_url'",
        ),
        (
            ('  - mchid: "1900000001"', "  - mchid: 1900000001"),
            6,
            "merchants[0].mchid",
            "expected a string",
        ),
    ],
)
def test_project_errors_have_places(
    tmp_path: Path, edit: tuple[str, str], line: int, field: str, needle: str
) -> None:
    assert edit[0] in GOOD
    project, diagnostics = load_project(write(tmp_path, GOOD.replace(*edit)))
    assert project is None
    d = diagnostics[0]
    assert (d.file, d.line, d.field) == ("reconciler.yaml", line, field), d
    assert needle in d.message


def test_credentials_come_only_from_named_places(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "pub_key.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    project, _ = load_project(write(tmp_path, GOOD))
    assert project is not None
    creds = project.credentials("1900000001", {"WECHATPAY_1900000001_PRIVATE_KEY": pem})
    assert creds.mchid == "1900000001"
    assert "PRIVATE" not in repr(creds)
    with pytest.raises(ConfigError, match="WECHATPAY_1900000001_PRIVATE_KEY") as err:
        project.credentials("1900000001", {})
    assert "BEGIN" not in str(err.value)
    with pytest.raises(ConfigError, match="no entry under merchants"):
        project.credentials("1900000002", {})


def _plan(
    serial: int,
    digest: str = "sha256:a",
    created: datetime | None = None,
    lineage: str = "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab",
) -> Plan:
    return Plan(
        (created or datetime(2027, 1, 1, tzinfo=UTC)).isoformat(),
        "0.1.0",
        lineage,
        serial,
        digest,
        "changing",
        (),
    )


def test_saved_plan_staleness() -> None:
    now = datetime(2027, 1, 1, 0, 30, tzinfo=UTC)
    state = State(lineage="6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab", serial=4)
    check_fresh(_plan(4), state, "sha256:a", now, 60)
    with pytest.raises(StateError, match="serial 3 to 4"):
        check_fresh(_plan(3), state, "sha256:a", now, 60)
    with pytest.raises(StateError, match="different lineage"):
        check_fresh(
            _plan(4, lineage="00000000-0000-4000-8000-000000000000"), state, "sha256:a", now, 60
        )
    with pytest.raises(StateError, match="stock files changed"):
        check_fresh(_plan(4), state, "sha256:b", now, 60)
    with pytest.raises(StateError, match="older than 10 minutes"):
        check_fresh(_plan(4), state, "sha256:a", now, 10)
    fresh = State(lineage="00000000-0000-4000-8000-000000000000", serial=0)
    check_fresh(
        _plan(0, lineage="11111111-1111-4111-8111-111111111111"), fresh, "sha256:a", now, 60
    )  # no state yet on either side


def test_shifted_clock_and_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock.starting_at(datetime(2027, 2, 1, tzinfo=UTC))
    assert abs(clock.now() - datetime(2027, 2, 1, tzinfo=UTC)) < timedelta(seconds=5)
    monkeypatch.setenv("RECONCILER_NOW", "2027-02-01T08:00:00+08:00")
    assert Runtime.from_environment().shifted
    monkeypatch.setenv("RECONCILER_NOW", "0001-01-01T00:00:00+14:00")
    with pytest.raises(ConfigError, match="outside 2000 to 2200"):
        Runtime.from_environment()
    monkeypatch.setenv("RECONCILER_NOW", "yesterday")
    with pytest.raises(ConfigError, match="RECONCILER_NOW"):
        Runtime.from_environment()
    assert is_loopback("http://127.0.0.1:8765") and not is_loopback("https://api.mch.weixin.qq.com")
