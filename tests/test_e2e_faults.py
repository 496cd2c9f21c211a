"""The end-to-end matrix of issue 11 under faults: a key rotation in the middle of a
platform's stream, a daily quota spent by 50 concurrent clients, a ``kill -9`` of the
server during a platform's run, and a tampered index or manifest or a wrong pinned key
through ``blindmatch match``. Every case runs real ``blindmatch serve`` processes (SQLite
and PostgreSQL where the database takes part) and a real platform client.

Observation only: an httpx event hook counts answers and triggers the fault at a chosen
point of the run (a rotation after the third answered batch, a kill after the second);
nothing stands in for the server or the client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from blindmatch import errors
from blindmatch.client import AsyncPlatformClient, MatchReport, PlatformClient
from blindmatch.protocols import Upload
from blindmatch.protocols.messages import MessageType
from e2e_support import (
    FAST,
    TamperingProxy,
    create_platform,
    flip_bits,
    pinned_key,
    quota_used,
    report_hashes,
)
from report_support import blindmatch, one_line
from service_support import (  # noqa: F401 - fixtures
    Server,
    postgres,
    published_references,
    start_server,
    wait_published,
)

HIT_BYTES = b"bytes of a reported file"
MD5 = hashlib.md5(HIT_BYTES, usedforsecurity=False).digest()
SHA256 = hashlib.sha256(HIT_BYTES).digest()
PDQ = "f" * 16 + "0" * 16 + "a5" * 8 + "3c" * 8
LIMITS = {"intake_per_hour": "1000"}


def _clearinghouse(data: Path, url: str, *, workers: int = 2) -> Server:
    """A server with one report (MD5, SHA-256, PDQ) published."""
    server = start_server(data, url, workers=workers, limits=LIMITS)
    try:
        report_hashes(
            server,
            [
                {"signal": "md5", "hash": MD5.hex()},
                {"signal": "sha256", "hash": SHA256.hex()},
                {"signal": "pdq", "hash": PDQ, "quality": 90},
            ],
        )
        with server.client() as http:
            wait_published(http, lambda m: published_references(m, "pdq") == 1)
    except BaseException:
        server.stop(kill=True)
        raise
    return server


@dataclass
class Live:
    """The clearinghouse of the faults module on one database (2 workers); a test that
    kills it leaves the restarted server here for the next."""

    server: Server
    database_url: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    url = ""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").new_database()
    state = Live(_clearinghouse(tmp_path_factory.mktemp("live") / "data", url), url)
    try:
        yield state
    finally:
        state.server.stop(kill=True)


def _stream(count: int, hits: dict[int, str], tag: str = "u") -> list[Upload]:
    """``count`` unrelated MD5 uploads with hits at the given positions: ``"md5"`` (the
    reported MD5), ``"sha256"`` or ``"near"`` (PDQ at distance 20 of the reported one)."""
    uploads = [Upload(f"{tag}{i}", "md5", secrets.token_bytes(16)) for i in range(count)]
    for position, kind in sorted(hits.items()):
        upload = {
            "md5": Upload(f"hit-{position}", "md5", MD5),
            "sha256": Upload(f"hit-{position}", "sha256", SHA256),
            "near": Upload(f"hit-{position}", "pdq", flip_bits(PDQ, 20), 90),
        }[kind]
        uploads.insert(position, upload)
    return uploads


def _hits(uploads: list[Upload]) -> list[str]:
    return sorted(u.ref for u in uploads if u.ref.startswith("hit-"))


def _matched(report: MatchReport) -> list[str]:
    return sorted(m.upload.ref for m in report.matches)


def _accounted(report: MatchReport, uploads: list[Upload]) -> None:
    """Every upload is answered or unfinished (none dropped), and a hit is matched exactly
    when it was answered: nothing reads as "no match" that was not asked."""
    assert report.answered + len(report.unfinished) == len(uploads)
    unfinished = {u.ref for u in report.unfinished}
    assert len(unfinished) == len(report.unfinished)
    assert _matched(report) == [h for h in _hits(uploads) if h not in unfinished]


def _is_evaluation(request: httpx.Request) -> bool:
    return (
        request.method == "POST"
        and request.url.path.startswith("/v1/match/sessions/")
        and request.content[1:2] == bytes([MessageType.EVALUATE_REQUEST])
    )


def _on_answers(client: PlatformClient, after: int, action: Callable[[], None]) -> list[int]:
    """Run ``action`` once, in the client's thread, when the ``after``-th evaluation
    request has been answered 200 (the answer waits meanwhile); returns the list of the
    evaluation answers' statuses, as they arrive."""
    statuses: list[int] = []
    lock = threading.Lock()

    def hook(response: httpx.Response) -> None:
        if not _is_evaluation(response.request):
            return
        with lock:
            statuses.append(response.status_code)
            fire = statuses.count(200) == after and response.status_code == 200
        if fire:
            action()

    client._http.event_hooks = {"response": [hook]}
    return statuses


