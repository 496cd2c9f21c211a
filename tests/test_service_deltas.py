"""Deltas: new reports reach platforms as deltas of the full version, on both databases.

Over HTTP against the real ``blindmatch serve``: a report made after a full publication
is in a published delta within the issue's 60 s bound, a platform session holding the
full index and the deltas it downloaded (``IndexSet``) matches it, the digest of full
index + deltas equals what ``ServerInfo`` and the manifest carry, a platform still
holding only the full index is told its index is stale, delta files are served like full
files, and withdrawing a delta's report revokes its handle at once. In process: the
publisher's rules (:func:`blindmatch.service.publication.plan`) and concurrent publishers
that never record the same delta or version twice.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from nacl.signing import VerifyKey

from blindmatch.errors import StaleIndex, WorkerError
from blindmatch.protocols import PlatformSession, Upload
from blindmatch.protocols.indexes import index_digest
from blindmatch.protocols.messages import ServerInfo, decode
from blindmatch.psi.group import Element
from blindmatch.psi.index import Index, IndexKind, IndexSet
from blindmatch.psi.keys import PublicKey
from blindmatch.psi.oprf import Mode
from blindmatch.service import audit, intake
from blindmatch.service.bootstrap import bootstrap
from blindmatch.service.epochs import KeyStore
from blindmatch.service.models import IntakeRequest
from blindmatch.service.publication import (
    MANIFEST_FORMAT,
    plan,
    publish,
    publish_delta,
)
from blindmatch.service.schema import (
    handles,
    publication_deltas,
    publication_files,
    publications,
    reports,
)
from blindmatch.service.settings import Settings
from blindmatch.service.storage import Database, now
from service_support import (  # noqa: F401 - fixtures
    Server,
    database_url,
    postgres,
    start_server,
    wait_published,
)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


FIRST = _md5("reported before the full version")
LATER = _md5("reported after the full version")
LATEST = _md5("reported after the first delta")
UNRELATED = _md5("an upload nobody reported")


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:  # noqa: F811
    # No full rebuild for a withdrawal during the test: the manifest's revocation is what
    # is checked, and the deltas stay those of version 1.
    running = start_server(
        tmp_path / "data",
        database_url,
        limits={
            "intake_per_hour": "1000",
            "rebuild_seconds": "3600",
            "rebuild_revoked_fraction": "1",
        },
        exact_index="bands",  # banded md5 deltas (compact ones: test_service_compact.py)
    )
    yield running
    running.stop()


def _report(client: httpx.Client, md5: str) -> tuple[str, str]:
    made = client.post(
        "/v1/reports",
        json={
            "content_kind": "image",
            "age_attestation": "minor",
            "fingerprints": [{"signal": "md5", "hash": md5}],
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["report_id"]), str(made.json()["receipt"])


def _signed(client: httpx.Client) -> dict[str, object]:
    body = client.get("/v1/index/manifest").json()
    pinned = client.get("/v1/keys").json()["publication_key"]
    VerifyKey(bytes.fromhex(pinned)).verify(
        body["manifest"].encode(), bytes.fromhex(body["signature"])
    )
    manifest: dict[str, object] = json.loads(body["manifest"])
    return manifest


def _download(client: httpx.Client, entry: dict[str, object]) -> Index:
    answer = client.get(str(entry["url"]))
    assert answer.status_code == 200
    assert hashlib.sha256(answer.content).hexdigest() == entry["sha256"]
    assert answer.headers["ETag"] == f'"{entry["sha256"]}"'
    assert "immutable" in answer.headers["Cache-Control"]
    return Index.from_bytes(answer.content)


def _md5_deltas(manifest: dict[str, object]) -> list[dict[str, object]]:
    deltas = manifest["deltas"]
    assert isinstance(deltas, list)
    return [d for d in deltas if d["signal"] == "md5"]


def _session(
    client: httpx.Client, api_key: str, indexes: IndexSet | Index, manifest: dict[str, object]
) -> tuple[PlatformSession, str, ServerInfo]:
    key = PublicKey(
        Element(bytes.fromhex(str(manifest["public_key"]))),
        mode=Mode.VOPRF,
        epoch=int(str(manifest["epoch"])),
    )
    session = PlatformSession([indexes], key, batch_size=64)
    auth = {"Authorization": f"Bearer {api_key}"}
    opened = client.post("/v1/match/sessions", content=session.hello(), headers=auth)
    assert opened.status_code == 201
    info = decode(opened.content)
    assert isinstance(info, ServerInfo)
    return session, opened.headers["Location"], info


def _match(
    client: httpx.Client, api_key: str, indexes: IndexSet, manifest: dict[str, object]
) -> list[str]:
    session, path, info = _session(client, api_key, indexes, manifest)
    session.receive(info.encode())
    assert session.index_digests_checked
    auth = {"Authorization": f"Bearer {api_key}"}
    session.add_uploads(
        [
            Upload("first", "md5", bytes.fromhex(FIRST)),
            Upload("later", "md5", bytes.fromhex(LATER)),
            Upload("latest", "md5", bytes.fromhex(LATEST)),
            Upload("unrelated", "md5", bytes.fromhex(UNRELATED)),
        ]
    )
    found = []
    while session.wants_to_send:
        reply = client.post(path, content=session.next_request(), headers=auth)
        assert reply.status_code == 200, reply.headers.get("Blindmatch-Error")
        found.extend(session.receive(reply.content))
    client.post(path, content=session.close(), headers=auth)
    return sorted(f"{m.upload_ref}:{m.handle.hex()}" for m in found)


def test_a_report_after_a_full_version_is_in_a_delta_that_platforms_match(
    server: Server,
) -> None:
    with server.client() as client:
        wait_published(client)  # the publisher's first full version, before any report
        _report(client, FIRST)
        # A full version holding the first report (the publisher alone would put it in a
        # delta of the empty first version).
        server.admin("index", "publish")
        wait_published(client, lambda m: m["indexes"]["md5"]["references"] == 1)
        full = _signed(client)
        assert full["format"] == MANIFEST_FORMAT == 3
        assert full["deltas"] == []
        md5 = full["indexes"]["md5"]  # type: ignore[index]
        assert md5["current_digest"] == md5["index_digest"]
        api_key = json.loads(server.admin("platform", "create", "acme").stdout)["api_key"]

        later_id, later_receipt = _report(client, LATER)
        # The bound: a new report is in a published delta within 60 s.
        manifest = wait_published(client, lambda m: len(_md5_deltas(m)) == 1, timeout=60)
        manifest = _signed(client)
        assert manifest["version"] == full["version"]  # a delta, not a new full version
        [delta] = _md5_deltas(manifest)
        assert delta["sequence"] == 1
        assert delta["references"] == 1
        assert delta["url"] == (f"/v1/index/{manifest['epoch']}/{manifest['version']}/md5/deltas/1")
        indexes = manifest["indexes"]
        assert isinstance(indexes, dict)
        base = _download(client, indexes["md5"])
        delta_index = _download(client, delta)
        assert delta_index.header.kind is IndexKind.DELTA
        assert delta_index.header.base_digest.hex() == indexes["md5"]["index_digest"]
        assert delta_index.digest.hex() == delta["index_digest"]
        current = IndexSet(base, [delta_index])
        assert index_digest(current).digest.hex() == indexes["md5"]["current_digest"]
        assert indexes["md5"]["current_digest"] != indexes["md5"]["index_digest"]

        # Delta files are served like full files: Range, If-None-Match.
        part = client.get(str(delta["url"]), headers={"Range": "bytes=0-15"})
        assert part.status_code == 206
        assert len(part.content) == 16
        unchanged = client.get(str(delta["url"]), headers={"If-None-Match": f'"{delta["sha256"]}"'})
        assert unchanged.status_code == 304
        assert client.get(str(delta["url"])[:-1] + "9").status_code == 404

        # ServerInfo carries the digest of full index + deltas; a platform holding only
        # the full index is told it is stale, one holding both matches the new report.
        stale, _, info = _session(client, api_key, base, manifest)
        assert {d.signal: d.digest.hex() for d in info.index_digests}["md5"] == (
            indexes["md5"]["current_digest"]
        )
        with pytest.raises(StaleIndex):
            stale.receive(info.encode())
        found = _match(client, api_key, current, manifest)
        assert [f.split(":")[0] for f in found] == ["first", "later"]
        later_handle = next(f.split(":")[1] for f in found if f.startswith("later"))
        assert delta_index.contains_handles([bytes.fromhex(later_handle)]) == [True]

        # A second delta extends the same full index; both are listed, in sequence.
        _report(client, LATEST)
        wait_published(client, lambda m: len(_md5_deltas(m)) == 2, timeout=60)
        manifest = _signed(client)
        assert [d["sequence"] for d in _md5_deltas(manifest)] == [1, 2]
        indexes = manifest["indexes"]
        assert isinstance(indexes, dict)
        second = _download(client, _md5_deltas(manifest)[1])
        assert second.header.base_digest == base.digest
        both = IndexSet(base, [delta_index, second])
        assert index_digest(both).digest.hex() == indexes["md5"]["current_digest"]
        found = _match(client, api_key, both, manifest)
        assert [f.split(":")[0] for f in found] == ["first", "later", "latest"]

        # Withdrawing a delta's report revokes its handle in the manifest at once.
        gone = client.delete(
            f"/v1/reports/{later_id}", headers={"Blindmatch-Receipt": later_receipt}
        )
        assert gone.status_code == 200
        assert _signed(client)["revoked_handles"] == [later_handle]
        status = client.get(
            f"/v1/reports/{later_id}", headers={"Blindmatch-Receipt": later_receipt}
        )
        assert status.json()["status"] == "withdrawn"
    verified = json.loads(server.admin("--json", "audit", "verify").stdout)
    assert verified["ok"] is True


# --- in process: the rules and concurrent publishers ---------------------------------


@pytest.fixture
def deployment(
    tmp_path: Path,
    database_url: str,  # noqa: F811
) -> Iterator[tuple[Settings, Database, KeyStore]]:
    # The banded format of the exact signals (compact ones: tests/test_service_compact.py).
    settings = Settings(tmp_path / "data", database_url, exact_index="bands").with_limits(
        intake_per_hour=10_000, rebuild_seconds=600.0, rebuild_revoked_fraction=1.0
    )
    database, keys = bootstrap(settings)
    yield settings, database, keys
    database.dispose()


def _submit(database: Database, settings: Settings, text: str) -> str:
    body = IntakeRequest.model_validate(
        {
            "content_kind": "image",
            "age_attestation": "minor",
            "fingerprints": [{"signal": "md5", "hash": _md5(text)}],
        }
    )
    submission = intake.normalise(body, settings.limits)
    with database.begin() as connection:
        report_id, _ = intake.submit(connection, submission, "127.0.0.1", settings.limits)
    return report_id


def _plan(database: Database, keys: KeyStore, settings: Settings, at: int | None = None) -> str:
    with database.begin() as connection:
        chosen = plan(connection, keys.current(connection).epoch, settings.limits, at)
    return chosen.action


def test_the_publisher_rules(deployment: tuple[Settings, Database, KeyStore]) -> None:
    settings, database, keys = deployment
    assert _plan(database, keys, settings) == "full"  # nothing published yet
    first = _submit(database, settings, "one")
    assert publish(settings, database, keys, processes=1) == 1
    assert _plan(database, keys, settings) == "none"
    _submit(database, settings, "two")
    assert _plan(database, keys, settings) == "delta"
    made = publish_delta(settings, database, keys, processes=1)
    assert made is not None
    assert made.sequences == {"md5": 1}
    assert _plan(database, keys, settings) == "none"
    assert publish_delta(settings, database, keys, processes=1) is None  # nothing new

    # A withdrawal waits for rebuild_seconds (the manifest already revokes it) ...
    with database.begin() as connection:
        connection.execute(
            sa.update(reports).where(reports.c.report_id == first).values(status="withdrawn")
        )
    assert _plan(database, keys, settings) == "none"
    _submit(database, settings, "three")
    assert _plan(database, keys, settings) == "delta"  # new reports still go out as deltas
    # ... then makes a full version.
    assert _plan(database, keys, settings, at=now() + 600) == "full"

    # Deltas past their bound make the next publication a full version (the policy's
    # own tests: tests/test_service_rebuild.py).
    limit = settings.limits.rebuild_delta_floor
    with database.begin() as connection:
        connection.execute(sa.update(publication_deltas).values(references=limit + 1))
    assert _plan(database, keys, settings) == "full"


def test_concurrent_publishers_never_record_a_delta_or_a_version_twice(
    deployment: tuple[Settings, Database, KeyStore],
) -> None:
    settings, database, keys = deployment
    _submit(database, settings, "base")
    assert publish(settings, database, keys, processes=1) == 1
    fresh = [_submit(database, settings, f"new {n}") for n in range(5)]
    barrier = threading.Barrier(4)
    results: list[object] = []

    def delta() -> None:
        barrier.wait()
        results.append(publish_delta(settings, database, keys, processes=1))

    threads = [threading.Thread(target=delta) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r is not None for r in results) == 1
    with database.begin() as connection:
        rows = connection.execute(
            sa.select(publication_deltas.c.signal, publication_deltas.c.sequence)
        ).all()
        assert [tuple(r) for r in rows] == [("md5", 1)]
        # Each new report has exactly one handle in the deltas: none published twice.
        per_report = connection.execute(
            sa.select(reports.c.report_id, sa.func.count())
            .join(handles, handles.c.report == reports.c.id)
            .where(reports.c.report_id.in_(fresh))
            .group_by(reports.c.report_id)
        ).all()
        assert sorted(per_report) == sorted((r, 1) for r in fresh)
    delta_dir = settings.publications_dir / "0" / "1" / "deltas"
    assert sorted(p.name for p in delta_dir.iterdir()) == ["md5-1.idx"]

    versions_made: list[int | None] = []
    barrier = threading.Barrier(3)

    def full() -> None:
        barrier.wait()
        versions_made.append(publish(settings, database, keys, processes=1))

    threads = [threading.Thread(target=full) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorded = sorted(v for v in versions_made if v is not None)
    with database.begin() as connection:
        versions = connection.execute(
            sa.select(publications.c.version).order_by(publications.c.version)
        ).scalars()
        assert list(versions) == [1, *recorded]
        assert audit.verify(connection).ok
    # Each recorded version was built from a different newest version: none twice.
    assert len(recorded) >= 1
    assert sorted(p.name for p in (settings.publications_dir / "0").iterdir()) == [
        str(v) for v in [1, *recorded]
    ]


class _LostCluster:
    """An evaluator whose cluster goes away after the build's own work: the full build
    fails midway through its first file."""

    chunk_entries = 64

    def evaluate_chunks(
        self,
        secret_key: object,
        chunks: Iterator[object],
        tag_bytes: int,
        meanwhile: Callable[[], None],
    ) -> Iterator[tuple[object, bytes, bytes]]:
        meanwhile()
        next(chunks)
        raise WorkerError("the cluster went away")
        yield  # a generator, as evaluators are


def test_a_full_build_that_fails_leaves_no_file_and_the_next_one_matches_its_manifest(
    deployment: tuple[Settings, Database, KeyStore],
) -> None:
    settings, database, keys = deployment
    _submit(database, settings, "streamed")
    with pytest.raises(WorkerError):
        publish(settings, database, keys, evaluator=_LostCluster())  # type: ignore[arg-type]
    # The full files are built straight into temporary files beside the publication: a
    # failed build removes them and records nothing.
    assert [p for p in settings.publications_dir.rglob("*") if p.is_file()] == []
    with database.begin() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(publications)).scalar() == 0
        )
    assert publish(settings, database, keys, processes=1) == 1
    with database.begin() as connection:
        recorded = connection.execute(
            sa.select(
                publication_files.c.name, publication_files.c.sha256, publication_files.c.size
            )
        ).all()
    version_dir = settings.publications_dir / "0" / "1"
    assert sorted(p.name for p in version_dir.iterdir() if p.is_file()) == sorted(
        name for name, _, _ in recorded
    )
    for name, sha256, size in recorded:
        data = (version_dir / name).read_bytes()
        assert hashlib.sha256(data).digest() == bytes(sha256)
        assert len(data) == size
        Index.from_bytes(data)  # verified: digest, sorted bands, handles
