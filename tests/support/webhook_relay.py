"""A real HTTP endpoint standing in for the gateway's ``POST /webhooks/{provider}``: it hands the
provider name, headers and raw body to ``forward`` and answers with the status that returns."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Forward = Callable[[str, Mapping[str, str], bytes], int]


class WebhookRelay:
    """Start it first (the services' settings need its URL), then set ``forward``."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.forward: Forward | None = None
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                provider = self.path.rsplit("/", 1)[-1]
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                assert relay.forward is not None, "the relay is not attached to a service"
                status = relay.forward(provider, dict(self.headers.items()), body)
                relay.statuses.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._closers: list[Callable[[], None]] = []

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for closer in self._closers:
            closer()