# ------------------------------------------------------------------ quota


QUOTA_CLIENTS = 50
QUOTA_BATCH = 64
QUOTA_UPLOADS = 100
"""100 uploads and 2 canaries: 2 requests of exactly 64 elements (the last padded)."""
QUOTA_NOT_UPLOADS = 2 + 26
"""Elements of one client's requests that are not its uploads: 2 canaries, 26 pads."""
QUOTA_DAILY = QUOTA_BATCH * 40 + 33
"""Room for exactly 40 requests of 64 (of the 100 the clients would send)."""


def test_quota_holds_under_50_concurrent_clients(live: Live, tmp_path: Path) -> None:
    server = live.server
    api_key = create_platform(server, "busy", daily=QUOTA_DAILY)
    pinned = pinned_key(server)
    options = dataclasses.replace(FAST, batch_size=QUOTA_BATCH, pipeline=2)
    statuses: list[list[int]] = [[] for _ in range(QUOTA_CLIENTS)]
    others: list[int] = []

    async def one(number: int) -> tuple[list[Upload], MatchReport | errors.QuotaExhausted]:
        async def hook(response: httpx.Response) -> None:
            if _is_evaluation(response.request):
                statuses[number].append(response.status_code)
            elif response.status_code >= 400:
                others.append(response.status_code)

        uploads = _stream(QUOTA_UPLOADS - 1, {(number * 7) % QUOTA_UPLOADS: "md5"})
        async with AsyncPlatformClient(
            server.url,
            api_key=api_key,
            publication_key=pinned,
            cache_dir=tmp_path / f"cache{number}",
            options=options,
        ) as client:
            client._http.event_hooks = {"response": [hook]}
            try:
                return uploads, await client.match(uploads)
            except errors.QuotaExhausted as exc:
                return uploads, exc

    async def everyone() -> list[tuple[list[Upload], MatchReport | errors.QuotaExhausted]]:
        return await asyncio.gather(*(one(n) for n in range(QUOTA_CLIENTS)))

    outcomes = asyncio.run(everyone())

    # The server's own count: exactly the requests it answered, and no more than the
    # quota allows given the batch size.
    answered_batches = sum(s.count(200) for s in statuses)
    assert answered_batches == QUOTA_DAILY // QUOTA_BATCH
    assert quota_used(server, "busy") == answered_batches * QUOTA_BATCH
    assert {code for s in statuses for code in s} <= {200, 429}
    assert others == []  # no 5xx, no refusal of anything else

    refused = 0
    for number, (uploads, outcome) in enumerate(outcomes):
        if isinstance(outcome, errors.QuotaExhausted):
            refused += 1
            assert "quota" in str(outcome)
            report = outcome.partial
            assert isinstance(report, MatchReport)
            assert report.unfinished
        else:
            report = outcome
            assert report.unfinished == ()
        _accounted(report, uploads)
        # Every batch answered 200 reached the caller (none discarded beside a 429).
        answered = statuses[number].count(200)
        assert report.answered >= QUOTA_BATCH * answered - QUOTA_NOT_UPLOADS, number
    assert refused >= QUOTA_CLIENTS - answered_batches // 2


