"""The service under faults and load: several workers, kill -9, rotation, downloads, CLI errors.

Every case runs the real ``blindmatch serve`` on loopback, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from blindmatch.protocols.messages import EvaluateRequest, Hello, ServerInfo, decode
from blindmatch.psi.group import Element
from service_support import (  # noqa: F401 - fixtures
    BLINDMATCH,
    Server,
    database_url,
    postgres,
    references,
    start_server,
    wait_published,
)


def _intake(client: httpx.Client, number: int) -> httpx.Response:
    digest = hashlib.sha256(f"report {number}".encode()).hexdigest()
    return client.post(
        "/v1/reports",
        json={
            "content_kind": "image",
            "age_attestation": "adult",
            "fingerprints": [{"signal": "sha256", "hash": digest}],
        },
    )


@dataclass
class TwoWorkers:
    """A server with two workers on one database, shared by the module's tests that need
    one (a start costs seconds); a test that kills it leaves the next a new one."""

    data: Path
    database_url: str
    server: Server | None = None

    def running(self) -> Server:
        if self.server is None or self.server.process.poll() is not None:
            self.server = start_server(
                self.data, self.database_url, workers=2, limits={"intake_per_hour": "100000"}
            )
        return self.server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def two_workers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TwoWorkers]:
    url = ""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").new_database()
    shared = TwoWorkers(tmp_path_factory.mktemp("two-workers") / "data", url)
    try:
        yield shared
    finally:
        if shared.server is not None:
            shared.server.stop()


def test_two_workers_share_one_quota(two_workers: TwoWorkers) -> None:
    server = two_workers.running()
    out = server.admin("platform", "create", "pair", "--daily-elements", "400")
    auth = {"Authorization": f"Bearer {json.loads(out.stdout)['api_key']}"}
    with server.client() as client:
        opened = client.post("/v1/match/sessions", content=Hello().encode(), headers=auth)
        assert opened.status_code == 201
        info = decode(opened.content)
        assert isinstance(info, ServerInfo)
        assert info.element_limit == 400
        path = opened.headers["Location"]
        element = Element(bytes(info.public_key))

        def send(batch_id: int) -> int:
            request = EvaluateRequest(
                info.suite, info.mode, info.key_epoch, info.key_id, batch_id, (element,) * 30
            )
            with server.client() as own:
                return own.post(path, content=request.encode(), headers=auth).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(send, range(24)))
    assert statuses.count(200) == 13  # 13 * 30 = 390 <= 400 < 14 * 30
    assert statuses.count(429) == 11


def test_kill_9_in_a_burst_of_intakes_loses_no_acknowledged_report(
    two_workers: TwoWorkers,
) -> None:
    data, url = two_workers.data, two_workers.database_url
    server = two_workers.running()
    acknowledged: list[tuple[str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def burst(worker: int) -> None:
        with server.client() as client:
            for number in range(worker * 10_000, worker * 10_000 + 10_000):
                if stop.is_set():
                    return
                try:
                    answer = _intake(client, number)
                except httpx.TransportError:
                    return
                if answer.status_code == 201:
                    with lock:
                        acknowledged.append((answer.json()["report_id"], answer.json()["receipt"]))

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    while True:
        with lock:
            if len(acknowledged) >= 40:
                break
        threads[0].join(0.05)
    server.stop(kill=True)
    stop.set()
    for thread in threads:
        thread.join()
    restarted = start_server(data, url)
    try:
        with restarted.client() as client:
            for report_id, receipt in acknowledged:
                status = client.get(
                    f"/v1/reports/{report_id}", headers={"Blindmatch-Receipt": receipt}
                )
                assert status.status_code == 200
        verified = restarted.admin("--json", "audit", "verify")
        assert json.loads(verified.stdout)["ok"] is True
    finally:
        restarted.stop()


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:  # noqa: F811
    running = start_server(tmp_path / "data", database_url)
    yield running
    running.stop()


def test_rotation_downloads_and_old_epoch_grace(server: Server) -> None:
    with server.client() as client:
        assert _intake(client, 1).status_code == 201
        manifest = wait_published(client, lambda m: references(m, "sha256") == 1)
        deltas = manifest["deltas"]
        assert isinstance(deltas, list)
        # The report is in the full index or in a delta: both are served alike.
        url = (deltas or [manifest["indexes"]["sha256"]])[-1]["url"]  # type: ignore[index]
        whole = client.get(url)
        etag = whole.headers["ETag"]
        assert etag == f'"{hashlib.sha256(whole.content).hexdigest()}"'
        part = client.get(url, headers={"Range": "bytes=8-23"})
        assert part.status_code == 206
        assert part.content == whole.content[8:24]
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
        assert client.get("/v1/index/0/99/sha256").status_code == 404

        rotated = json.loads(server.admin("--json", "keys", "rotate").stdout)
        assert rotated["epoch"] == 1
        keys = client.get("/v1/keys").json()
        assert keys["current_epoch"] == 1
        assert [e["epoch"] for e in keys["epochs"]] == [0, 1]
        fresh = wait_published(client, lambda m: m["epoch"] == 1)
        assert references(fresh, "sha256") == 1
        old = client.get("/v1/index/manifest", params={"epoch": 0})
        assert old.status_code == 200
        assert json.loads(old.json()["manifest"])["retires_at"] is not None
        assert client.get("/v1/index/manifest", params={"epoch": 7}).status_code == 404


def test_cli_mistakes_are_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = [
        [
            "admin",
            "--data-dir",
            str(tmp_path / "d"),
            "--database-url",
            "mysql://x/y",
            "platform",
            "list",
        ],
        ["admin", "--data-dir", str(tmp_path / "e"), "platform", "disable", "nobody"],
        ["serve", "--data-dir", str(tmp_path / "f"), "--port", "0"],
    ]
    for args in cases:
        done = subprocess.run([*BLINDMATCH, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 2, args
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) <= 3  # argparse adds its usage line
