"""The emulator on a loopback port: wire format, dropped connections, latency, restarts."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.emulator import (
    DemoMerchant,
    Emulator,
    EmulatorServer,
    EmulatorSettings,
    Faults,
    WechatPayKeys,
    run_server,
)
from reconciler.emulator.keys import generate_keys
from reconciler.emulator.samples import busifavor_create_body, favor_create_body
from reconciler.wechatpay import signing

MCHID = "1900000001"
FAVOR = "/v3/marketing/favor/coupon-stocks"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def merchant() -> DemoMerchant:
    return DemoMerchant.generate(MCHID)


@pytest.fixture(scope="module")
def keys() -> WechatPayKeys:
    return generate_keys()


@pytest.fixture
def emu(keys: WechatPayKeys, merchant: DemoMerchant) -> Emulator:
    emulator = Emulator(EmulatorSettings(rate_limiting=False), keys=keys)
    merchant.register(emulator)
    return emulator


@pytest.fixture
def server(emu: Emulator) -> Iterator[EmulatorServer]:
    with emu.serve() as running:
        yield running
    assert running.errors == []


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def now() -> int:
    return int(time.time())


def send(
    client: httpx.Client,
    server: EmulatorServer,
    merchant: DemoMerchant,
    method: str,
    target: str,
    body: object = None,
) -> httpx.Response:
    request = merchant.request(
        method, target, timestamp=now(), json_body=body, base_url=server.base_url
    )
    return client.send(request)


def verifies(emu: Emulator, response: httpx.Response) -> bool:
    h = response.headers
    message = signing.response_message(
        h["Wechatpay-Timestamp"], h["Wechatpay-Nonce"], response.content
    )
    return signing.verify(emu.wechatpay_public_key, message, h["Wechatpay-Signature"])


def test_create_detail_and_modify_over_http(
    emu: Emulator, server: EmulatorServer, client: httpx.Client, merchant: DemoMerchant
) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    created = send(client, server, merchant, "POST", FAVOR, favor_create_body(MCHID, now(), "h1"))
    assert created.status_code == 200
    assert verifies(emu, created)
    stock_id = created.json()["stock_id"]
    shown = send(
        client,
        server,
        merchant,
        "GET",
        f"/v3/marketing/favor/stocks/{stock_id}?stock_creator_mchid={MCHID}",
    )
    assert shown.json()["stock_name"] == "春季满减券"
    assert shown.headers["Request-ID"]
    assert verifies(emu, shown)
    busi = send(
        client,
        server,
        merchant,
        "POST",
        "/v3/marketing/busifavor/stocks",
        busifavor_create_body(MCHID, now(), "b1"),
    )
    patched = send(
        client,
        server,
        merchant,
        "PATCH",
        f"/v3/marketing/busifavor/stocks/{busi.json()['stock_id']}",
        {"out_request_no": "m1", "comment": "x"},
    )
    assert (patched.status_code, patched.content) == (204, b"")
    assert verifies(emu, patched)


def test_the_signed_target_is_the_one_on_the_wire(
    server: EmulatorServer, client: httpx.Client, merchant: DemoMerchant
) -> None:
    target = (
        f"/v3/marketing/favor/stocks?offset=0&limit=10&stock_creator_mchid={MCHID}"
        "&create_start_time=2026-01-01T00%3A00%3A00%2B08%3A00"
    )
    assert send(client, server, merchant, "GET", target).status_code == 200


def test_a_dropped_connection_commits_nothing(
    emu: Emulator, server: EmulatorServer, client: httpx.Client, merchant: DemoMerchant
) -> None:
    emu.set_faults(Faults(drop_share=1.0, next_requests=1))
    with pytest.raises(httpx.RemoteProtocolError):
        send(client, server, merchant, "POST", FAVOR, favor_create_body(MCHID, now(), "d1"))
    assert emu.stocks == {}
    # The same client carries on over a new connection.
    assert (
        send(
            client, server, merchant, "POST", FAVOR, favor_create_body(MCHID, now(), "d1")
        ).status_code
        == 200
    )


def test_commit_then_drop_over_http(
    emu: Emulator, server: EmulatorServer, client: httpx.Client, merchant: DemoMerchant
) -> None:
    emu.set_faults(Faults(commit_then_drop_share=1.0, endpoints=frozenset({"favor.create"})))
    with pytest.raises(httpx.RemoteProtocolError):
        send(client, server, merchant, "POST", FAVOR, favor_create_body(MCHID, now(), "c1"))
    assert list(emu.stocks) == ["10000001"]
    assert [e.status for e in emu.request_log] == [None]


def test_latency_is_a_real_delay_after_the_commit(
    emu: Emulator, server: EmulatorServer, merchant: DemoMerchant
) -> None:
    emu.set_faults(Faults(latency_ms=400))
    with httpx.Client(timeout=httpx.Timeout(5.0, read=0.1)) as impatient:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            send(impatient, server, merchant, "POST", FAVOR, favor_create_body(MCHID, now(), "l1"))
        assert time.monotonic() - started < 0.4
    assert list(emu.stocks) == ["10000001"]
    emu.set_faults(Faults(latency_ms=150))
    with httpx.Client(timeout=5) as patient:
        started = time.monotonic()
        target = f"/v3/marketing/favor/stocks/10000001?stock_creator_mchid={MCHID}"
        assert send(patient, server, merchant, "GET", target).status_code == 200
        assert time.monotonic() - started >= 0.15


def test_the_server_writes_nothing_to_stdout_or_stderr(
    server: EmulatorServer,
    client: httpx.Client,
    merchant: DemoMerchant,
    capfd: pytest.CaptureFixture[str],
) -> None:
    send(client, server, merchant, "GET", "/v3/marketing/favor/stocks/1?stock_creator_mchid=1")
    client.get(server.base_url + "/v3/certificates")  # unsigned: 401
    assert capfd.readouterr() == ("", "")


def test_close_stops_serving_even_with_an_open_keep_alive_connection(
    emu: Emulator, merchant: DemoMerchant
) -> None:
    server = emu.serve()
    with httpx.Client(timeout=5) as client:
        send(client, server, merchant, "GET", "/v3/certificates")  # leaves the connection open
        started = time.monotonic()
        server.close()
        server.close()
        assert time.monotonic() - started < 5
        with pytest.raises(httpx.TransportError):
            send(client, server, merchant, "GET", "/v3/certificates")


def test_run_server_uses_the_data_file(tmp_path: Path, merchant: DemoMerchant) -> None:
    data = tmp_path / "emulator.json"
    with run_server(0, data, settings=EmulatorSettings(rate_limiting=False)) as server:
        merchant.register(server.emulator)
        with httpx.Client(timeout=10) as client:
            created = send(
                client, server, merchant, "POST", FAVOR, favor_create_body(MCHID, now(), "r1")
            )
        assert created.status_code == 200
    assert Emulator(data_path=data).stocks.keys() == {"10000001"}


# --- a real process, killed and restarted -----------------------------------------------------

SCRIPT = """
import sys, threading
from pathlib import Path
from reconciler.emulator import EmulatorSettings, run_server
server = run_server(0, Path(sys.argv[1]), settings=EmulatorSettings(rate_limiting=False))
sys.stdout.write(f"{server.port}\\n")
sys.stdout.flush()
threading.Event().wait()
"""


def _run_until_killed(data: Path, work: Callable[[str], None]) -> str:
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(data)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            port = proc.stdout.readline().strip()
            assert port.isdigit(), proc.stderr.read() if proc.stderr else ""
            work(f"http://127.0.0.1:{port}")
        finally:
            proc.kill()
            _, stderr = proc.communicate(timeout=10)
    return stderr


def test_stocks_survive_a_killed_server_process(tmp_path: Path, merchant: DemoMerchant) -> None:
    data = tmp_path / "emulator.json"
    setup = Emulator(data_path=data)
    merchant.register(setup)
    public_key_id = setup.wechatpay_public_key_id
    body = favor_create_body(MCHID, now(), "k1")
    created: dict[str, str] = {}

    def create(base_url: str) -> None:
        with httpx.Client(timeout=10) as client:
            request = merchant.request(
                "POST",
                FAVOR,
                timestamp=now(),
                json_body=body,
                base_url=base_url,
            )
            response = client.send(request)
            assert response.status_code == 200
            assert verifies(setup, response)
            created.update(response.json())

    def read_back(base_url: str) -> None:
        with httpx.Client(timeout=10) as client:
            target = f"/v3/marketing/favor/stocks/{created['stock_id']}?stock_creator_mchid={MCHID}"
            shown = client.send(merchant.request("GET", target, timestamp=now(), base_url=base_url))
            assert shown.status_code == 200
            assert shown.json()["create_time"] == created["create_time"]
            assert shown.headers["Wechatpay-Serial"] == public_key_id
            assert verifies(setup, shown)
            # The request-number index survived too: the retry finds the same stock.
            retry = client.send(
                merchant.request(
                    "POST",
                    FAVOR,
                    timestamp=now(),
                    json_body=body,
                    base_url=base_url,
                )
            )
            assert retry.json()["stock_id"] == created["stock_id"]

    assert _run_until_killed(data, create) == ""
    assert _run_until_killed(data, read_back) == ""