# ------------------------------------------------------------------ key rotation


def test_key_rotation_mid_stream(live: Live, tmp_path: Path) -> None:
    server = live.server
    api_key = create_platform(server, "rotating")
    options = dataclasses.replace(FAST, batch_size=64, pipeline=2, max_retries=60, max_backoff=0.5)
    client = PlatformClient(
        server.url,
        api_key=api_key,
        publication_key=pinned_key(server),
        cache_dir=tmp_path / "cache",
        options=options,
    )
    with client:
        epoch = client.refresh().epoch
        # 1. A long run in flight when the operator rotates (after 3 answered batches of
        # about 13): its session was opened under the old epoch and finishes on it, within
        # the grace period, without a new session.
        rotated: list[dict[str, Any]] = []
        _on_answers(
            client,
            3,
            lambda: rotated.append(json.loads(server.admin("--json", "keys", "rotate").stdout)),
        )
        first = _stream(400, {20: "md5", 200: "near", 300: "sha256"})
        in_flight = client.match(first)
        assert [r["epoch"] for r in rotated] == [epoch + 1]
        _accounted(in_flight, first)
        assert in_flight.unfinished == ()
        assert _matched(in_flight) == _hits(first)
        assert in_flight.stats.sessions == 1
        assert in_flight.stats.requests >= 12
        old_handles = {m.signal: m.handle for m in in_flight.matches}

        # 2. The next run follows the new epoch: the new manifest and new indexes
        # (published within seconds; until then the manifest is retried).
        client._http.event_hooks = {"response": []}
        second = _stream(100, {10: "md5", 50: "near"})
        after = client.match(second)
        assert after.epoch == epoch + 1
        assert after.stats.downloads >= 2  # the md5 and pdq indexes of the new epoch
        assert after.unfinished == ()
        assert _matched(after) == _hits(second)
        for match in after.matches:
            assert match.handle != old_handles[match.signal]  # handles are per epoch

        # 3. A stream of short runs while the operator rotates again at an arbitrary
        # moment: every run ends with every upload answered, its hits matched.
        done: list[tuple[list[Upload], MatchReport]] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def stream() -> None:
            try:
                for round_ in range(200):
                    uploads = _stream(60, {round_ % 60: "md5"}, tag=f"r{round_}-")
                    done.append((uploads, client.match(uploads)))
                    if stop.is_set() and done[-1][1].epoch == epoch + 2:
                        return
            except BaseException as exc:
                failures.append(exc)

        runner = threading.Thread(target=stream)
        runner.start()
        while len(done) < 2 and runner.is_alive():
            threading.Event().wait(0.05)
        server.admin("keys", "rotate")
        stop.set()
        runner.join(timeout=240)
        assert not runner.is_alive()
        assert failures == []
        epochs = [report.epoch for _, report in done]
        assert epochs == sorted(epochs)
        assert epochs[0] == epoch + 1
        assert epochs[-1] == epoch + 2
        for uploads, report in done:
            _accounted(report, uploads)
            assert report.unfinished == ()
            assert _matched(report) == _hits(uploads)


# ------------------------------------------------------------------ kill -9


def _killer(live: Live) -> tuple[Callable[[], None], Callable[[], Server]]:
    """``kill()`` (kill -9 of the server's process group, from the client's thread) and
    ``restart()`` (once killed: the server again, on the same data dir, database and
    port, which it leaves in ``live``)."""
    killed = threading.Event()
    server = live.server

    def kill() -> None:
        server.stop(kill=True)
        killed.set()

    def restart() -> Server:
        assert killed.wait(120), "the server was never killed"
        live.server = start_server(
            server.data_dir, live.database_url, workers=2, limits=LIMITS, port=server.port
        )
        return live.server

    return kill, restart


