"""Requests the emulator used to answer by dropping the connection (issue 10, defect 6): each
now gets a 4xx in WeChat Pay's error shape, in process and on a loopback port."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from reconciler.emulator import DemoMerchant, Emulator, EmulatorServer
from reconciler.emulator.context import MAX_JSON_DEPTH, NESTED_TOO_DEEP
from reconciler.emulator.server import MAX_BODY_BYTES
from tests.emulator_support import Clock

FAVOR = "/v3/marketing/favor/coupon-stocks"
DEPTH = 100_000


@pytest.fixture
def server(emu: Emulator) -> Iterator[EmulatorServer]:
    with emu.serve() as running:
        yield running
    assert running.errors == []  # nothing failed inside a handler


def nested_request(
    merchant: DemoMerchant, clock: Clock, base_url: str, depth: int = DEPTH
) -> httpx.Request:
    content = b'{"a":' * depth + b"1" + b"}" * depth
    request = httpx.Request(
        "POST",
        base_url + FAVOR,
        headers={
            "Accept": "application/json",
            "User-Agent": "edge-test/1",
            "Content-Type": "application/json",
        },
        content=content,
    )
    return merchant.sign(request, timestamp=int(clock.now), nonce="N" * 32)


def error_shape(status: int, body: bytes) -> dict[str, object]:
    assert 400 <= status < 500, (status, body)
    data = json.loads(body)
    assert isinstance(data, dict)
    assert isinstance(data["code"], str) and data["code"]
    assert isinstance(data["message"], str) and data["message"]
    return data


# 100,000 levels break the JSON parser itself; one level beyond the documented limit is refused
# the same way, before any check walks the value.
@pytest.mark.parametrize("depth", [DEPTH, MAX_JSON_DEPTH + 1])
def test_deeply_nested_json_in_process(
    emu: Emulator, merchant: DemoMerchant, clock: Clock, depth: int
) -> None:
    response = emu.handle(nested_request(merchant, clock, "https://api.mch.weixin.qq.com", depth))
    data = error_shape(response.status_code, response.content)
    assert (response.status_code, data["code"]) == (400, "PARAM_ERROR")
    assert data["message"] == NESTED_TOO_DEEP
    assert emu.stocks == {}


def test_deeply_nested_json_on_a_port(
    server: EmulatorServer, merchant: DemoMerchant, clock: Clock
) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.send(nested_request(merchant, clock, server.base_url))
    data = error_shape(response.status_code, response.content)
    assert (response.status_code, data["code"]) == (400, "PARAM_ERROR")
    assert data["message"] == NESTED_TOO_DEEP


def test_json_at_the_depth_limit_is_not_refused_for_its_depth(
    emu: Emulator, merchant: DemoMerchant, clock: Clock
) -> None:
    request = nested_request(merchant, clock, "https://api.mch.weixin.qq.com", MAX_JSON_DEPTH)
    response = emu.handle(request)
    assert response.json()["message"] != NESTED_TOO_DEEP


def exchange(server: EmulatorServer, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send raw bytes; return the status and body of the one response the server sends."""
    with socket.create_connection((server.host, server.port), timeout=10) as conn:
        conn.sendall(head + b"\r\n" + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = conn.recv(65536)
            assert chunk, f"connection closed without an answer; got {received!r}"
            received += chunk
        header, _, rest = received.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = dict(line.split(": ", 1) for line in lines[1:])
        length = int(fields["Content-Length"])
        while len(rest) < length:
            chunk = conn.recv(65536)
            assert chunk, "connection closed in the middle of the body"
            rest += chunk
        assert fields["Content-Type"] == "application/json"
    return status, rest[:length]


def request_head(target: bytes, merchant: DemoMerchant, clock: Clock, *extra: bytes) -> bytes:
    # A well-formed Authorization (the signature cannot be right: it never gets that far).
    auth = (
        f'WECHATPAY2-SHA256-RSA2048 mchid="{merchant.mchid}",nonce_str="N",signature="AA==",'
        f'timestamp="{int(clock.now)}",serial_no="{merchant.serial_no}"'
    ).encode()
    lines = [
        b"POST " + target + b" HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Accept: application/json",
        b"User-Agent: edge-test/1",
        b"Content-Type: application/json",
        b"Authorization: " + auth,
        *extra,
    ]
    return b"".join(line + b"\r\n" for line in lines)


def test_raw_non_ascii_bytes_in_the_path(
    server: EmulatorServer, merchant: DemoMerchant, clock: Clock
) -> None:
    target = FAVOR.encode() + "/批次".encode()
    status, body = exchange(server, request_head(target, merchant, clock, b"Content-Length: 0"))
    data = error_shape(status, body)
    assert (status, data["code"]) == (400, "INVALID_REQUEST")


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1e3", b" ", b"12, 13"])
def test_content_length_that_is_not_a_number(
    server: EmulatorServer, merchant: DemoMerchant, clock: Clock, value: bytes
) -> None:
    head = request_head(FAVOR.encode(), merchant, clock, b"Content-Length: " + value)
    status, body = exchange(server, head, b"{}")
    data = error_shape(status, body)
    assert (status, data["code"]) == (400, "INVALID_REQUEST")
    assert "Content-Length" in str(data["message"])


def test_content_length_beyond_the_limit(
    server: EmulatorServer, merchant: DemoMerchant, clock: Clock
) -> None:
    for length in (10**12, MAX_BODY_BYTES + 1):
        head = request_head(FAVOR.encode(), merchant, clock, b"Content-Length: %d" % length)
        status, body = exchange(server, head, b"{}")
        data = error_shape(status, body)
        assert (status, data["code"]) == (413, "PARAM_ERROR")
        assert str(MAX_BODY_BYTES) in str(data["message"])
