"""Platform certificates for SDKs in certificate mode: GET /v3/certificates for every merchant
with an APIv3 key, and answers signed with the key the request expects.

Each download is opened twice: by this project's client (reconciler/wechatpay/certificates.py)
and by an independent reading of the documented algorithm written here with `cryptography`
directly (AEAD_AES_256_GCM under the APIv3 key, nonce and associated_data as UTF-8, the GCM tag
at the end of the Base64 ciphertext; the answer signed over `timestamp\\nnonce\\nbody\\n`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reconciler import scaffold
from reconciler.commands import emulator_cmd
from reconciler.config import load_project
from reconciler.emulator import DemoMerchant, Emulator, EmulatorSettings, WechatPayKeys
from reconciler.emulator.keys import generate_certificate
from reconciler.emulator.samples import busifavor_create_body, favor_create_body
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.credentials import MerchantCredentials
from reconciler.wechatpay.errors import ResponseVerificationError
from tests.emulator_support import MCHID, NOW, Clock
from tests.test_init import assert_no_secret, run

CERT_MCHID = "1900000003"
DETAIL = "/v3/marketing/busifavor/stocks/10000001"


@pytest.fixture(scope="module")
def cert_keys(keys: WechatPayKeys) -> WechatPayKeys:
    """The shared public key pair plus a platform certificate made once for the module."""
    return replace(keys, certificate=generate_certificate(NOW))


@pytest.fixture(scope="module")
def cert_merchant() -> DemoMerchant:
    return DemoMerchant.generate(CERT_MCHID)


@pytest.fixture
def emulator(
    clock: Clock, cert_keys: WechatPayKeys, merchant: DemoMerchant, cert_merchant: DemoMerchant
) -> Emulator:
    """Default settings: `merchant` in public-key mode (it has an APIv3 key all the same),
    `cert_merchant` in certificate mode."""
    emu = Emulator(EmulatorSettings(rate_limiting=False), clock=clock, keys=cert_keys)
    merchant.register(emu)
    emu.register_merchant(
        CERT_MCHID,
        cert_merchant.serial_no,
        cert_merchant.public_key,
        cert_merchant.apiv3_key,
        signing="platform_certificate",
    )
    return emu


def send(
    emu: Emulator, who: DemoMerchant, target: str, serial: str | None = None
) -> httpx.Response:
    headers = {} if serial is None else {"Wechatpay-Serial": serial}
    return emu.handle(who.request("GET", target, timestamp=NOW, headers=headers))


# --- the documented algorithm, written out independently ---------------------------------------


def open_certificates(response: httpx.Response, apiv3_key: str) -> dict[str, x509.Certificate]:
    """Every certificate of a download, decrypted as the docs describe, by serial."""
    out = {}
    for item in response.json()["data"]:
        sealed = item["encrypt_certificate"]
        assert sealed["algorithm"] == "AEAD_AES_256_GCM"
        assert sealed["associated_data"] == "certificate" and len(sealed["nonce"]) == 12
        pem = AESGCM(apiv3_key.encode("utf-8")).decrypt(
            sealed["nonce"].encode("utf-8"),
            base64.b64decode(sealed["ciphertext"]),
            sealed["associated_data"].encode("utf-8"),
        )
        cert = x509.load_pem_x509_certificate(pem)
        assert item["serial_no"] == format(cert.serial_number, "X")
        out[item["serial_no"]] = cert
    return out


def signed_by(key: rsa.RSAPublicKey, response: httpx.Response) -> bool:
    h = response.headers
    message = f"{h['Wechatpay-Timestamp']}\n{h['Wechatpay-Nonce']}\n".encode() + response.content
    try:
        key.verify(
            base64.b64decode(h["Wechatpay-Signature"]),
            message + b"\n",
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        return False
    return True


def public_key_of(cert: x509.Certificate) -> rsa.RSAPublicKey:
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


# --- the download --------------------------------------------------------------------------------


def test_each_merchant_with_an_apiv3_key_gets_the_certificate_sealed_with_its_own_key(
    emulator: Emulator, merchant: DemoMerchant, cert_merchant: DemoMerchant
) -> None:
    cert = emulator.platform_certificate
    assert cert is not None
    for who in (merchant, cert_merchant):
        response = send(emulator, who, "/v3/certificates")
        assert response.status_code == 200
        opened = open_certificates(response, who.apiv3_key)
        assert list(opened) == [cert.serial_no]
        assert opened[cert.serial_no] == cert.certificate
        other = cert_merchant if who is merchant else merchant
        with pytest.raises(InvalidTag):
            open_certificates(response, other.apiv3_key)
    # A query (Java sends ?algorithm_type=RSA) reaches the same endpoint.
    assert send(emulator, merchant, "/v3/certificates?algorithm_type=RSA").status_code == 200


def test_certificate_mode_answers_are_signed_with_the_certificate(
    emulator: Emulator, cert_merchant: DemoMerchant
) -> None:
    download = send(emulator, cert_merchant, "/v3/certificates")
    (serial, cert), *_ = open_certificates(download, cert_merchant.apiv3_key).items()
    # The download is signed with the certificate it carries (the SDKs' bootstrap).
    assert download.headers["Wechatpay-Serial"] == serial
    assert signed_by(public_key_of(cert), download)
    answer = send(emulator, cert_merchant, DETAIL)  # 404: an error, signed all the same
    assert answer.headers["Wechatpay-Serial"] == serial
    assert signed_by(public_key_of(cert), answer)
    assert not signed_by(emulator.wechatpay_public_key, answer)


@pytest.mark.parametrize(
    ("who", "asked", "signer"),
    [
        ("public", None, "public_key"),
        ("public", "certificate", "certificate"),
        ("public", "lower-case certificate", "certificate"),
        ("public", "unknown", "public_key"),
        ("certificate", None, "certificate"),
        ("certificate", "public_key", "public_key"),
        ("certificate", "unknown", "certificate"),
    ],
)
def test_wechatpay_serial_on_the_request_picks_the_key(
    emulator: Emulator,
    merchant: DemoMerchant,
    cert_merchant: DemoMerchant,
    who: str,
    asked: str | None,
    signer: str,
) -> None:
    cert = emulator.platform_certificate
    assert cert is not None
    serial = {
        None: None,
        "certificate": cert.serial_no,
        "lower-case certificate": cert.serial_no.lower(),
        "public_key": emulator.wechatpay_public_key_id,
        "unknown": "0" * 40,
    }[asked]
    response = send(emulator, merchant if who == "public" else cert_merchant, DETAIL, serial)
    if signer == "public_key":
        assert response.headers["Wechatpay-Serial"] == emulator.wechatpay_public_key_id
        assert signed_by(emulator.wechatpay_public_key, response)
    else:
        assert response.headers["Wechatpay-Serial"] == cert.serial_no
        assert signed_by(public_key_of(cert.certificate), response)


def test_a_merchant_without_an_apiv3_key_stays_in_public_key_mode(
    emulator: Emulator, other: DemoMerchant
) -> None:
    emulator.register_merchant(other.mchid, other.serial_no, other.public_key)
    cert = emulator.platform_certificate
    assert cert is not None
    response = send(emulator, other, DETAIL, cert.serial_no)
    assert response.headers["Wechatpay-Serial"] == emulator.wechatpay_public_key_id
    download = send(emulator, other, "/v3/certificates")
    assert (download.status_code, download.json()["code"]) == (400, "INVALID_REQUEST")
    with pytest.raises(ValueError, match="certificate mode needs an APIv3 key"):
        emulator.register_merchant(
            other.mchid, other.serial_no, other.public_key, signing="platform_certificate"
        )


def test_an_account_without_platform_certificates_answers_404(
    emulator: Emulator, cert_merchant: DemoMerchant
) -> None:
    emulator.settings.platform_certificates = False
    response = send(emulator, cert_merchant, "/v3/certificates")
    assert (response.status_code, response.json()["code"]) == (404, "RESOURCE_NOT_EXISTS")


def test_the_certificate_is_made_on_first_need_and_kept(
    tmp_path: Path, clock: Clock, merchant: DemoMerchant
) -> None:
    data = tmp_path / "emulator.json"
    emu = Emulator(clock=clock, data_path=data)
    merchant.register(emu)
    assert emu.platform_certificate is None
    first = open_certificates(send(emu, merchant, "/v3/certificates"), merchant.apiv3_key)
    again = Emulator(clock=clock, data_path=data)
    assert again.platform_certificate is not None
    assert list(first) == [again.platform_certificate.serial_no]


# --- this project's client in certificate mode, in process ---------------------------------------


def certificate_client(emu: Emulator, who: DemoMerchant, clock: Clock) -> WeChatPayClient:
    credentials = MerchantCredentials(
        mchid=who.mchid,
        serial_no=who.serial_no,
        private_key=who.private_key,
        apiv3_key=who.apiv3_key.encode(),
    )
    return WeChatPayClient(credentials, transport=emu.transport(), clock=clock)


def test_own_client_in_certificate_mode_downloads_decrypts_and_verifies(
    emulator: Emulator, cert_merchant: DemoMerchant, clock: Clock
) -> None:
    with certificate_client(emulator, cert_merchant, clock) as client:
        created = client.busifavor_create(busifavor_create_body(CERT_MCHID, NOW, "cert-busi-1"))
        shown = client.busifavor_detail(created.stock_id)
        stock = client.favor_create(favor_create_body(CERT_MCHID, NOW, "cert-favor-1"))
        assert client.favor_detail(stock.stock_id, CERT_MCHID)["stock_id"] == stock.stock_id
    assert shown["stock_id"] == created.stock_id
    endpoints = [e.endpoint for e in emulator.request_log]
    # One download, at the first answer whose serial the client did not know.
    assert endpoints == [
        "busifavor.create",
        "certificates",
        "busifavor.detail",
        "favor.create",
        "favor.detail",
    ]


def test_own_client_in_certificate_mode_refuses_public_key_answers(
    emulator: Emulator, merchant: DemoMerchant, clock: Clock
) -> None:
    """A public-key-mode merchant's answers carry the PUB_KEY_ID, which certificates cannot
    verify: the client says so instead of trusting them."""
    with (
        certificate_client(emulator, merchant, clock) as client,
        pytest.raises(ResponseVerificationError, match="PUB_KEY_ID"),
    ):
        client.busifavor_create(busifavor_create_body(MCHID, NOW, "pk-busi-1"))


# --- add-merchant --apiv3-key, and one run over loopback HTTP ------------------------------------


def test_add_merchant_apiv3_key_is_shown_once_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "emu" / "emulator.json"
    piped = run("emulator", "add-merchant", "1900000005", "--data", str(data), "--apiv3-key")
    assert piped.exit_code == 0, piped.output
    key_file = data.parent / "1900000005_apiv3_key"
    key = key_file.read_text(encoding="ascii")
    assert re.fullmatch(r"[A-Za-z0-9]{32}", key)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key not in piped.output and "not shown: this output is not a terminal" in piped.output
    assert f"apiv3_key: {{file: {key_file.resolve()}}}" in piped.output
    assert_no_secret(piped.output)
    stored = json.loads(data.read_text(encoding="utf-8"))["merchants"]["1900000005"]
    assert (stored["apiv3_key"], stored["signing"]) == (key, "platform_certificate")
    assert data.stat().st_mode & 0o777 == 0o600
    monkeypatch.setattr(emulator_cmd, "_on_terminal", lambda: True)
    shown = run("emulator", "add-merchant", "1900000006", "--data", str(data), "--apiv3-key")
    new_key = (data.parent / "1900000006_apiv3_key").read_text(encoding="ascii")
    assert shown.output.count(new_key) == 1
    assert f"its APIv3 key, shown this once: {new_key}\n" in shown.output


def test_add_merchant_takes_a_key_from_a_file_and_never_echoes_a_bad_one(tmp_path: Path) -> None:
    data = tmp_path / "emulator.json"
    bad = tmp_path / "short"
    bad.write_text("SecretButShort123", encoding="ascii")
    plain = run("emulator", "add-merchant", "1900000008", "--data", str(data))
    assert plain.exit_code == 0, plain.output
    refused = run(
        "emulator", "add-merchant", "1900000009", "--data", str(data), "--apiv3-key-file", str(bad)
    )
    assert refused.exit_code == 1 and "SecretButShort123" not in refused.output
    assert "17 bytes long; the APIv3 key must be exactly 32 bytes" in refused.output
    good = tmp_path / "key"
    good.write_text("Given0Key1Given0Key1Given0Key1ab\n", encoding="ascii")
    result = run(
        "emulator", "add-merchant", "1900000010", "--data", str(data), "--apiv3-key-file", str(good)
    )
    assert result.exit_code == 0, result.output
    assert "Given0Key1" not in result.output and f"{good} (as given)" in result.output
    stored = json.loads(data.read_text(encoding="utf-8"))["merchants"]
    assert stored["1900000010"]["apiv3_key"] == "Given0Key1Given0Key1Given0Key1ab"
    assert stored["1900000008"]["apiv3_key"] is None
    both = run(
        "emulator", "add-merchant", "1900000011", "--data", str(data), "--apiv3-key",
        "--apiv3-key-file", str(good),
    )  # fmt: skip
    assert both.exit_code == 1 and "not both" in both.output


def test_printed_lines_work_in_certificate_mode_over_loopback(tmp_path: Path) -> None:
    """init --local, add-merchant --apiv3-key, paste the printed lines without the public key:
    this project's client in certificate mode calls the emulator serving that data file."""
    project_dir = tmp_path / "p"
    assert run("init", "--local", str(project_dir)).exit_code == 0
    local = project_dir / scaffold.LOCAL_DIR
    assert (local / "1900000001_apiv3_key").stat().st_mode & 0o777 == 0o600
    result = run(
        "emulator", "add-merchant", "1900000002", "--project", str(project_dir), "--apiv3-key"
    )
    assert result.exit_code == 0, result.output
    lines = result.output.split("under merchants:\n\n", 1)[1]
    assert "    apiv3_key: {file: .reconciler/local/1900000002_apiv3_key}\n" in lines
    certificate_only = "".join(
        line for line in lines.splitlines(keepends=True) if "wechatpay_public_key" not in line
    )
    yaml_path = project_dir / "reconciler.yaml"
    yaml_path.write_text(yaml_path.read_text(encoding="utf-8") + certificate_only, "utf-8")
    project, diagnostics = load_project(yaml_path)
    assert diagnostics == [] and project is not None
    credentials = project.credentials("1900000002", dict(os.environ))
    assert credentials.uses_platform_certificates and not credentials.uses_public_key
    emu = Emulator(EmulatorSettings(), data_path=project_dir / scaffold.EMULATOR_DATA)
    with emu.serve() as server, WeChatPayClient(credentials, base_url=server.base_url) as client:
        created = client.favor_create(favor_create_body("1900000002", time.time(), "cert-loop-1"))
        assert client.favor_detail(created.stock_id, "1900000002")["status"] == "unactivated"
    assert server.errors == []
    assert [e.endpoint for e in emu.request_log][:2] == ["favor.create", "certificates"]


def test_the_apiv3_key_stays_out_of_records_and_errors(tmp_path: Path, clock: Clock) -> None:
    data = tmp_path / "emulator.json"
    assert run("emulator", "add-merchant", "1900000012", "--data", str(data), "--apiv3-key")
    key = (tmp_path / "1900000012_apiv3_key").read_text(encoding="ascii")
    emu = Emulator(clock=clock, data_path=data)
    assert key not in repr(emu.__dict__) and key not in repr(emu.request_log)
    # A damaged data file (a torn copy, say) is refused without quoting what it holds.
    text = data.read_text(encoding="utf-8")
    data.write_text(text[: text.index(key) + 40], encoding="utf-8")
    for args in (["set-balance", "1900000012", "0"], ["add-merchant", "1900000013"]):
        refused = run("emulator", *args, "--data", str(data))
        assert refused.exit_code == 1 and key not in refused.output
        assert "not a reconciler emulator data file" in refused.output