def test_kill_9_mid_run_nothing_dropped_and_the_platform_resumes(
    live: Live, tmp_path: Path
) -> None:
    """A run killed half way ends with every upload answered or unfinished (SDK) or
    counted unfinished (CLI, exit 4); a second run of the unfinished uploads, started while
    the server is still down, retries until the server is back on the same data dir and
    port, then answers them all: together the runs find every hit once."""
    server = live.server
    api_key = create_platform(server, "killed")
    pinned = pinned_key(server)
    uploads = _stream(400, {5: "md5", 200: "sha256", 300: "near"})
    kill, restart = _killer(live)
    with PlatformClient(
        server.url,
        api_key=api_key,
        publication_key=pinned,
        cache_dir=tmp_path / "cache",
        options=dataclasses.replace(FAST, batch_size=64, pipeline=2, max_retries=2),
    ) as client:
        statuses = _on_answers(client, 2, kill)
        with pytest.raises(errors.ServiceUnavailable) as caught:
            client.match(uploads)
    partial = caught.value.partial
    assert isinstance(partial, MatchReport)
    _accounted(partial, uploads)
    assert len(partial.unfinished) > 200
    assert partial.answered >= 50  # at least the batch answered before the kill
    assert statuses.count(200) >= 2

    # The CLI against the dead server: exit 4, every file counted unfinished.
    hashes = tmp_path / "hashes.jsonl"
    lines = [{"path": f"f{i}.bin", "kind": "other", "md5": secrets.token_hex(16)} for i in range(5)]
    lines.append({"path": "hit.bin", "kind": "other", "md5": MD5.hex()})
    hashes.write_text("".join(json.dumps(line) + "\n" for line in lines))
    cli = (
        "match",
        "--server",
        server.url,
        "--publication-key",
        pinned,
        "--cache-dir",
        str(tmp_path / "cli"),
        "--hashes",
        str(hashes),
    )
    down = blindmatch(*cli, env={"BLINDMATCH_API_KEY": api_key})
    assert down.returncode == 4, down.stderr
    assert down.stdout == ""
    assert "6 files unfinished" in down.stderr
    assert "Traceback" not in down.stderr

    # The second run, patient, while the server is still down; the server comes back.
    patient = dataclasses.replace(
        FAST, batch_size=64, pipeline=2, max_retries=400, backoff=0.1, max_backoff=0.3
    )
    outcome: list[MatchReport | BaseException] = []
    with PlatformClient(
        server.url,
        api_key=api_key,
        publication_key=pinned,
        cache_dir=tmp_path / "cache",
        options=patient,
    ) as client:

        def run() -> None:
            try:
                outcome.append(client.match(partial.unfinished))
            except BaseException as exc:
                outcome.append(exc)

        runner = threading.Thread(target=run)
        runner.start()
        threading.Event().wait(1.0)
        assert outcome == []  # it waits for the server, retrying
        restart()
        runner.join(timeout=300)
        assert not runner.is_alive()
    [rest] = outcome
    assert isinstance(rest, MatchReport), rest
    assert rest.unfinished == ()
    _accounted(rest, list(partial.unfinished))
    assert sorted(_matched(partial) + _matched(rest)) == _hits(uploads)
    up = blindmatch(*cli, env={"BLINDMATCH_API_KEY": api_key})
    assert up.returncode == 0, up.stderr
    assert [json.loads(line)["path"] for line in up.stdout.splitlines()] == ["hit.bin"]
    assert "0 files unfinished" in up.stderr


# ------------------------------------------------------------------ tampering, wrong key


@dataclass
class Served:
    server: Server
    api_key: str
    pinned: str
    hashes: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("tamper")
    server = _clearinghouse(root / "data", "", workers=1)
    try:
        hashes = root / "hashes.jsonl"
        records = [
            {"path": "hit.bin", "kind": "other", "md5": MD5.hex(), "sha256": SHA256.hex()},
            {"path": "other.bin", "kind": "other", "md5": secrets.token_hex(16)},
        ]
        hashes.write_text("".join(json.dumps(r) + "\n" for r in records))
        yield Served(server, create_platform(server), pinned_key(server), hashes)
    finally:
        server.stop()


