"""Only fingerprints leave the machine: every request of `blindmatch report|status|withdraw`
goes through a recording proxy (a real loopback HTTP server that forwards to the real
`blindmatch serve`), and nothing it recorded holds a 64-byte window of any media file, raw
or in hex, nor a file or folder name."""

from __future__ import annotations

import http.client
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from blindmatch.client.reporting import Receipt
from report_support import blindmatch, picture, video
from service_support import Server, start_server

WINDOW = 64


class _Recorder(http.server.ThreadingHTTPServer):
    def __init__(self, upstream_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream_port = upstream_port
        self.requests: list[bytes] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(http.server.BaseHTTPRequestHandler):
    """Record the request line, headers and body; forward them; relay the answer."""

    server: _Recorder
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.requests.append(
                self.requestline.encode() + b"\n" + bytes(self.headers) + body
            )
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # http.server dispatches on these names.
    do_GET = do_POST = do_DELETE = _forward  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        """No log lines."""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path / "data", "", limits={"intake_per_hour": "1000"})
    yield running
    running.stop()


@pytest.fixture
def recorder(server: Server) -> Iterator[_Recorder]:
    proxy = _Recorder(server.port)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()
    thread.join()


def _windows(data: bytes, size: int) -> set[bytes]:
    return {data[i : i + size] for i in range(len(data) - size + 1)}


def test_no_window_of_any_file_and_no_name_leaves(recorder: _Recorder, tmp_path: Path) -> None:
    media = tmp_path / "private-folder-xq"
    files = [
        picture(media / "holiday-photo-zz1.jpg", 901),
        picture(media / "flat-picture-zz2.jpg", 0, flat=True),
        video(media / "secret-clip-zz3.mp4", 902),
    ]
    sent = blindmatch("report", "--server", recorder.url, "--age", "minor", "--json", str(media))
    assert sent.returncode == 0, sent.stderr
    receipts = Receipt.find_all(sent.stdout)
    assert len(receipts) == 3
    saved = tmp_path / "receipts.jsonl"
    saved.write_text(sent.stdout)
    for command in ("status", "withdraw", "status"):
        done = blindmatch(command, "--server", recorder.url, "--receipt-file", str(saved))
        assert done.returncode == 0, done.stderr
    # Through --hashes too (the records hold the names; the requests must not).
    hashed = blindmatch("hash", str(media))
    other = blindmatch(
        "report", "--server", recorder.url, "--age", "adult", "--hashes", "-", stdin=hashed.stdout
    )
    assert other.returncode == 0, other.stderr

    # health + 3 reports + 3 x 3 status/withdraw + health + 3 reports
    assert len(recorder.requests) == 1 + 3 + 9 + 1 + 3
    everything = b"\n".join(recorder.requests)
    assert everything.count(b"POST /v1/reports ") == 6
    raw = _windows(everything, WINDOW)
    hexed = _windows(everything.lower(), 2 * WINDOW)
    for path in files:
        data = path.read_bytes()
        assert len(data) > 500
        for i in range(len(data) - WINDOW + 1):
            window = data[i : i + WINDOW]
            assert window not in raw, f"{path.name}: bytes {i}..{i + WINDOW} left the machine"
            assert window.hex().encode() not in hexed, f"{path.name}: hex of bytes {i}.. left"
    for name in ("private-folder-xq", "holiday-photo", "flat-picture", "secret-clip", "zz1"):
        assert name.encode() not in everything
    assert str(tmp_path).encode() not in everything
    # What did leave: fingerprints (the photo's SHA-256 in hex is in a body) and receipts
    # only in their header, the one place the service reads them.
    import hashlib

    assert hashlib.sha256(files[0].read_bytes()).hexdigest().encode() in everything
    for receipt in receipts:
        assert everything.count(receipt.secret.encode()) == 3
        assert f"Blindmatch-Receipt: {receipt.secret}".encode() in everything
