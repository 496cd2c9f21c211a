"""Retro-matching through the SDK and the CLI, against a real `blindmatch serve` on loopback.

A platform matches uploads (no match) and keeps them; a person reports one of them; once
the delta is published, ``retro_matches()`` finds it from the local store, with no
evaluation request: every request the client sends is recorded and checked. The server
runs with its default ``exact_index`` (compact): md5 and sha256 uploads are kept as compact
records (their OPRF outputs) and found in compact deltas and rebuilt compact bases.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blindmatch import errors
from blindmatch.client import AsyncPlatformClient, IndexCache, PlatformClient, RetroStore
from blindmatch.protocols import Upload
from blindmatch.samples import photo_like
from service_support import (
    BLINDMATCH,
    Server,
    published_references,
    start_server,
    wait_published,
)
from test_client import FAST, MD5, PDQ, Clearinghouse, report, setup_clearinghouse

RETRO = dataclasses.replace(FAST, retro=True)


def _near(hash_: bytes, bits: int) -> bytes:
    value = int.from_bytes(hash_, "big") ^ (((1 << bits) - 1) << (256 - bits))
    return value.to_bytes(32, "big")


def _client(ch: Clearinghouse, cache: Path, **options: object) -> PlatformClient:
    return PlatformClient(
        ch.server.url,
        api_key=ch.api_key,
        publication_key=ch.publication_key,
        cache_dir=cache,
        options=dataclasses.replace(RETRO, **options),  # type: ignore[arg-type]
    )


def _recorded(client: PlatformClient) -> list[tuple[str, str]]:
    """Every request the client sends from now on, as (method, path)."""
    seen: list[tuple[str, str]] = []
    client._http.event_hooks["request"].append(
        lambda request: seen.append((request.method, request.url.path))
    )
    return seen


@pytest.fixture(scope="module")
def clearinghouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clearinghouse]:
    root = tmp_path_factory.mktemp("retro")
    server = start_server(root / "data", "", limits={"intake_per_hour": "1000"})
    try:
        yield setup_clearinghouse(server)
    finally:
        server.stop()


def _wait_refs(server: Server, **counts: int) -> dict[str, object]:
    with server.client() as http:
        return wait_published(
            http, lambda m: all(published_references(m, s) == n for s, n in counts.items())
        )


def _refs(server: Server, signal: str) -> int:
    with server.client() as http:
        return published_references(wait_published(http), signal)


def test_retro_finds_past_uploads_without_an_evaluation(
    clearinghouse: Clearinghouse, tmp_path: Path
) -> None:
    ch = clearinghouse
    a_md5, b_pdq = secrets.token_bytes(16), secrets.token_bytes(32)
    uploads = [
        Upload("A", "md5", a_md5),
        Upload("B", "pdq", b_pdq, 90),
        Upload("C", "md5", MD5),  # reported already: matched now, never again by retro
    ]
    md5s, pdqs = _refs(ch.server, "md5"), _refs(ch.server, "pdq")
    with _client(ch, tmp_path / "cache") as client:
        first = client.match(uploads)
        assert [m.upload.ref for m in first.matches] == ["C"]
        assert first.stats.retro_records == 3
        assert client.retro_store is not None
        assert len(client.retro_store) == 3
        formats = client.retro_store._db.execute(
            "SELECT upload_ref, format FROM retro_record ORDER BY upload_ref"
        ).fetchall()
        assert formats == [("A", 3), ("B", 1), ("C", 3)]  # md5 compact, pdq banded
        assert client.retro_matches().matches == ()  # nothing published since
        with ch.server.client() as http:
            report(http, [{"signal": "md5", "hash": a_md5.hex()}])
            report(http, [{"signal": "pdq", "hash": _near(b_pdq, 10).hex(), "quality": 90}])
        manifest = _wait_refs(ch.server, md5=md5s + 1, pdq=pdqs + 1)
        assert manifest["deltas"], "new reports arrive in deltas"
        # The exact signals are compact (the default), base and deltas alike.
        assert manifest["indexes"]["md5"]["format_version"] == 3  # type: ignore[index]
        md5_deltas = [d for d in manifest["deltas"] if d["signal"] == "md5"]  # type: ignore[attr-defined]
        assert md5_deltas
        assert {d["format_version"] for d in md5_deltas} == {3}
        requests = _recorded(client)
        retro = client.retro_matches()
        assert sorted((m.upload_ref, m.signal) for m in retro.matches) == [
            ("A", "md5"),
            ("B", "pdq"),
        ]
        assert retro.checked >= 2
        assert retro.records == 3
        assert retro.forgotten == 0
        # Only the manifest and index files were fetched: no session, no evaluation.
        assert requests, "the manifest was fetched"
        assert all(method == "GET" for method, _ in requests), requests
        assert not any("/match/" in path for _, path in requests)
        # Each delta is matched once: asked again, nothing new and nothing sent but GETs.
        again = client.retro_matches()
        assert again.matches == ()
        assert again.checked == 0
        # The handles are those a fresh private match gives.
        direct = client.match(uploads[:2])
    assert sorted((m.upload.ref, m.handle) for m in direct.matches) == sorted(
        (m.upload_ref, m.handle) for m in retro.matches
    )


def test_async_client_retro(clearinghouse: Clearinghouse, tmp_path: Path) -> None:
    ch = clearinghouse
    value = secrets.token_bytes(32)
    before = _refs(ch.server, "sha256")

    async def run() -> tuple[object, object]:
        async with AsyncPlatformClient(
            ch.server.url,
            api_key=ch.api_key,
            publication_key=ch.publication_key,
            cache_dir=tmp_path / "cache",
            options=RETRO,
            retro_store=tmp_path / "elsewhere.sqlite",
        ) as client:
            matched = await client.match([Upload("later", "sha256", value)])
            with ch.server.client() as http:
                report(http, [{"signal": "sha256", "hash": value.hex()}])
            _wait_refs(ch.server, sha256=before + 1)
            return matched, await client.retro_matches()

    matched, retro = asyncio.run(run())
    assert matched.matches == ()  # type: ignore[attr-defined]
    assert [(m.upload_ref, m.signal) for m in retro.matches] == [("later", "sha256")]  # type: ignore[attr-defined]
    assert (tmp_path / "elsewhere.sqlite").is_file()
    assert not (tmp_path / "cache" / "retro.sqlite").exists()


def test_retro_is_off_unless_asked(clearinghouse: Clearinghouse, tmp_path: Path) -> None:
    with _client(clearinghouse, tmp_path, retro=False) as client:
        assert client.match([Upload("x", "md5", MD5)]).stats.retro_records == 0
        with pytest.raises(errors.InvalidArgument):
            client.retro_matches()
    assert not (tmp_path / "retro.sqlite").exists()


def test_rebuilt_index_withdrawal_and_new_epoch(tmp_path: Path) -> None:
    """A withdrawal makes the server rebuild its full index (rebuild_seconds 0): the kept
    records move onto the new base, only the new report is named, the withdrawn one never;
    a new key epoch forgets them."""
    server = start_server(tmp_path / "data", "", limits={"intake_per_hour": "1000"})
    try:
        ch = setup_clearinghouse(server)
        p_md5, q_md5 = secrets.token_bytes(16), secrets.token_bytes(16)
        with server.client() as http:
            q_id, q_receipt = report(http, [{"signal": "md5", "hash": q_md5.hex()}])
        _wait_refs(server, md5=2)
        uploads = [Upload("P", "md5", p_md5), Upload("Q", "md5", q_md5), Upload("S", "md5", MD5)]
        with _client(ch, tmp_path / "cache") as client:
            first = client.match(uploads)
            assert sorted(m.upload.ref for m in first.matches) == ["Q", "S"]
            version = first.version
            with server.client() as http:
                report(http, [{"signal": "md5", "hash": p_md5.hex()}])
                gone = http.delete(f"/v1/reports/{q_id}", headers={"Blindmatch-Receipt": q_receipt})
                assert gone.status_code == 200
                wait_published(
                    http,
                    lambda m: (
                        int(m["version"]) > version
                        and not m["deltas"]
                        and int(m["indexes"]["md5"]["references"]) == 2
                    ),
                )
                rebuilt = wait_published(http)
            assert rebuilt["indexes"]["md5"]["format_version"] == 3  # type: ignore[index]
            requests = _recorded(client)
            retro = client.retro_matches()
            assert [(m.upload_ref, m.signal) for m in retro.matches] == [("P", "md5")]
            assert retro.records == 3  # Q stays kept: only its report went
            assert all(method == "GET" for method, _ in requests), requests
            # The records moved onto the rebuilt compact base.
            assert client.retro_store is not None
            assert client.retro_store.bases(retro.epoch) == (
                ("md5", bytes.fromhex(str(rebuilt["indexes"]["md5"]["index_digest"]))),  # type: ignore[index]
            )
            assert client.retro_matches().matches == ()
            epoch = retro.epoch
            server.admin("keys", "rotate")
            with server.client() as http:
                wait_published(http, lambda m: m["epoch"] == epoch + 1)
            rotated = client.retro_matches()
        assert rotated.matches == ()
        assert rotated.forgotten == 3
        assert rotated.records == 0
    finally:
        server.stop()


def test_store_bound_forgets_the_oldest(clearinghouse: Clearinghouse, tmp_path: Path) -> None:
    uploads = [Upload(f"u{i}", "md5", secrets.token_bytes(16)) for i in range(5)]
    with _client(clearinghouse, tmp_path, retro_max_records=3) as client:
        client.match(uploads[:2])
        client.match(uploads[2:])
        store = client.retro_store
        assert store is not None
        assert len(store) == 3
        kept = {row[0] for row in store._db.execute("SELECT upload_ref FROM retro_record")}
        assert kept == {"u2", "u3", "u4"}
        # A batch over the whole bound by itself: the matches stand, nothing is kept.
        over = client.match([Upload(f"v{i}", "md5", MD5) for i in range(4)])
        assert len(over.matches) == 4
        assert over.stats.retro_not_kept == 4
        assert over.stats.retro_records == 0
        assert len(store) == 3


# ---------------------------------------------------------------- the cache lock

_HOLDER = """
import sys
from blindmatch.client import IndexCache
cache = IndexCache(sys.argv[1])
assert cache.try_lock()
print("locked", flush=True)
sys.stdin.read()
cache.unlock()
"""


def test_a_cache_locked_by_another_process(clearinghouse: Clearinghouse, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        assert not IndexCache(tmp_path).try_lock()
        with (
            _client(clearinghouse, tmp_path, lock_timeout=0.3) as client,
            pytest.raises(errors.CacheLocked) as caught,
        ):
            client.match([Upload("x", "md5", MD5)])
        assert isinstance(caught.value, errors.ClientError)
        assert not list((tmp_path / "indexes").glob("*"))  # nothing written meanwhile
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()
    with _client(clearinghouse, tmp_path, lock_timeout=5) as client:
        assert [m.upload.ref for m in client.match([Upload("x", "md5", MD5)]).matches] == ["x"]


def _match_cli(
    ch: Clearinghouse, cache: Path, *args: str, timeout: float = 300
) -> subprocess.Popen[str]:
    env = {**os.environ, "BLINDMATCH_API_KEY": ch.api_key}
    return subprocess.Popen(
        [
            *BLINDMATCH,
            "match",
            "--server",
            ch.server.url,
            "--publication-key",
            ch.publication_key,
            "--cache-dir",
            str(cache),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_processes_share_one_cache(clearinghouse: Clearinghouse, tmp_path: Path) -> None:
    line = {"path": "reported.bin", "md5": MD5.hex(), "kind": "other"}
    hashes = tmp_path / "hashes.jsonl"
    hashes.write_text(json.dumps(line) + "\n")
    cache = tmp_path / "cache"
    runs = [_match_cli(clearinghouse, cache, "--hashes", str(hashes)) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    for out, _ in outputs:
        assert [json.loads(x)["path"] for x in out.splitlines()] == ["reported.bin"]
    cached = IndexCache(cache)
    assert not list((cache / "partial").glob("*"))
    for path in (cache / "indexes").glob("*.idx"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem
    assert cached.try_lock()
    cached.unlock()


_SHARER = """
import json, sys
from blindmatch.client import ClientOptions, PlatformClient
from blindmatch.protocols import Upload
url, api_key, publication_key, cache, store = sys.argv[1:6]
uploads = [Upload(ref, "md5", bytes.fromhex(value)) for ref, value in json.loads(sys.argv[6])]
options = ClientOptions(retro=True, backoff=0.05, max_backoff=0.2, max_retry_after=5.0)
with PlatformClient(
    url, api_key=api_key, publication_key=publication_key, cache_dir=cache,
    options=options, retro_store=store,
) as client:
    sys.stdin.readline()
    matched = client.match(uploads)
    print(json.dumps(len(matched.matches)), flush=True)
    sys.stdin.readline()
    found = client.retro_matches().matches
    print(json.dumps([[m.upload_ref, bytes(m.handle).hex()] for m in found]), flush=True)
