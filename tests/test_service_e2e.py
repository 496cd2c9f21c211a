"""End to end: the real `blindmatch serve` on loopback, over HTTP, on SQLite and PostgreSQL.

A person reports, the publisher builds, a platform downloads the signed manifest and the
index, runs the private matching protocol over HTTP and finds the report; the person
withdraws and the handle is revoked in the next manifest at once.

One server per database serves the whole module (a start costs seconds): every test
reports hashes of its own and counts references relative to what was published when it
began, so the tests pass in any order and alone.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from nacl.signing import VerifyKey

from blindmatch.protocols import PlatformSession, Upload
from blindmatch.protocols.messages import ErrorMessage, EvaluateRequest, decode
from blindmatch.psi.group import Element
from blindmatch.psi.index import (
    CompactIndex,
    CompactIndexSet,
    Index,
    IndexSet,
    index_from_bytes,
)
from blindmatch.psi.keys import PublicKey
from blindmatch.psi.oprf import Mode
from blindmatch.service.schema import audit_log, platforms, quota_usage
from service_support import (  # noqa: F401 - fixtures
    Server,
    postgres,
    references,
    start_server,
    wait_published,
)

OTHER = hashlib.md5(b"an unrelated upload", usedforsecurity=False).digest()


def _reported() -> str:
    """An MD5 no other test reports (the server is shared by the module)."""
    return hashlib.md5(secrets.token_bytes(16), usedforsecurity=False).hexdigest()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    database_url = ""
    if request.param == "postgresql":
        database_url = request.getfixturevalue("postgres").new_database()
    root = tmp_path_factory.mktemp("service-e2e")
    running = start_server(root / "data", database_url, limits={"intake_per_hour": "1000"})
    yield running
    running.stop()


def _published_md5(client: httpx.Client) -> int:
    """MD5 references published now (every earlier test waited for its own to publish)."""
    return references(wait_published(client), "md5")


def _report(client: httpx.Client, fingerprints: list[dict[str, object]]) -> httpx.Response:
    return client.post(
        "/v1/reports",
        json={"content_kind": "image", "age_attestation": "minor", "fingerprints": fingerprints},
    )


def _signed_manifest(client: httpx.Client) -> dict[str, object]:
    answer = client.get("/v1/index/manifest")
    assert answer.status_code == 200
    body = answer.json()
    pinned = client.get("/v1/keys").json()["publication_key"]
    VerifyKey(bytes.fromhex(pinned)).verify(
        body["manifest"].encode(), bytes.fromhex(body["signature"])
    )
    manifest: dict[str, object] = json.loads(body["manifest"])
    return manifest


def _platform_key(server: Server, daily: int = 1_000_000, name: str = "acme") -> str:
    out = server.admin("platform", "create", name, "--daily-elements", str(daily))
    key: str = json.loads(out.stdout)["api_key"]
    return key


def _download_md5(client: httpx.Client, manifest: dict[str, object]) -> IndexSet | CompactIndexSet:
    def download(entry: dict[str, object]) -> Index | CompactIndex:
        answer = client.get(str(entry["url"]))
        assert answer.status_code == 200
        assert hashlib.sha256(answer.content).hexdigest() == entry["sha256"]
        return index_from_bytes(answer.content)

    indexes = manifest["indexes"]
    deltas = manifest["deltas"]
    assert isinstance(indexes, dict)
    assert isinstance(deltas, list)
    base = download(indexes["md5"])
    more = [download(d) for d in deltas if d["signal"] == "md5"]
    if isinstance(base, CompactIndex):  # md5 is published compact by default
        return CompactIndexSet(base, [d for d in more if isinstance(d, CompactIndex)])
    return IndexSet(base, [d for d in more if isinstance(d, Index)])


def _public_key(manifest: dict[str, object]) -> PublicKey:
    return PublicKey(
        Element(bytes.fromhex(str(manifest["public_key"]))),
        mode=Mode.VOPRF,
        epoch=int(manifest["epoch"]),  # type: ignore[call-overload]
    )


def _match(
    client: httpx.Client,
    api_key: str,
    manifest: dict[str, object],
    uploads: list[Upload],
    audit: bool = True,
) -> list[str]:
    index = _download_md5(client, manifest)
    session = PlatformSession([index], _public_key(manifest), batch_size=64)
    auth = {"Authorization": f"Bearer {api_key}"}
    opened = client.post("/v1/match/sessions", content=session.hello(), headers=auth)
    assert opened.status_code == 201, opened.headers
    path = opened.headers["Location"]
    session.receive(opened.content)
    session.add_uploads(uploads)
    found = []
    while session.wants_to_send:
        reply = client.post(path, content=session.next_request(), headers=auth)
        assert reply.status_code == 200, reply.headers.get("Blindmatch-Error")
        found.extend(session.receive(reply.content))
    if audit:
        proof = client.post(
            path, content=session.audit_request(session.auditable_batches), headers=auth
        )
        assert proof.status_code == 200
        session.receive(proof.content)
        assert session.stats.audits_verified == 1
    closed = client.post(path, content=session.close(), headers=auth)
    assert closed.status_code == 200
    session.receive(closed.content)
    return [m.handle.hex() for m in found]


def test_report_publish_match_withdraw(server: Server) -> None:
    reported = _reported()
    with server.client() as client:
        before = _published_md5(client)
        made = _report(client, [{"signal": "md5", "hash": reported}])
        assert made.status_code == 201
        report_id, receipt = made.json()["report_id"], made.json()["receipt"]
        headers = {"Blindmatch-Receipt": receipt}
        wait_published(client, lambda m: references(m, "md5") == before + 1)
        status = client.get(f"/v1/reports/{report_id}", headers=headers)
        assert status.status_code == 200
        assert status.json()["status"] == "published"
        manifest = _signed_manifest(client)
        assert manifest["revoked_handles"] == []

        api_key = _platform_key(server)
        uploads = [Upload("hit", "md5", bytes.fromhex(reported)), Upload("miss", "md5", OTHER)]
        handles = _match(client, api_key, manifest, uploads)
        assert len(handles) == 1

        gone = client.delete(f"/v1/reports/{report_id}", headers=headers)
        assert gone.status_code == 200
        assert gone.json()["status"] == "withdrawn"
        # At once, before any rebuild: the manifest revokes the handle.
        assert _signed_manifest(client)["revoked_handles"] == handles
        again = client.delete(f"/v1/reports/{report_id}", headers=headers)
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "already_withdrawn"
        # The next full index no longer holds the report.
        rebuilt = wait_published(client, lambda m: references(m, "md5") == before)
        assert rebuilt["revoked_handles"] == []
    verified = server.admin("--json", "audit", "verify")
    kinds = json.loads(verified.stdout)
    assert kinds["ok"] is True
    assert kinds["entries"] >= 5


def test_refusals_are_typed_4xx(server: Server) -> None:
    with server.client() as client:
        cases = [
            (
                client.post(
                    "/v1/reports",
                    content=b"{not json",
                    headers={"content-type": "application/json"},
                ),
                422,
                "invalid_request",
            ),
            (
                _report(client, [{"signal": "pdq", "hash": "ab" * 32, "quality": 49}]),
                422,
                "pdq_quality_too_low",
            ),
            (_report(client, [{"signal": "md5", "hash": "ab" * 32}]), 422, "invalid_hash"),
            (
                _report(
                    client, [{"signal": "vpdq", "frames": [{"hash": "cd" * 32, "quality": 10}]}]
                ),
                422,
                "pdq_quality_too_low",
            ),
            (
                client.post(
                    "/v1/reports",
                    content=b"x" * 300_000,
                    headers={"content-type": "application/json"},
                ),
                413,
                "payload_too_large",
            ),
            (
                client.get("/v1/reports/" + "0" * 24, headers={"Blindmatch-Receipt": "nope"}),
                401,
                "invalid_receipt",
            ),
            (client.get("/v1/nothing"), 404, "not_found"),
            (
                client.post("/v1/match/sessions", content=b"\x01\x01\x00\x01\x01"),
                401,
                "missing_api_key",
            ),
            (
                client.post(
                    "/v1/match/sessions",
                    content=b"\x01\x01\x00\x01\x01",
                    headers={"Authorization": "Bearer bmk_00_x"},
                ),
                401,
                "invalid_api_key",
            ),
        ]
        for answer, status, code in cases:
            assert answer.status_code == status, (code, answer.text)
            assert answer.json()["error"]["code"] == code
            assert "ab" * 16 not in answer.text
            assert "Traceback" not in answer.text
        first = _report(client, [{"signal": "sha256", "hash": "ef" * 32}])
        assert first.status_code == 201
        duplicate = _report(client, [{"signal": "sha256", "hash": "EF" * 32}])
        assert duplicate.status_code == 409
        assert duplicate.json()["error"]["code"] == "duplicate_submission"
        receipt = first.json()["receipt"]
        # One character changed (never to itself: a receipt may end in "A").
        altered = receipt[:-1] + ("B" if receipt.endswith("A") else "A")
        wrong = client.get(
            f"/v1/reports/{first.json()['report_id']}",
            headers={"Blindmatch-Receipt": altered},
        )
        assert wrong.status_code == 401
        assert client.get("/v1/health").status_code == 200


def test_matching_refusals_quota_and_disabled_keys(server: Server) -> None:
    with server.client() as client:
        before = _published_md5(client)
        assert _report(client, [{"signal": "md5", "hash": _reported()}]).status_code == 201
        manifest = wait_published(client, lambda m: references(m, "md5") == before + 1)
        api_key = _platform_key(server, daily=100, name="small")
        auth = {"Authorization": f"Bearer {api_key}"}
        opened = client.post("/v1/match/sessions", content=b"\x01\x01\x00\x01\x01", headers=auth)
        assert opened.status_code == 201
        path = opened.headers["Location"]
        garbage = client.post(path, content=b"\x01\x03garbage", headers=auth)
        assert garbage.status_code == 400
        assert isinstance(decode(garbage.content), ErrorMessage)
        key = _public_key(manifest)
        element = Element(bytes.fromhex(str(manifest["public_key"])))

        def batch(batch_id: int, count: int) -> bytes:
            return EvaluateRequest(
                decode(opened.content).suite,  # type: ignore[union-attr]
                Mode.VOPRF,
                key.epoch,
                key.key_id,
                batch_id,
                (element,) * count,
            ).encode()

        assert client.post(path, content=batch(0, 60), headers=auth).status_code == 200
        # An invalid element is refused by the session that evaluates the batch; the
        # elements it reserved go back to the quota (the 40 below still fit).
        invalid = batch(7, 1)[:-32] + b"\xff" * 32
        refused = client.post(path, content=invalid, headers=auth)
        assert refused.status_code == 422
        assert refused.headers["Blindmatch-Error"] == "invalid_element"
        assert isinstance(decode(refused.content), ErrorMessage)
        reused = client.post(path, content=batch(0, 1), headers=auth)
        assert reused.status_code == 409
        assert reused.headers["Blindmatch-Error"] == "unexpected_message"
        spent = client.post(path, content=batch(1, 41), headers=auth)
        assert spent.status_code == 429
        assert int(spent.headers["Retry-After"]) > 0
        refusal = decode(spent.content)
        assert isinstance(refusal, ErrorMessage)
        # The refused batch evaluated nothing and took nothing: 40 elements remain.
        assert client.post(path, content=batch(2, 40), headers=auth).status_code == 200
        assert client.post(path, content=batch(3, 1), headers=auth).status_code == 429

        server.admin("platform", "disable", "small")
        disabled = client.post(path, content=batch(4, 1), headers=auth)
        assert disabled.status_code == 401
        assert disabled.json()["error"]["code"] == "platform_disabled"


def test_openapi_document_lists_only_v1_routes(server: Server) -> None:
    with server.client() as client:
        document = client.get("/v1/openapi.json").json()
    assert document["paths"]
    assert all(path.startswith("/v1/") for path in document["paths"])
    assert "/v1/match/sessions/{session_id}" in document["paths"]


def test_disputes_from_distinct_platforms_suspend_a_report_pending_review(server: Server) -> None:
    reported = _reported()
    with server.client() as client:
        before = _published_md5(client)
        made = _report(client, [{"signal": "md5", "hash": reported}])
        report_id, receipt = made.json()["report_id"], made.json()["receipt"]
        manifest = wait_published(client, lambda m: references(m, "md5") == before + 1)
        keys = [_platform_key(server, name=f"platform-{n}") for n in range(3)]
        handles = _match(
            client, keys[0], manifest, [Upload("hit", "md5", bytes.fromhex(reported))], audit=False
        )
        assert len(handles) == 1

        def verdict(key: str, value: str, handle: str = handles[0]) -> httpx.Response:
            return client.post(
                "/v1/feedback",
                json={"handle": handle, "verdict": value},
                headers={"Authorization": f"Bearer {key}"},
            )

        assert verdict(keys[0], "not_reported_kind").json()["status"] == "active"
        assert verdict(keys[0], "not_reported_kind").json()["status"] == "active"  # same platform
        assert verdict(keys[1], "actioned").json()["status"] == "active"
        assert verdict(keys[1], "not_reported_kind").json()["status"] == "active"
        assert verdict(keys[2], "not_reported_kind").json()["status"] == "suspended"
        unknown = verdict(keys[2], "actioned", handle="00" * 16)
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "unknown_handle"
        assert verdict("bmk_0_nope", "actioned").status_code == 401

        assert _signed_manifest(client)["revoked_handles"] == handles
        status = client.get(f"/v1/reports/{report_id}", headers={"Blindmatch-Receipt": receipt})
        assert status.json()["status"] == "suspended"
        waiting = json.loads(server.admin("--json", "reports", "review").stdout)
        assert [(w["report_id"], w["disputes"], w["actioned"]) for w in waiting] == [
            (report_id, 3, 0)
        ]
        server.admin("reports", "reinstate", report_id)
        assert json.loads(server.admin("--json", "reports", "review").stdout) == []
        assert _signed_manifest(client)["revoked_handles"] == []
        # Published again (the module's next test counts from here).
        wait_published(client, lambda m: references(m, "md5") == before + 1)
        again = server.admin("reports", "remove", report_id, check=False)
        assert again.returncode == 2
        assert "no suspended report" in again.stderr
    assert json.loads(server.admin("--json", "audit", "verify").stdout)["ok"] is True


def test_the_publisher_writes_closed_days_into_the_audit_log(server: Server) -> None:
    _platform_key(server, name="nightly")
    url = server.database_url or f"sqlite:///{server.data_dir / 'blindmatch.sqlite3'}"
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as connection:
            platform = connection.execute(
                sa.select(platforms.c.id).where(platforms.c.name == "nightly")
            ).scalar_one()
            # Yesterday's traffic, and no request from the platform since midnight.
            yesterday = int(time.time()) // 86_400 - 1
            connection.execute(
                sa.insert(quota_usage).values(
                    platform=platform, day=yesterday, used=4096, audited=False
                )
            )
        deadline = time.monotonic() + 30
        entries: list[str] = []
        while not entries and time.monotonic() < deadline:
            time.sleep(0.5)
            with engine.begin() as connection:
                entries = list(
                    connection.execute(
                        sa.select(audit_log.c.payload).where(
                            audit_log.c.kind == "platform_daily_elements"
                        )
                    ).scalars()
                )
    finally:
        engine.dispose()
    assert [json.loads(e) for e in entries] == [
        {"platform": "nightly", "day": yesterday, "elements": 4096}
    ]
    assert json.loads(server.admin("--json", "audit", "verify").stdout)["ok"] is True
