"""The emulator on a real loopback socket: a threaded HTTP/1.1 server around `Emulator.respond`.

Requests that cannot be framed or routed are answered, never dropped, in WeChat Pay's error
shape `{"code": ..., "message": ...}` (JSON, unsigned, as a gateway answers before any
merchant is known), and the connection is closed after the answer:

- request target with bytes outside ASCII: 400 `INVALID_REQUEST`;
- `Content-Length` that is not one plain decimal number (`abc`, `-1`, `1e3`, empty, or two
  different values): 400 `INVALID_REQUEST`; `Transfer-Encoding: chunked`: 411
  `INVALID_REQUEST`;
- `Content-Length` above `MAX_BODY_BYTES` (1 MiB; real bodies are a few KB): 413
  `PARAM_ERROR`, without reading the body;
- whatever `http.server` refuses itself (request line too long: 414, too many headers: 431,
  malformed request line: 400, ...): that status with `INVALID_REQUEST`.

A JSON body nested deeper than `context.MAX_JSON_DEPTH` is a signed 400 `PARAM_ERROR` from the
app (so in process too), like any other body WeChat Pay refuses.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from reconciler.emulator.app import Emulator
from reconciler.emulator.auth import TARGET_EXTENSION
from reconciler.emulator.settings import EmulatorSettings

IDLE_CONNECTION_SECONDS = 30
MAX_BODY_BYTES = 1 << 20
"""The largest request body read; a longer `Content-Length` is refused unread (413)."""
_DRAIN_BYTES = 1 << 16
_DRAIN_SECONDS = 0.5


class _Refused(Exception):
    """A request answered with an error before it reaches the app."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections give up after this, so no thread waits forever.
    timeout = IDLE_CONNECTION_SECONDS
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the server must not write to stderr per request."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def _serve(self) -> None:
        try:
            length = self._checked_length()
        except _Refused as refused:
            self._refuse(refused.status, refused.code, refused.message)
            return
        body = self.rfile.read(length) if length else b""
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        try:
            request = httpx.Request(
                self.command,
                f"http://{host}{self.path}",
                headers=list(self.headers.items()),
                content=body,
                extensions={TARGET_EXTENSION: self.path.encode("latin-1")},
            )
        except (httpx.InvalidURL, UnicodeEncodeError):
            self._refuse(400, "INVALID_REQUEST", "请求路径不合法")
            return
        outcome = self.server.emulator.respond(request)
        if outcome.delay > 0:
            time.sleep(outcome.delay)
        response = outcome.response
        if response is None:
            self._drop()
            return
        self.send_response(response.status_code)
        for name, value in response.headers.multi_items():
            if response.status_code == 204 and name.lower() == "content-length":
                continue
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.content)

    def _checked_length(self) -> int:
        """The body length to read; _Refused for a request that cannot be framed or is too big."""
        # http.server reads the request line as Latin-1, so a raw byte >= 0x80 shows here as a
        # non-ASCII character; the signature rules only know ASCII targets.
        if not self.path.isascii():
            raise _Refused(400, "INVALID_REQUEST", "请求路径包含非ASCII字符,请先进行URL编码")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _Refused(411, "INVALID_REQUEST", "请求需要Content-Length")
        values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not values:
            return 0
        value = values.pop()
        if values or not (value.isascii() and value.isdigit()):
            raise _Refused(400, "INVALID_REQUEST", "Http头Content-Length值不合法")
        length = int(value)
        if length > MAX_BODY_BYTES:
            raise _Refused(413, "PARAM_ERROR", f"请求体超过{MAX_BODY_BYTES}字节的上限")
        return length

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (line too long, bad syntax...) in the same error shape."""
        self._refuse(code, "INVALID_REQUEST", message or self.responses.get(code, ("",))[0])

    def _refuse(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"code": code, "message": message}, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Request-ID", secrets.token_hex(16).upper())
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True
        self._discard_unread()

    def _discard_unread(self) -> None:
        # Closing a socket with unread bytes makes the kernel send RST, which can destroy the
        # answer before the client reads it. So: end our side, then read (and drop) what the
        # client still sends, briefly and up to a bound.
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(_DRAIN_SECONDS)
            drained = 0
            while drained < _DRAIN_BYTES:
                chunk = self.connection.recv(_DRAIN_BYTES)
                if not chunk:
                    break
                drained += len(chunk)

    def _drop(self) -> None:
        # Close without a byte of response: the client sees the server disconnect.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self.errors: list[BaseException] = []
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Keep the exception for tests instead of printing a traceback to stderr."""
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, ConnectionError | TimeoutError):
            self.errors.append(error)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class EmulatorServer:
    """A running emulator on `base_url`; close it (or use `with`) to stop and join every thread.

    `errors` holds unexpected exceptions raised while handling requests (normally empty).
    """

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = emulator
        self._httpd = _Server((host, port), emulator)
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._closed = False
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"wechatpay-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def errors(self) -> list[BaseException]:
        return list(self._httpd.errors)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> EmulatorServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def run_server(
    port: int,
    data_path: Path | None,
    host: str = "127.0.0.1",
    settings: EmulatorSettings | None = None,
) -> EmulatorServer:
    """Start an emulator (state in `data_path`, if given) serving on host:port; for the CLI."""
    return Emulator(settings, data_path=data_path).serve(host, port)
