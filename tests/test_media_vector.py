"""The image upload's signature against an independent implementation.

The vector (tests/vectors/image_upload_vector.json) takes the docs' example upload (file content
`pic1` named `filea.jpg`) and the signing guide's example timestamp and nonce. Here the meta
JSON, the five-line message and the RSA signature are rebuilt with hashlib and `cryptography`
alone, and the request the client really sends must carry exactly that signature, over exactly
that `meta` part, with an unquoted boundary.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from reconciler.wechatpay import signing
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.credentials import MerchantCredentials
from reconciler.wechatpay.errors import ApiResponseError

VECTORS = Path(__file__).parent / "vectors"


def vector() -> dict[str, str]:
    data: dict[str, str] = json.loads((VECTORS / "image_upload_vector.json").read_text())
    return data


def vector_key() -> rsa.RSAPrivateKey:
    pem = (VECTORS / vector()["key_file"]).read_bytes()
    key = serialization.load_pem_private_key(pem.replace(b"TESTING KEY", b"PRIVATE KEY"), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def independent_message(v: dict[str, str], meta: str) -> bytes:
    return f"POST\n{v['path']}\n{v['timestamp']}\n{v['nonce']}\n{meta}\n".encode()


def independent_signature(message: bytes) -> str:
    raw = vector_key().sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


def test_the_meta_json_is_the_docs_shape_with_the_hex_digest() -> None:
    v = vector()
    digest = hashlib.sha256(v["file_content"].encode()).hexdigest()
    assert v["meta"] == json.dumps(
        {"filename": v["filename"], "sha256": digest}, separators=(",", ":")
    )
    # The docs' example differs only in its placeholder digest.
    docs = json.loads(v["docs_example_meta"])
    assert docs.keys() == json.loads(v["meta"]).keys() and docs["filename"] == v["filename"]
    assert signing.upload_meta(v["filename"], v["file_content"].encode()).decode() == v["meta"]


def test_the_pinned_signature_is_the_independent_one() -> None:
    v = vector()
    assert independent_signature(independent_message(v, v["meta"])) == v["signature"]
    # The docs' own example meta signs like any other body line.
    docs_message = independent_message(v, v["docs_example_meta"])
    assert (
        signing.request_message(
            "POST", v["path"], v["timestamp"], v["nonce"], v["docs_example_meta"].encode()
        )
        == docs_message
    )


def test_the_client_sends_the_pinned_signature_over_the_meta_part() -> None:
    v = vector()
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(400, json={"code": "PARAM_ERROR", "message": "stop here"})

    creds = MerchantCredentials(
        mchid="1900000001", serial_no=v["serial_no"], private_key=vector_key(), apiv3_key=b"k" * 32
    )
    client = WeChatPayClient(
        creds,
        transport=httpx.MockTransport(answer),
        clock=lambda: float(v["timestamp"]),
        nonce_source=lambda: v["nonce"],
        sleep=lambda _: None,
    )
    with client, pytest.raises(ApiResponseError):
        client.media_upload(v["filename"], v["file_content"].encode())
    (request,) = seen
    params = signing.parse_authorization(request.headers["Authorization"])
    assert params is not None
    assert params["signature"] == v["signature"]
    assert params["timestamp"] == v["timestamp"] and params["nonce_str"] == v["nonce"]

    content_type = request.headers["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    boundary = content_type.split("boundary=", 1)[1]
    assert '"' not in boundary
    body = request.content
    meta_part = (
        b'Content-Disposition: form-data; name="meta"\r\n'
        b"Content-Type: application/json\r\n\r\n" + v["meta"].encode() + b"\r\n"
    )
    file_part = (
        b'Content-Disposition: form-data; name="file"; filename="filea.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\npic1\r\n"
    )
    dash = b"--" + boundary.encode()
    assert body == dash + b"\r\n" + meta_part + dash + b"\r\n" + file_part + dash + b"--\r\n"
