"""A local HTTP server for a dataset folder, with Range support, counting the bytes it serves.

    with serve(folder) as (url, counter):
        ...  # counter["bytes"], counter["requests"]; counter["fail_after"] = n breaks later bodies

Python's SimpleHTTPRequestHandler ignores Range; this handler answers ``bytes=a-b``, ``a-``
and ``-n`` with 206 and HEAD with the length, on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def _handler(root: Path, counter: dict):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _target(self) -> Path | None:
            rel = self.path.split("?", 1)[0].lstrip("/")
            path = (root / rel).resolve()
            if root not in path.parents or not path.is_file():
                self.send_error(404)
                return None
            return path

        def do_HEAD(self) -> None:
            path = self._target()
            if path is None:
                return
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()

        def do_GET(self) -> None:
            path = self._target()
            if path is None:
                return
            size = path.stat().st_size
            start, end = 0, size - 1
            header = self.headers.get("Range")
            status = 200
            if header:
                m = RANGE.match(header.strip())
                if not m or (not m.group(1) and not m.group(2)):
                    self.send_error(416)
                    return
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                else:
                    start = max(0, size - int(m.group(2)))
                status = 206
            counter["requests"] += 1
            if counter.get("fail_after") is not None and counter["requests"] > counter["fail_after"]:
                self.send_error(500, "injected failure")
                return
            length = max(0, end - start + 1)
            self.send_response(status)
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            with open(path, "rb") as f:
                f.seek(start)
                left = length
                while left:
                    chunk = f.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
                    counter["bytes"] += len(chunk)

    return Handler


@contextmanager
def serve(folder: str | os.PathLike):
    root = Path(folder).resolve()
    counter = {"bytes": 0, "requests": 0, "fail_after": None}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, counter))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", counter
    finally:
        server.shutdown()
        server.server_close()
