"""The service publishes md5 and sha256 as compact exact indexes; the SDK matches them.

Over HTTP against the real ``blindmatch serve`` (SQLite): the manifest (format 3) says each
file's format version, the md5 and sha256 files are compact (version 3) and ``pdq`` stays
banded, an SDK client matches exact uploads in the full index and in a compact delta, a
hash reported twice is one handle that stands for both reports (withdrawing one keeps it,
withdrawing both revokes it), and a retaining client keeps a compact retro record (the
upload's OPRF output) of an exact upload. In process: bytes per reference of the published
md5 file against the banded one in the same run, and a delta that repeats a base hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from blindmatch import errors
from blindmatch.client import PlatformClient, RetroStore
from blindmatch.protocols import Upload
from blindmatch.protocols.retro import retro_matches
from blindmatch.psi._index_build import RAW_OUTPUTS
from blindmatch.psi.index import CompactIndex, IndexKind
from blindmatch.service import feedback, intake, platforms
from blindmatch.service.bootstrap import bootstrap
from blindmatch.service.errors import NotFound
from blindmatch.service.models import IntakeRequest
from blindmatch.service.publication import manifest, publish, publish_delta
from blindmatch.service.schema import feedback as feedback_table
from blindmatch.service.schema import handles, reports, shared_handles
from blindmatch.service.settings import Settings
from index_tools import InProcessChunks
from service_support import Server, published_references, start_server, wait_published
from test_client import FAST, platform_key, report


def _signed(client: httpx.Client) -> dict[str, object]:
    answer = client.get("/v1/index/manifest")
    assert answer.status_code == 200
    body: dict[str, object] = json.loads(answer.json()["manifest"])
    return body


def _client(server: Server, api_key: str, publication_key: str, cache: Path) -> PlatformClient:
    return PlatformClient(
        server.url,
        api_key=api_key,
        publication_key=publication_key,
        cache_dir=cache,
        options=FAST,
    )


def test_compact_exact_indexes_published_matched_and_revoked(tmp_path: Path) -> None:
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
        md5, sha = secrets.token_bytes(16), secrets.token_bytes(32)
        twice = secrets.token_bytes(16)
        with server.client() as http:
            report(http, [{"signal": "md5", "hash": md5.hex()}])
            report(http, [{"signal": "sha256", "hash": sha.hex()}])
            one_id, one_receipt = report(http, [{"signal": "md5", "hash": twice.hex()}])
            # (another fingerprint too: an identical submission is refused as a duplicate)
            two_id, two_receipt = report(
                http,
                [
                    {"signal": "md5", "hash": twice.hex()},
                    {"signal": "sha256", "hash": secrets.token_bytes(32).hex()},
                ],
            )
            wait_published(http, lambda m: published_references(m, "md5") == 3)
            # A full version holding the reports (the publisher may have put them in
            # deltas of an empty first version); a concurrent publish may refuse once.
            for _ in range(5):
                if not wait_published(http).get("deltas"):
                    break
                server.admin("index", "publish", check=False)
            body = _signed(http)
            assert not body["deltas"]
            publication_key = http.get("/v1/keys").json()["publication_key"]
        assert body["format"] == 3
        indexes = body["indexes"]
        assert isinstance(indexes, dict)
        assert {s: indexes[s]["format_version"] for s in indexes} == {
            "md5": 3,
            "pdq": 1,
            "sha256": 3,
            "vpdq": 2,
        }
        files = sorted((tmp_path / "data").rglob("md5.v3.idx"))
        assert files
        index = CompactIndex.open(files[-1])
        assert index.header.kind is IndexKind.FULL
        assert index.digest.hex() == indexes["md5"]["index_digest"]
        # Two distinct md5 hashes (one reported twice) and the four canaries.
        assert index.key_count == 2 + 4

        api_key = platform_key(server)
        uploads = [
            Upload("m", "md5", md5),
            Upload("s", "sha256", sha),
            Upload("t", "md5", twice),
            Upload("none", "md5", secrets.token_bytes(16)),
        ]
        with _client(server, api_key, publication_key, tmp_path / "cache") as client:
            found = client.match(uploads)
            assert sorted(m.upload.ref for m in found.matches) == ["m", "s", "t"]
            assert found.stats.canaries_matched >= 1
            handle = next(m.handle for m in found.matches if m.upload.ref == "t")

            # A report after the full version reaches the platform in a compact delta.
            later = secrets.token_bytes(32)
            with server.client() as http:
                report(http, [{"signal": "sha256", "hash": later.hex()}])
                wait_published(http, lambda m: len(m.get("deltas") or []) == 1)
                deltas = _signed(http)["deltas"]
                assert isinstance(deltas, list)
                assert len(deltas) == 1
                delta = deltas[0]
            assert delta["format_version"] == 3
            assert delta["signal"] == "sha256"
            again = client.match([Upload("later", "sha256", later)])
            assert [m.upload.ref for m in again.matches] == ["later"]

            # The handle of a hash reported twice stands for both reports: withdrawing one
            # keeps it live, withdrawing both revokes it at once.
            with server.client() as http:
                gone = http.delete(
                    f"/v1/reports/{one_id}", headers={"Blindmatch-Receipt": one_receipt}
                )
                assert gone.status_code == 200
                assert bytes(handle).hex() not in _signed(http)["revoked_handles"]  # type: ignore[operator]
                status = http.get(
                    f"/v1/reports/{two_id}", headers={"Blindmatch-Receipt": two_receipt}
                )
                assert status.json()["status"] == "published"
            assert [m.upload.ref for m in client.match([Upload("t", "md5", twice)]).matches] == [
                "t"
            ]
            with server.client() as http:
                gone = http.delete(
                    f"/v1/reports/{two_id}", headers={"Blindmatch-Receipt": two_receipt}
                )
                assert gone.status_code == 200
                assert bytes(handle).hex() in _signed(http)["revoked_handles"]  # type: ignore[operator]
            after = client.match([Upload("t", "md5", twice)])
            assert after.matches == ()
            assert after.stats.revoked_dropped == 1

        # A retaining client keeps a record of a compact upload too: its OPRF output.
        store_path = tmp_path / "retro.sqlite"
        with PlatformClient(
            server.url,
            api_key=api_key,
            publication_key=publication_key,
            cache_dir=tmp_path / "cache2",
            options=dataclasses.replace(FAST, retro=True),
            retro_store=store_path,
        ) as retaining:
            kept = retaining.match([Upload("m", "md5", md5), Upload("p", "pdq", bytes(32), 90)])
            assert kept.stats.retro_records == 2
            assert retaining.retro_store is not None
            rows = retaining.retro_store._db.execute(
                "SELECT signal, format, tag_bytes, length(tags), length(pads) FROM retro_record "
                "ORDER BY signal"
            ).fetchall()
            assert rows[0] == ("md5", 3, 0, 64, 0)
            assert rows[1][:2] == ("pdq", 1)
    finally:
        server.stop()


def _md5s(count: int, seed: str) -> list[str]:
    return [
        hashlib.md5(f"{seed}/{i}".encode(), usedforsecurity=False).hexdigest() for i in range(count)
    ]


def _submit_many(settings: Settings, database: object, hashes: list[str]) -> list[str]:
    made = []
    for at in range(0, len(hashes), 64):
        body = IntakeRequest.model_validate(
            {
                "content_kind": "image",
                "age_attestation": "minor",
                "fingerprints": [{"signal": "md5", "hash": h} for h in hashes[at : at + 64]],
            }
        )
        submission = intake.normalise(body, settings.limits)
        with database.begin() as connection:  # type: ignore[attr-defined]
            report_id, _ = intake.submit(connection, submission, "127.0.0.1", settings.limits)
        made.append(report_id)
    return made


@pytest.mark.parametrize("exact_index", ["compact", "bands"])
def test_bytes_per_md5_reference(tmp_path: Path, exact_index: str) -> None:
    settings = Settings(tmp_path / "data", exact_index=exact_index).with_limits(
        intake_per_hour=10_000
    )
    database, keys = bootstrap(settings)
    try:
        count = 2048
        _submit_many(settings, database, _md5s(count, "size"))
        evaluator = InProcessChunks(chunk_entries=512)
        assert publish(settings, database, keys, evaluator=evaluator) == 1
        # The md5 file's OPRF went to the evaluator in chunks: a compact build's chunks
        # answer outputs (RAW_OUTPUTS), a banded build's tags and pads.
        md5_kind = RAW_OUTPUTS if exact_index == "compact" else 4
        assert evaluator.kinds.count(md5_kind) >= count // evaluator.chunk_entries
        with database.begin() as connection:
            body = json.loads(manifest(connection, keys).text)
        entry = body["indexes"]["md5"]
        assert entry["references"] == count
        per_reference = entry["size"] / count
        if exact_index == "compact":
            assert entry["format_version"] == 3
            assert per_reference < 8  # about 5 B (docs/index-format.md section 11)
        else:
            assert entry["format_version"] == 1
            assert per_reference > 20  # the banded file: tag, share and handle per entry
    finally:
        database.dispose()


def test_a_delta_repeating_a_base_hash_shares_its_handle(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "data", exact_index="compact").with_limits(
        intake_per_hour=10_000
    )
    database, keys = bootstrap(settings)
    try:
        [first] = _submit_many(settings, database, _md5s(1, "dup"))
        assert publish(settings, database, keys, processes=1) == 1
        # The same hash again (with another: an identical submission is a duplicate).
        [second] = _submit_many(settings, database, _md5s(1, "dup") + _md5s(1, "other"))
        made = publish_delta(settings, database, keys, processes=1)
        assert made is not None
        assert made.sequences == {"md5": 1}
        with database.begin() as connection:
            pk = dict(connection.execute(sa.select(reports.c.report_id, reports.c.id)).all())
            main = dict(
                connection.execute(
                    sa.select(handles.c.report, handles.c.handle).order_by(handles.c.report)
                ).all()
            )
            shared = connection.execute(
                sa.select(shared_handles.c.handle, shared_handles.c.report)
            ).all()
            assert sorted(main) == [pk[first], pk[second]]  # dup's first report; "other"
            dup = bytes(main[pk[first]])
            assert [(bytes(h), r) for h, r in shared] == [(dup, pk[second])]
            # Feedback on the shared handle is on every report of the hash.
            platform, _ = platforms.create(connection, "acme", 1000)
            assert feedback.record(connection, platform, dup, "actioned", 3) == "active"
            verdicts = connection.execute(
                sa.select(feedback_table.c.report).order_by(feedback_table.c.report)
            ).scalars()
            assert list(verdicts) == sorted([pk[first], pk[second]])
            # A handle no report has (a compact false hit) is an unknown handle.
            with pytest.raises(NotFound):
                feedback.record(connection, platform, secrets.token_bytes(16), "actioned", 3)
            connection.execute(
                sa.update(reports).where(reports.c.report_id == first).values(status="withdrawn")
            )
            assert json.loads(manifest(connection, keys).text)["revoked_handles"] == []
            # (the second report also holds "other": it stays live too)
            connection.execute(
                sa.update(reports).where(reports.c.report_id == second).values(status="withdrawn")
            )
            revoked = json.loads(manifest(connection, keys).text)["revoked_handles"]
            assert sorted(revoked) == sorted([dup.hex(), bytes(main[pk[second]]).hex()])
        # The published compact delta is retro-matched: a store holding no upload of its
        # base says so (a typed error, never an empty answer).
        delta_file = next((settings.publications_dir).rglob("md5-1.v3.idx"))
        assert retro_matches([], CompactIndex.open(delta_file)) == []
        store = RetroStore(tmp_path / "store.sqlite")
        try:
            with pytest.raises(errors.RetroMismatch):
                store.matches(CompactIndex.open(delta_file))
            assert store.check(CompactIndex.open(delta_file), 1) == []
        finally:
            store.close()
    finally:
        database.dispose()


def test_admin_publish_builds_the_format_the_deployment_names(tmp_path: Path) -> None:
    """``admin index publish`` reads ``BLINDMATCH_EXACT_INDEX`` as ``serve`` does (the
    server here was started with it set to ``compact``), and ``--exact-index`` overrides."""
    server = start_server(
        tmp_path / "data", "", limits={"rebuild_seconds": "3600", "rebuild_revoked_fraction": "1"}
    )
    try:
        with server.client() as http:
            wait_published(http)

            def md5_format() -> int:
                indexes = _signed(http)["indexes"]
                assert isinstance(indexes, dict)
                return int(indexes["md5"]["format_version"])

            assert md5_format() == 3
            for flags, expected in (([], 3), (["--exact-index", "bands"], 1), ([], 3)):
                done = server.admin("index", "publish", *flags, check=False)
                if done.returncode == 1:  # the publisher recorded a version meanwhile
                    done = server.admin("index", "publish", *flags)
                assert done.returncode == 0, done.stderr
                assert md5_format() == expected
    finally:
        server.stop()
