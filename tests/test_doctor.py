"""`reconciler doctor` and the credential preflight of plan and apply (issue 11, finding 3):
every credential problem of every merchant in one run, each at its reconciler.yaml line, and
never a secret in the output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.config import load_project
from reconciler.emulator.keys import public_key_pem
from reconciler.engine.preflight import check_credentials
from tests.cli_invoke import invoke
from tests.test_secrets import Keys, assert_no_secret, certificate

M1, M2 = "1900000001", "1900000002"


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def broken_project(root: Path, keys: Keys) -> Path:
    """Two merchants with six problems between them, and one good source each."""
    (root / "keys").mkdir()
    (root / "stocks").mkdir()
    (root / "keys" / "m2_key.pem").write_bytes(keys.merchant.pkcs8)
    # The certificate of another key: a key/certificate mismatch.
    (root / "keys" / "m2_cert.pem").write_bytes(certificate(keys.other.key, keys.serial))
    (root / "keys" / "pub_key.pem").write_bytes(public_key_pem(keys.other.key.public_key()))
    (root / "keys" / "garbage.pem").write_text("not a key at all\n")
    text = f"""\
stocks: stocks
state: .reconciler/state.json
merchants:
  - mchid: "{M1}"
    serial_no: {keys.serial_no}
    private_key: {{env: DOCTOR_M1_KEY}}
    certificate: keys/missing_cert.pem
    wechatpay_public_key: {{file: keys/missing_pub.pem}}
    wechatpay_public_key_id: PUB_KEY_ID_0001
  - mchid: "{M2}"
    serial_no: {keys.serial_no}
    private_key: {{file: keys/m2_key.pem}}
    certificate: keys/m2_cert.pem
    wechatpay_public_key: {{file: keys/garbage.pem}}
    wechatpay_public_key_id: PUB_KEY_ID_0002
    apiv3_key: {{env: DOCTOR_M2_APIV3}}
"""
    (root / "reconciler.yaml").write_text(text)
    return root / "reconciler.yaml"


ENV = {"DOCTOR_M1_KEY": None, "DOCTOR_M2_APIV3": "tooshort"}
EXPECTED = [
    # (line, col, field, a phrase of the message)
    (6, 24, "merchants[0].private_key.env", "DOCTOR_M1_KEY is not set"),
    (7, 18, "merchants[0].certificate", "missing_cert.pem"),
    (8, 34, "merchants[0].wechatpay_public_key.file", "missing_pub.pem"),
    (13, 18, "merchants[1].certificate", "does not match the merchant certificate"),
    (14, 34, "merchants[1].wechatpay_public_key.file", "does not hold the WeChat Pay public key"),
    (16, 22, "merchants[1].apiv3_key.env", "8 bytes long"),
]


def test_the_preflight_finds_every_problem_of_every_merchant(
    tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = broken_project(tmp_path, keys)
    project, diagnostics = load_project(path)
    assert project is not None and diagnostics == []
    checked = check_credentials(project, {"DOCTOR_M2_APIV3": "tooshort"})
    found = [(d.line, d.col, d.field, d.message) for d in checked.diagnostics]
    assert [f[:3] for f in found] == [e[:3] for e in EXPECTED], found
    for (*_, message), (*_, phrase) in zip(found, EXPECTED, strict=True):
        assert phrase in message
    assert checked.credentials == {}


def test_doctor_reports_every_credential_problem_in_one_run(tmp_path: Path, keys: Keys) -> None:
    path = broken_project(tmp_path, keys)
    result = invoke(["doctor", "--project", str(path)], env=ENV)
    assert result.exit_code == 1, result.output
    output = result.output
    for line, col, field, phrase in EXPECTED:
        assert re.search(
            rf"reconciler\.yaml:{line}:{col}: error: {re.escape(field)}: merchant \d+: .*{re.escape(phrase)}",
            output,
        ), (field, output)
    assert f"merchant {M1}: NOT READY" in output and f"merchant {M2}: NOT READY" in output
    assert "6 credential problem(s); 2 of 2 merchant(s) not ready" in output
    assert "private key $DOCTOR_M1_KEY" in output  # where it looks, never what it found
    assert_no_secret(keys, "doctor", output)


def test_plan_with_refresh_stops_on_every_problem_and_without_refresh_needs_none(
    tmp_path: Path, keys: Keys
) -> None:
    path = broken_project(tmp_path, keys)
    result = invoke(["plan", "--project", str(path)], env=ENV)
    assert result.exit_code == 1, result.output
    assert sum(f"{path.name}:" in line for line in result.output.splitlines()) == len(EXPECTED)
    assert "6 credential problem(s) for 2 merchant(s)" in result.output
    assert_no_secret(keys, "plan", result.output)
    offline = invoke(["plan", "--project", str(path), "--refresh", "false"], env=ENV)
    assert offline.exit_code == 0, offline.output


def test_doctor_says_ready_when_everything_loads(tmp_path: Path, keys: Keys) -> None:
    path = broken_project(tmp_path, keys)
    (tmp_path / "keys" / "m2_cert.pem").write_bytes(certificate(keys.merchant.key, keys.serial))
    text = path.read_text().replace("keys/garbage.pem", "keys/pub_key.pem")
    lines = text.splitlines()
    del lines[3:9]  # merchant 1
    path.write_text("\n".join(lines) + "\n")
    result = invoke(["doctor", "--project", str(path)], env={"DOCTOR_M2_APIV3": keys.apiv3})
    assert result.exit_code == 0, result.output
    assert f"merchant {M2}: credentials ok" in result.output
    assert "Ready: 1 merchant(s); run with --online to call them." in result.output
    assert_no_secret(keys, "doctor", result.output)


def test_doctor_online_says_which_merchant_cannot_be_reached(tmp_path: Path) -> None:
    """--online makes a signed call; with no emulator on the port the merchant is not ready."""
    project = tmp_path / "p"
    assert invoke(["init", "--local", str(project), "--port", "9"]).exit_code == 0
    offline = invoke(["doctor", "--project", str(project / "reconciler.yaml")])
    assert offline.exit_code == 0, offline.output
    assert "(not contacted)" in offline.output
    online = invoke(["doctor", "--online", "--project", str(project / "reconciler.yaml")])
    assert online.exit_code == 1, online.output
    assert re.search(r"merchant \d+: NOT READY: .+", online.output), online.output
    assert "1 of 1 merchant(s) not ready" in online.output