"""


def test_two_clients_share_one_retro_store(clearinghouse: Clearinghouse, tmp_path: Path) -> None:
    """Two processes, two cache directories, one retro store: they keep their records side
    by side at once, check at once, and name every retro match once between them."""
    ch = clearinghouse
    shared = {f"S{i}": secrets.token_bytes(16) for i in range(2)}
    own = [{f"X{p}": secrets.token_bytes(16)} for p in range(2)]
    store = tmp_path / "shared.sqlite"
    runs = []
    for p in range(2):
        uploads = [(ref, value.hex()) for ref, value in {**shared, **own[p]}.items()]
        runs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _SHARER,
                    ch.server.url,
                    ch.api_key,
                    ch.publication_key,
                    str(tmp_path / f"cache{p}"),
                    str(store),
                    json.dumps(uploads),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )

    def step() -> list[object]:
        for run in runs:  # both go at once
            assert run.stdin is not None
            run.stdin.write("go\n")
            run.stdin.flush()
        lines = []
        for run in runs:
            assert run.stdout is not None
            lines.append(json.loads(run.stdout.readline() or "null"))
        return lines

    try:
        before = _refs(ch.server, "md5")
        assert step() == [0, 0]  # nothing reported yet
        with ch.server.client() as http:
            for value in [*shared.values(), *(v for o in own for v in o.values())]:
                report(http, [{"signal": "md5", "hash": value.hex()}])
        _wait_refs(ch.server, md5=before + 4)
        found = step()
    finally:
        for run in runs:
            if run.stdin is not None:
                run.stdin.close()
            run.wait(timeout=60)
            if run.stdout is not None:
                run.stdout.close()
    assert [run.returncode for run in runs] == [0, 0]
    named = [tuple(pair) for lines in found for pair in lines]  # type: ignore[attr-defined]
    assert sorted(ref for ref, _ in named) == ["S0", "S1", "X0", "X1"]  # each once
    with RetroStore(store) as kept:
        assert kept._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert len(kept) == 4  # S0, S1 (one record each, the later upload's), X0, X1


# ---------------------------------------------------------------- the command line


def test_cli_retro_keeps_then_checks(tmp_path: Path) -> None:
    """``--retro PATH...`` keeps; ``--retro`` alone prints new matches, once; a report
    withdrawn before the check (no rebuild: its delta stays, its handle revoked) is not
    named."""
    server = start_server(
        tmp_path / "data",
        "",
        limits={
            "intake_per_hour": "1000",
            "rebuild_seconds": "3600",
            "rebuild_revoked_fraction": "1",
        },
    )
    try:
        ch = setup_clearinghouse(server)
        files = tmp_path / "uploads"
        files.mkdir()
        rng = np.random.default_rng(3)
        for name in ("later.png", "withdrawn.png", "never.png"):
            Image.fromarray(photo_like(rng, 96, 64)).save(files / name)
        cache = tmp_path / "cache"
        kept = _match_cli(ch, cache, "--retro", str(files))
        out, err = kept.communicate(timeout=300)
        assert kept.returncode == 0, err
        assert out == ""
        assert "records kept" in err
        md5 = {
            name: hashlib.md5((files / name).read_bytes(), usedforsecurity=False).hexdigest()
            for name in ("later.png", "withdrawn.png")
        }
        with server.client() as http:
            later_id, _ = report(http, [{"signal": "md5", "hash": md5["later.png"]}])
            w_id, w_receipt = report(http, [{"signal": "md5", "hash": md5["withdrawn.png"]}])
            wait_published(http, lambda m: published_references(m, "md5") == 3)
            gone = http.delete(f"/v1/reports/{w_id}", headers={"Blindmatch-Receipt": w_receipt})
            assert gone.status_code == 200
            wait_published(http, lambda m: len(m["revoked_handles"]) == 1)
        check = _match_cli(ch, cache, "--retro")
        out, err = check.communicate(timeout=300)
        assert check.returncode == 0, err
        lines = [json.loads(x) for x in out.splitlines()]
        assert [(Path(x["path"]).name, x["signal"]) for x in lines] == [("later.png", "md5")]
        assert len(lines[0]["handle"]) == 32
        again = _match_cli(ch, cache, "--retro")
        out, err = again.communicate(timeout=300)
        assert again.returncode == 0, err
        assert out == ""
        # The platform says what it did with it: the operator sees the feedback.
        env = {**os.environ, "BLINDMATCH_API_KEY": ch.api_key}
        keys = ["--server", server.url, "--publication-key", ch.publication_key]
        verdict = [lines[0]["handle"], "actioned"]
        sent = subprocess.run(
            [*BLINDMATCH, "feedback", *keys, "--cache-dir", str(cache), *verdict],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)["verdict"] == "actioned"
        [summary] = json.loads(server.admin("--json", "reports", "show", later_id).stdout)
        assert summary["actioned"] == 1
        # A usage mistake is one line and exit 2.
        wrong = _match_cli(ch, cache, "--retro", "--retro-store", str(tmp_path / "none.sqlite"))
        out, err = wrong.communicate(timeout=300)
        assert wrong.returncode == 2
        assert len(err.splitlines()) == 1
        assert "Traceback" not in err
        (tmp_path / "junk.sqlite").write_bytes(b"not a database, " * 100)
        junk = _match_cli(ch, cache, "--retro", "--retro-store", str(tmp_path / "junk.sqlite"))
        out, err = junk.communicate(timeout=300)
        assert junk.returncode == 2, err
        assert err.strip().endswith("not a retro store")
    finally:
        server.stop()


def test_feedback_reaches_the_service(clearinghouse: Clearinghouse, tmp_path: Path) -> None:
    """``PlatformClient.feedback`` is recorded by the service (its operator sees it)."""
    ch = clearinghouse
    with _client(ch, tmp_path, retro=False) as client:
        [match] = client.match([Upload("fb", "pdq", _near(PDQ, 4), 90)]).matches
        assert client.feedback(match.handle, "actioned") in ("active", "published")
        with pytest.raises(errors.ServiceRefused):
            client.feedback("00" * 16, "actioned")  # a handle the service never gave
    shown = ch.server.admin("--json", "reports", "show", ch.report_id)
    [summary] = json.loads(shown.stdout)
    assert summary["actioned"] == 1
    assert summary["disputes"] == 0
