"""The emulator's marketing image upload: signed over `meta` only, the usual mistakes refused."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import httpx
import pytest

from reconciler.emulator import DemoMerchant, Emulator
from reconciler.emulator.routes_media import MEDIA_URL, UPLOAD_PATH
from reconciler.emulator.settings import EmulatorSettings
from reconciler.wechatpay import signing
from reconciler.wechatpay.client import WeChatPayClient, multipart_body
from reconciler.wechatpay.credentials import MerchantCredentials
from tests.emulator_support import Clock
from tests.media_support import image_bytes

API = "https://api.mch.weixin.qq.com"
PNG = image_bytes(120, 120)


def upload_request(
    who: DemoMerchant,
    now: int,
    *,
    filename: str = "logo.png",
    content: bytes = PNG,
    meta: bytes | None = None,
    boundary: str = "b0undary",
    content_type: str | None = None,
    file_name_in_part: str | None = None,
    sign_over: Callable[[bytes, bytes], bytes] = lambda meta, body: meta,
) -> httpx.Request:
    meta = meta if meta is not None else signing.upload_meta(filename, content)
    body = multipart_body(boundary, meta, file_name_in_part or filename, content)
    headers = {
        "Accept": "application/json",
        "User-Agent": "test/1",
        "Content-Type": content_type or f"multipart/form-data; boundary={boundary}",
    }
    request = httpx.Request("POST", API + UPLOAD_PATH, headers=headers, content=body)
    nonce = "N0NCE" * 4
    message = signing.request_message("POST", UPLOAD_PATH, now, nonce, sign_over(meta, body))
    request.headers["Authorization"] = signing.authorization(
        who.mchid, who.serial_no, now, nonce, signing.sign(who.private_key, message)
    )
    return request


def error(response: httpx.Response) -> tuple[int, str, str]:
    data = response.json()
    return response.status_code, data["code"], data["message"]


def test_a_correct_upload_answers_a_url_that_depends_on_the_content_only(
    emu: Emulator, clock: Clock, merchant: DemoMerchant, other: DemoMerchant
) -> None:
    first = emu.handle(upload_request(merchant, int(clock.now)))
    assert first.status_code == 200, first.text
    digest = hashlib.sha256(PNG).hexdigest()
    assert first.json() == {"media_url": MEDIA_URL.format(digest=digest[:40])}
    again = emu.handle(upload_request(other, int(clock.now), filename="other.png"))
    assert again.json() == first.json()
    assert [e.endpoint for e in emu.request_log] == ["media.image_upload"] * 2


def test_a_signature_over_the_whole_body_is_a_sign_error(
    emu: Emulator, clock: Clock, merchant: DemoMerchant
) -> None:
    response = emu.handle(
        upload_request(merchant, int(clock.now), sign_over=lambda meta, body: body)
    )
    status, code, _ = error(response)
    assert (status, code) == (401, "SIGN_ERROR")
    info = response.json()["detail"]["sign_information"]
    assert info["url"] == UPLOAD_PATH


def test_a_quoted_boundary_is_a_sign_error(
    emu: Emulator, clock: Clock, merchant: DemoMerchant
) -> None:
    request = upload_request(
        merchant, int(clock.now), content_type='multipart/form-data; boundary="b0undary"'
    )
    status, code, message = error(emu.handle(request))
    assert (status, code) == (401, "SIGN_ERROR") and "quoted" in message


@pytest.mark.parametrize(
    "digest",
    [
        "base64",  # the digest Base64-encoded instead of hex
        "other",  # another file's digest
    ],
)
def test_a_digest_that_is_not_the_files_hex_sha256_is_a_sign_error(
    emu: Emulator, clock: Clock, merchant: DemoMerchant, digest: str
) -> None:
    import base64

    value = (
        base64.b64encode(hashlib.sha256(PNG).digest()).decode()
        if digest == "base64"
        else hashlib.sha256(b"another").hexdigest()
    )
    meta = json.dumps({"filename": "logo.png", "sha256": value}).encode()
    status, code, _ = error(emu.handle(upload_request(merchant, int(clock.now), meta=meta)))
    assert (status, code) == (401, "SIGN_ERROR")


def test_upper_case_hex_is_accepted(emu: Emulator, clock: Clock, merchant: DemoMerchant) -> None:
    meta = json.dumps(
        {"filename": "logo.png", "sha256": hashlib.sha256(PNG).hexdigest().upper()}
    ).encode()
    assert emu.handle(upload_request(merchant, int(clock.now), meta=meta)).status_code == 200


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"file_name_in_part": "other.png"}, "文件名不一致"),
        ({"filename": "logo.jpg"}, "文件后缀与图片格式不符"),
        ({"filename": "logo.gif"}, "后缀"),
        ({"content": image_bytes(10, 10, "GIF"), "filename": "logo.png"}, "图片格式不支持"),
        ({"content": b"not an image at all"}, "图片格式不支持"),
        ({"content": PNG + b"\0" * (2 * 1024 * 1024)}, "2M"),
    ],
)
def test_param_errors(
    emu: Emulator, clock: Clock, merchant: DemoMerchant, change: dict[str, object], words: str
) -> None:
    request = upload_request(merchant, int(clock.now), **change)  # type: ignore[arg-type]
    status, code, message = error(emu.handle(request))
    assert (status, code) == (400, "PARAM_ERROR") and words in message, message


def test_a_missing_part_is_a_param_error(
    emu: Emulator, clock: Clock, merchant: DemoMerchant
) -> None:
    request = upload_request(merchant, int(clock.now))
    body = request.content.split(b'--b0undary\r\nContent-Disposition: form-data; name="file"')[0]
    broken = httpx.Request(
        "POST", API + UPLOAD_PATH, headers=dict(request.headers), content=body + b"--b0undary--\r\n"
    )
    status, code, _ = error(emu.handle(broken))
    assert (status, code) == (400, "PARAM_ERROR")


def test_the_client_uploads_through_the_emulator(clock: Clock, merchant: DemoMerchant) -> None:
    emu = Emulator(EmulatorSettings(rate_limiting=False), clock=clock)
    merchant.register(emu)
    creds = MerchantCredentials(
        mchid=merchant.mchid,
        serial_no=merchant.serial_no,
        private_key=merchant.private_key,
        wechatpay_public_key=emu.wechatpay_public_key,
        wechatpay_public_key_id=emu.wechatpay_public_key_id,
    )
    with WeChatPayClient(creds, transport=emu.transport(), clock=clock) as client:
        url = client.media_upload("logo.png", PNG)
        assert url == MEDIA_URL.format(digest=hashlib.sha256(PNG).hexdigest()[:40])
    assert [e.status for e in emu.request_log if e.endpoint == "media.image_upload"] == [200]
