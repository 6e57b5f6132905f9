"""Serve the run reports (Splink charts, run summary) so the UI's metadata links open them.

Dagster's UI cannot open `file://` paths, and behind the authenticating reverse proxy the README
recommends a machine path means nothing to the browser. `satudata ui` therefore serves
`<state>/reports/` over HTTP next to the webserver, on loopback like the webserver itself
(SATUDATA_REPORTS_PORT, default 3001), and the assets link every chart as
`SATUDATA_REPORTS_URL/<path under reports>` (`config.report_url`). Behind a proxy, route a path
(e.g. `/satudata-reports/`) to this port and set SATUDATA_REPORTS_URL to it.

The reports hold personal data (the comparison viewer and the waterfall chart show sample pairs):
the server answers GET/HEAD for files only (no directory listings, nothing outside the folder),
tells browsers not to cache or sniff, and must never be bound to a public address without the proxy.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path


class ReportHandler(http.server.SimpleHTTPRequestHandler):
    """Files under the reports folder; directories are not listed."""

    def list_directory(self, path):  # noqa: D102 (no listings: run ids are not to be browsed)
        self.send_error(404, "Not found")
        return None

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        """Quiet: request lines name run ids and files only, but the terminal belongs to `dagster dev`."""


def start(directory: Path, host: str = "127.0.0.1", port: int = 3001) -> http.server.HTTPServer:
    """Serve `directory` on host:port in a daemon thread; returns the server (`.shutdown()` stops it)."""
    handler = functools.partial(ReportHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="satudata-reports", daemon=True).start()
    return server
