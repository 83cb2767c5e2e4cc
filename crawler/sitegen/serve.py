"""Serve a generated site over HTTP/1.1: static files, 301s from `_redirects.json`, 404s, and a request log."""

import json
import sys
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".csv": "text/csv; charset=utf-8", ".json": "application/json",
                 ".txt": "text/plain; charset=utf-8", ".pdf": "application/pdf", ".png": "image/png"}  # fmt: skip


class RequestLog(list):
    """Paths (with query strings) in the order requests arrived; appends are serialised by a lock."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def record(self, path: str) -> None:
        """Remember one request path."""
        with self.lock:
            self.append(path)


class SiteServer(ThreadingHTTPServer):
    """A threaded server that knows the site's redirects and logs every request path."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client hanging up mid-response (a crawler skipping a body) is normal: no traceback for it."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    # socketserver's default backlog is 5: a crawler opening dozens of connections at once overflows
    # it, the kernel drops SYNs, and each dropped one costs the client a 1 s retransmit.
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], root: Path, quiet: bool = True) -> None:
        self.root, self.quiet = Path(root), quiet
        redirect_file = self.root / "_redirects.json"
        self.redirects: dict[str, str] = json.loads(redirect_file.read_text()) if redirect_file.exists() else {}
        self.request_log = RequestLog()
        super().__init__(address, partial(SiteHandler, directory=str(self.root)))

    def shutdown(self) -> None:
        """Stop serving and release the socket."""
        super().shutdown()
        self.server_close()


class SiteHandler(SimpleHTTPRequestHandler):
    """Static files with query strings ignored, 301 for planned redirects, 404 (not listings) for folders."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, keep-alive requests stall ~40 ms on delayed ACKs.
    disable_nagle_algorithm = True
    timeout = 60  # seconds an idle keep-alive connection may hold a thread
    server: SiteServer

    def do_GET(self) -> None:
        """Serve a file or a redirect."""
        if not self.redirect():
            super().do_GET()

    def do_HEAD(self) -> None:
        """Headers only."""
        if not self.redirect():
            super().do_HEAD()

    def redirect(self) -> bool:
        """Log the request; answer 301 when its path is a planned redirect."""
        self.server.request_log.record(self.path)
        target = self.server.redirects.get(unquote(urlsplit(self.path).path))
        if target is None:
            return False
        self.send_response(HTTPStatus.MOVED_PERMANENTLY)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return True

    def list_directory(self, path):
        """Folders without an index.html are not browsable."""
        self.send_error(HTTPStatus.NOT_FOUND, "File not found")
        return None

    def guess_type(self, path) -> str:
        """Content type by extension; extension-less files under /data/ are JSON exports."""
        suffix = Path(path).suffix.lower()
        if suffix in CONTENT_TYPES:
            return CONTENT_TYPES[suffix]
        if not suffix and Path(path).parent.name == "data":
            return "application/json"
        return super().guess_type(path)

    def log_message(self, format: str, *args) -> None:
        """Per-request logging only when the server is not quiet."""
        if not self.server.quiet:
            super().log_message(format, *args)


def start_server(root: Path, port: int = 0, host: str = "127.0.0.1") -> tuple[SiteServer, str]:
    """Serve `root` from a daemon thread; returns (server, base URL). `server.shutdown()` stops it."""
    server = SiteServer((host, port), root, quiet=True)
    # A short poll interval makes shutdown() return quickly, which keeps test teardown fast.
    serve_forever = partial(server.serve_forever, poll_interval=0.05)
    threading.Thread(target=serve_forever, name="sitegen-server", daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def serve(root: Path, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False) -> None:
    """Serve `root` until interrupted (Ctrl-C stops cleanly)."""
    server = SiteServer((host, port), root, quiet=quiet)
    # always printed: with port 0 this line is the only way to learn the address
    print(f"Serving {root} at http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
