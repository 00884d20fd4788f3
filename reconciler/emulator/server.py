"""The emulator on a real loopback socket: a threaded HTTP/1.1 server around `Emulator.respond`."""

from __future__ import annotations

import contextlib
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
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._plain(411, b"Content-Length required")
            return
        length = int(self.headers.get("Content-Length") or 0)
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
            self._plain(400, b"bad request target")
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

    def _plain(self, status: int, text: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(text)
        self.close_connection = True

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