def _cli(served: Served, url: str, pinned: str, cache: Path) -> Any:
    return blindmatch(
        "match",
        "--server",
        url,
        "--publication-key",
        pinned,
        "--cache-dir",
        str(cache),
        "--hashes",
        str(served.hashes),
        env={"BLINDMATCH_API_KEY": served.api_key},
    )


def test_cli_through_an_honest_proxy_matches(served: Served, tmp_path: Path) -> None:
    proxy = TamperingProxy(served.server.url, lambda path, body: body)
    try:
        done = _cli(served, proxy.url, served.pinned, tmp_path)
    finally:
        proxy.close()
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(x)["signal"] for x in done.stdout.splitlines()) == ["md5", "sha256"]


def _flip_index(path: str, body: bytes) -> bytes:
    if path.startswith("/v1/index/") and "manifest" not in path and body:
        changed = bytearray(body)
        changed[len(changed) // 2] ^= 1
        return bytes(changed)
    return body


def _manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[str, bytes], bytes]:
    def tamper(path: str, body: bytes) -> bytes:
        if not path.startswith("/v1/index/manifest"):
            return body
        answer = json.loads(body)
        change(answer)
        return json.dumps(answer).encode()

    return tamper


def _drop_revocations(answer: dict[str, Any]) -> None:
    manifest = json.loads(answer["manifest"])
    manifest["revoked_handles"] = []
    manifest["version"] += 1
    answer["manifest"] = json.dumps(manifest, sort_keys=True, separators=(",", ":"))


def _flip_signature(answer: dict[str, Any]) -> None:
    signature = bytearray.fromhex(answer["signature"])
    signature[5] ^= 0x10
    answer["signature"] = signature.hex()


@pytest.mark.parametrize(
    "tamper",
    [_flip_index, _manifest(_drop_revocations), _manifest(_flip_signature)],
    ids=["index-byte", "manifest-content", "manifest-signature"],
)
def test_cli_refuses_a_tampered_index_or_manifest_with_exit_3(
    served: Served, tmp_path: Path, tamper: Callable[[str, bytes], bytes]
) -> None:
    proxy = TamperingProxy(served.server.url, tamper)
    try:
        done = _cli(served, proxy.url, served.pinned, tmp_path)
    finally:
        proxy.close()
    assert done.returncode == 3, done.stderr
    assert "verification failed" in one_line(done.stderr)
    assert done.stdout == ""  # never "no match"
    assert served.api_key not in done.stderr


def test_cli_refuses_a_wrong_pinned_key_with_exit_2(served: Served, tmp_path: Path) -> None:
    other = bytes(SigningKey.generate().verify_key).hex()  # a valid key, of someone else
    done = _cli(served, served.server.url, other, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "publication key" in one_line(done.stderr)
    assert done.stdout == ""


def test_cli_spent_quota_is_exit_4_with_every_file_unfinished(
    served: Served, tmp_path: Path
) -> None:
    # 100 elements a day: less than one request (2 uploads and a canary padded to 128).
    stingy = create_platform(served.server, "stingy", daily=100)
    done = blindmatch(
        "match",
        "--server",
        served.server.url,
        "--publication-key",
        served.pinned,
        "--cache-dir",
        str(tmp_path),
        "--hashes",
        str(served.hashes),
        env={"BLINDMATCH_API_KEY": stingy},
    )
    assert done.returncode == 4, done.stderr
    assert done.stdout == ""
    error, summary = done.stderr.splitlines()
    assert "quota" in error
    assert "2 files unfinished" in summary
    assert stingy not in done.stderr


def test_cli_refuses_an_index_changed_on_the_server_disk_with_exit_3(
    served: Served, tmp_path: Path
) -> None:
    # The last test of the module: the server's published files are damaged for good.
    files = sorted(served.server.data_dir.rglob("md5.v3.idx"))  # compact exact indexes
    assert files
    for file in files:
        data = bytearray(file.read_bytes())
        data[len(data) // 2] ^= 1
        file.write_bytes(bytes(data))
    done = _cli(served, served.server.url, served.pinned, tmp_path)
    assert done.returncode == 3, done.stderr
    assert "verification failed" in one_line(done.stderr)
    assert done.stdout == ""
