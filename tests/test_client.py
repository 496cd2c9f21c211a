"""The platform SDK against a real `blindmatch serve` on loopback (SQLite; PostgreSQL once).

A person reports over HTTP, the server publishes, a platform matches through
``PlatformClient`` / ``AsyncPlatformClient``: exact and fuzzy matches, withdrawal, a wrong
pinned key, a tampered manifest, a tampered cache or download, a spent quota.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from blindmatch import errors
from blindmatch.client import (
    AsyncPlatformClient,
    ClientOptions,
    IndexCache,
    PlatformClient,
    verify_manifest,
)
from blindmatch.client.manifest import parse_publication_key
from blindmatch.protocols import Upload
from service_support import (  # noqa: F401 - fixtures
    Server,
    postgres,
    published_references,
    start_server,
    wait_published,
)

REPORTED_FILE = b"bytes of a reported file"
MD5 = hashlib.md5(REPORTED_FILE, usedforsecurity=False).digest()
SHA256 = hashlib.sha256(REPORTED_FILE).digest()
PDQ = bytes.fromhex("f" * 16 + "0" * 16 + "a5" * 8 + "3c" * 8)
FAST = ClientOptions(backoff=0.05, max_backoff=0.2, max_retry_after=5.0)


def _near(hash_: bytes, bits: int) -> bytes:
    """``hash_`` with its first ``bits`` bits flipped (PDQ distance ``bits``)."""
    value = int.from_bytes(hash_, "big") ^ (((1 << bits) - 1) << (256 - bits))
    return value.to_bytes(32, "big")


@dataclass
class Clearinghouse:
    server: Server
    api_key: str
    publication_key: str
    report_id: str
    receipt: str

    def client(self, cache: Path, **options: Any) -> PlatformClient:
        chosen = dataclasses.replace(FAST, **options)
        return PlatformClient(
            self.server.url,
            api_key=self.api_key,
            publication_key=self.publication_key,
            cache_dir=cache,
            options=chosen,
        )


def report(client: httpx.Client, fingerprints: list[dict[str, object]]) -> tuple[str, str]:
    made = client.post(
        "/v1/reports",
        json={"content_kind": "image", "age_attestation": "minor", "fingerprints": fingerprints},
    )
    assert made.status_code == 201, made.text
    return made.json()["report_id"], made.json()["receipt"]


def platform_key(server: Server, daily: int = 10_000_000, name: str = "acme") -> str:
    out = server.admin("platform", "create", name, "--daily-elements", str(daily))
    key: str = json.loads(out.stdout)["api_key"]
    return key


def setup_clearinghouse(server: Server) -> Clearinghouse:
    with server.client() as http:
        report_id, receipt = report(
            http,
            [
                {"signal": "md5", "hash": MD5.hex()},
                {"signal": "sha256", "hash": SHA256.hex()},
                {"signal": "pdq", "hash": PDQ.hex(), "quality": 90},
            ],
        )
        wait_published(http, lambda m: published_references(m, "pdq") == 1)
        # The tests below read the report from the full indexes: when the publisher ran
        # before the report came in, it is in deltas of an empty version; publish a full one.
        for _ in range(5):
            manifest = wait_published(http)
            if not manifest.get("deltas"):
                break
            server.admin("index", "publish", check=False)
        assert not wait_published(http).get("deltas"), "no full version holds the report"
        publication_key = http.get("/v1/keys").json()["publication_key"]
    return Clearinghouse(server, platform_key(server), publication_key, report_id, receipt)


@pytest.fixture(scope="module")
def clearinghouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clearinghouse]:
    root = tmp_path_factory.mktemp("ch")
    server = start_server(root / "data", "", limits={"intake_per_hour": "1000"})
    try:
        yield setup_clearinghouse(server)
    finally:
        server.stop()


UPLOADS = [
    Upload("exact-md5", "md5", MD5),
    Upload("exact-sha256", "sha256", SHA256),
    Upload("near-pdq", "pdq", _near(PDQ, 12), 80),
    Upload("far-pdq", "pdq", _near(PDQ, 100), 80),
    Upload("other-md5", "md5", hashlib.md5(b"unrelated", usedforsecurity=False).digest()),
]


def _summary(report_: object) -> list[tuple[str, str, str]]:
    from blindmatch.client import MatchReport

    assert isinstance(report_, MatchReport)
    return sorted((m.upload.ref, m.signal, m.handle.hex()) for m in report_.matches)


def test_exact_and_fuzzy_matches(clearinghouse: Clearinghouse, tmp_path: Path) -> None:
    with clearinghouse.client(tmp_path / "cache") as client:
        found = client.match(UPLOADS)
    assert [ref for ref, _, _ in _summary(found)] == ["exact-md5", "exact-sha256", "near-pdq"]
    assert found.unfinished == ()
    assert found.answered == len(UPLOADS)
    pdq = next(m for m in found.matches if m.signal == "pdq")
    # 12 flipped bits of 256 leave most of the 384 bands agreeing, never all of them.
    assert 0 < pdq.agreeing_bands < 384
    assert found.stats.canaries_matched >= 1
    assert found.stats.audits_verified == 1
    # One download per file the platform needs for md5, sha256 and pdq: each full index
    # and its deltas (the report lands in the first full version or, when the publisher
    # ran before it came in, in deltas of an empty one).
    with clearinghouse.server.client() as http:
        manifest = wait_published(http)
    needed = [s for s in ("md5", "sha256", "pdq") if s in manifest["indexes"]]  # type: ignore[operator]
    deltas = [d for d in manifest.get("deltas", []) if d["signal"] in needed]  # type: ignore[attr-defined]
    assert found.stats.downloads == len(needed) + len(deltas)
    # The same cache again: nothing downloaded, the same matches.
    with clearinghouse.client(tmp_path / "cache") as client:
        again = client.match(UPLOADS)
    assert again.stats.downloads == 0
    assert _summary(again) == _summary(found)


def test_async_client_gives_the_same_matches(clearinghouse: Clearinghouse, tmp_path: Path) -> None:
    with clearinghouse.client(tmp_path / "sync") as client:
        expected = _summary(client.match(UPLOADS))

    async def run() -> object:
        async with AsyncPlatformClient(
            clearinghouse.server.url,
            api_key=clearinghouse.api_key,
            publication_key=clearinghouse.publication_key,
            cache_dir=tmp_path / "async",
            options=FAST,
        ) as client:
            return await client.match(UPLOADS)

    assert _summary(asyncio.run(run())) == expected


def test_many_uploads_in_several_pipelined_requests(
    clearinghouse: Clearinghouse, tmp_path: Path
) -> None:
    uploads = [Upload(f"u{i}", "md5", secrets.token_bytes(16)) for i in range(600)]
    uploads.insert(321, Upload("hit", "md5", MD5))
    with clearinghouse.client(tmp_path / "c", batch_size=128, pipeline=3) as client:
        found = client.match(uploads)
    assert [m.upload.ref for m in found.matches] == ["hit"]
    assert found.stats.requests >= 5
    assert found.answered == len(uploads)


def test_wrong_pinned_key_is_a_typed_error(clearinghouse: Clearinghouse, tmp_path: Path) -> None:
    with (
        PlatformClient(
            clearinghouse.server.url,
            api_key=clearinghouse.api_key,
            publication_key=secrets.token_bytes(32).hex(),
            cache_dir=tmp_path,
            options=FAST,
        ) as client,
        pytest.raises(errors.PublicationKeyMismatch),
    ):
        client.match(UPLOADS)


def test_a_tampered_manifest_does_not_verify(clearinghouse: Clearinghouse) -> None:
    pinned = parse_publication_key(clearinghouse.publication_key)
    with clearinghouse.server.client() as http:
        body = http.get("/v1/index/manifest").json()
    assert verify_manifest(body, pinned).indexes["md5"].references == 1
    manifest = json.loads(body["manifest"])
    manifest["revoked_handles"] = []
    manifest["version"] += 1
    for text in (
        json.dumps(manifest, sort_keys=True, separators=(",", ":")),
        body["manifest"].replace('"md5"', '"md6"'),
    ):
        with pytest.raises(errors.ManifestError):
            verify_manifest({**body, "manifest": text}, pinned)
    flipped = bytearray.fromhex(body["signature"])
    flipped[0] ^= 1
    with pytest.raises(errors.ManifestError):
        verify_manifest({**body, "signature": flipped.hex()}, pinned)


def test_a_replayed_older_manifest_is_refused(clearinghouse: Clearinghouse, tmp_path: Path) -> None:
    pinned = parse_publication_key(clearinghouse.publication_key)
    with clearinghouse.server.client() as http:
        manifest = verify_manifest(http.get("/v1/index/manifest").json(), pinned)
    cache = IndexCache(tmp_path)
    state = {bytes(pinned).hex(): [manifest.epoch, manifest.version + 1]}
    (tmp_path / "state.json").write_text(json.dumps(state))
    with pytest.raises(errors.StaleManifest):
        cache.check_fresh(bytes(pinned), manifest)


def test_a_tampered_cached_index_is_downloaded_again(
    clearinghouse: Clearinghouse, tmp_path: Path
) -> None:
    with clearinghouse.client(tmp_path) as client:
        client.match(UPLOADS[:1])
        manifest = client.manifest
    assert manifest is not None
    path = IndexCache(tmp_path).path(manifest.indexes["md5"])
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x40
    path.write_bytes(bytes(data))
    with clearinghouse.client(tmp_path) as client:
        found = client.match(UPLOADS[:1])
    assert found.stats.downloads == 1
    assert [m.upload.ref for m in found.matches] == ["exact-md5"]
    assert hashlib.sha256(path.read_bytes()).digest() == manifest.indexes["md5"].sha256


def test_a_download_resumes_with_range(clearinghouse: Clearinghouse, tmp_path: Path) -> None:
    pinned = parse_publication_key(clearinghouse.publication_key)
    with clearinghouse.server.client() as http:
        manifest = verify_manifest(http.get("/v1/index/manifest").json(), pinned)
        entry = manifest.indexes["pdq"]
        whole = http.get(entry.url).content
    cache = IndexCache(tmp_path)
    half = len(whole) // 2
    cache.part(entry).write_bytes(whole[:half])
    with clearinghouse.client(tmp_path) as client:
        found = client.match(UPLOADS[2:3])
    assert found.stats.bytes_downloaded == len(whole) - half
    assert [m.upload.ref for m in found.matches] == ["near-pdq"]
    # A partial file of other bytes: the whole file is fetched again, then verified.
    cache.path(entry).unlink()
    cache.part(entry).write_bytes(secrets.token_bytes(half))
    with clearinghouse.client(tmp_path) as client:
        found = client.match(UPLOADS[2:3])
    assert [m.upload.ref for m in found.matches] == ["near-pdq"]


def test_a_tampered_download_is_a_typed_error(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "", limits={"intake_per_hour": "1000"})
    try:
        ch = setup_clearinghouse(server)
        files = sorted((tmp_path / "data").rglob("md5.v3.idx"))  # a compact exact index
        assert files
        for file in files:
            data = bytearray(file.read_bytes())
            data[len(data) // 2] ^= 1
            file.write_bytes(bytes(data))
        with (
            ch.client(tmp_path / "cache") as client,
            pytest.raises(errors.IndexIntegrityError) as caught,
        ):
            client.match(UPLOADS)
        assert isinstance(caught.value, errors.ClientError)
        assert not list((tmp_path / "cache" / "indexes").glob("*"))
    finally:
        server.stop()


def test_withdrawal_drops_the_match_at_once(clearinghouse: Clearinghouse, tmp_path: Path) -> None:
    other = secrets.token_bytes(16)
    with clearinghouse.server.client() as http:
        report_id, receipt = report(http, [{"signal": "md5", "hash": other.hex()}])
        wait_published(http, lambda m: published_references(m, "md5") == 2)
    upload = [Upload("withdrawn-later", "md5", other)]
    with clearinghouse.client(tmp_path) as client:
        before = client.match(upload)
        assert [m.upload.ref for m in before.matches] == ["withdrawn-later"]
        assert client.feedback(before.matches[0].handle, "actioned") in ("active", "published")
        with clearinghouse.server.client() as http:
            gone = http.delete(f"/v1/reports/{report_id}", headers={"Blindmatch-Receipt": receipt})
            assert gone.status_code == 200
        after = client.match(upload)
    assert after.matches == ()
    assert after.stats.revoked_dropped == 1
    assert after.answered == 1


def test_spent_quota_is_a_clear_error_and_nothing_is_lost(
    clearinghouse: Clearinghouse, tmp_path: Path
) -> None:
    small = platform_key(clearinghouse.server, daily=1024, name="small")
    uploads = [Upload(f"u{i}", "pdq", secrets.token_bytes(32), 90) for i in range(6)]
    with (
        PlatformClient(
            clearinghouse.server.url,
            api_key=small,
            publication_key=clearinghouse.publication_key,
            cache_dir=tmp_path,
            options=dataclasses.replace(FAST, batch_size=512),
        ) as client,
        pytest.raises(errors.QuotaExhausted) as caught,
    ):
        client.match(uploads)
    partial = caught.value.partial
    from blindmatch.client import MatchReport

    assert isinstance(partial, MatchReport)
    assert partial.unfinished
    assert partial.answered + len(partial.unfinished) == len(uploads)
    assert "quota" in str(caught.value)


def test_unknown_api_key_is_refused(clearinghouse: Clearinghouse, tmp_path: Path) -> None:
    with (
        PlatformClient(
            clearinghouse.server.url,
            api_key="bm_nothing_" + secrets.token_hex(16),
            publication_key=clearinghouse.publication_key,
            cache_dir=tmp_path,
            options=FAST,
        ) as client,
        pytest.raises(errors.AuthenticationFailed),
    ):
        client.match(UPLOADS[:1])


def test_an_unreachable_server_is_service_unavailable(tmp_path: Path) -> None:
    from service_support import free_port

    with (
        PlatformClient(
            f"http://127.0.0.1:{free_port()}",
            api_key="bm_x",
            publication_key=secrets.token_bytes(32),
            cache_dir=tmp_path,
            options=ClientOptions(max_retries=2, backoff=0.01, max_backoff=0.02),
        ) as client,
        pytest.raises(errors.ServiceUnavailable),
    ):
        client.match(UPLOADS[:1])


def test_postgresql_match(tmp_path: Path, postgres: object) -> None:  # noqa: F811
    from service_support import PostgresServer

    assert isinstance(postgres, PostgresServer)
    server = start_server(
        tmp_path / "data", postgres.new_database(), limits={"intake_per_hour": "1000"}
    )
    try:
        ch = setup_clearinghouse(server)
        with ch.client(tmp_path / "cache") as client:
            found = client.match(UPLOADS)
        assert [ref for ref, _, _ in _summary(found)] == ["exact-md5", "exact-sha256", "near-pdq"]
    finally:
        server.stop()


def test_a_new_key_epoch_is_followed(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "", limits={"intake_per_hour": "1000"})
    try:
        ch = setup_clearinghouse(server)
        with ch.client(tmp_path / "cache", max_retries=40) as client:
            before = client.match(UPLOADS[:1])
            assert [m.upload.ref for m in before.matches] == ["exact-md5"]
            server.admin("keys", "rotate")
            # At once: the new epoch may not be published yet (503, retried with backoff).
            after = client.match(UPLOADS[:1])
        assert after.epoch == before.epoch + 1
        assert [m.upload.ref for m in after.matches] == ["exact-md5"]
        assert after.matches[0].handle != before.matches[0].handle
        assert after.stats.downloads == 1
    finally:
        server.stop()


def test_a_server_killed_mid_run_loses_no_upload(tmp_path: Path) -> None:
    import threading

    server = start_server(tmp_path / "data", "", limits={"intake_per_hour": "1000"})
    try:
        ch = setup_clearinghouse(server)
        uploads = [Upload(f"u{i}", "pdq", secrets.token_bytes(32), 90) for i in range(200)]
        uploads.append(Upload("hit", "md5", MD5))
        with ch.client(tmp_path / "cache", batch_size=512, max_retries=2) as client:
            client.refresh()
            killer = threading.Timer(2.0, server.stop, kwargs={"kill": True})
            killer.start()
            try:
                found = client.match(uploads)
            except errors.ServiceUnavailable as exc:
                found = exc.partial  # type: ignore[assignment]
            finally:
                killer.join()
        from blindmatch.client import MatchReport

        assert isinstance(found, MatchReport)
        assert found.answered + len(found.unfinished) == len(uploads)
        assert len(set(map(id, found.unfinished))) == len(found.unfinished)
        assert all(m.upload.ref == "hit" for m in found.matches)
        assert found.unfinished or found.stats.sessions >= 1
    finally:
        server.stop(kill=True)
