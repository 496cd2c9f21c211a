"""Several ``blindmatch serve`` instances on one database behave as one (issue 13).

Two real instances (separate process trees, each with its own uvicorn worker and its own
publisher) listen on different ports, share one PostgreSQL database and one data
directory (keys and published index files: docs/deployment.md, "Several instances"), and
are started at the same moment so their start-ups race. Then: a quota is exact under
concurrent load sent to both; a report taken by A is published once, matched through B;
withdrawn through B, it is revoked in the manifest A serves; both serve the same signed
manifest and the same index bytes; the publications have no gaps or duplicates and the
audit chain both extended verifies. The deployment-wide locks behind start-up and the
publishers exclude a second holder (another engine, as another instance would be).

Two instances on one SQLite file (one machine) are run too: SQLite serialises writers
with its file lock, so the same guarantees hold there, on one host only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from blindmatch.protocols import Upload
from blindmatch.protocols.messages import EvaluateRequest, Hello, ServerInfo, decode
from blindmatch.psi.group import Element
from blindmatch.service.schema import publication_deltas, publications
from blindmatch.service.settings import Settings
from blindmatch.service.storage import Database
from service_support import (  # noqa: F401 - fixtures
    Server,
    database_url,
    postgres,
    references,
    start_server,
    wait_published,
)
from test_service_e2e import _match, _report, _signed_manifest

REPORTED = hashlib.md5(b"reported through instance A", usedforsecurity=False).hexdigest()
OTHER = hashlib.md5(b"an upload nobody reported", usedforsecurity=False).digest()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    # One pair per database serves the module (a start costs seconds); only
    # test_report_on_a_matched_on_b_withdrawn_on_b_revoked_on_a reports anything, so its
    # reference counts hold in any order.
    url = ""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").new_database()
    data = tmp_path_factory.mktemp("horizontal") / "shared" / "data"
    limits = {"intake_per_hour": "1000"}
    # Both start at once: migrations, the audit head, the salt, epoch 0 and the
    # publication key are created by whichever instance gets there first.
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(start_server, data, url, limits=limits) for _ in "ab"]
    started = [f.result() for f in futures if f.exception() is None]
    try:
        assert len(started) == 2, f"an instance did not start: {futures[0].exception()!r}"
        yield started[0], started[1]
    finally:
        with ThreadPoolExecutor(2) as pool:  # both shut down at once, as they started
            list(pool.map(lambda server: server.stop(), started))


def _sql_url(server: Server) -> str:
    if not server.database_url:
        return f"sqlite:///{server.data_dir / 'blindmatch.sqlite3'}"
    return "postgresql+psycopg://" + server.database_url.split("://", 1)[1]


def test_two_instances_share_one_quota(pair: tuple[Server, Server]) -> None:
    a, b = pair
    assert a.port != b.port
    out = a.admin("platform", "create", "pair", "--daily-elements", "400")
    auth = {"Authorization": f"Bearer {json.loads(out.stdout)['api_key']}"}
    with a.client() as client:
        opened = client.post("/v1/match/sessions", content=Hello().encode(), headers=auth)
    assert opened.status_code == 201
    info = decode(opened.content)
    assert isinstance(info, ServerInfo)
    path = opened.headers["Location"]
    element = Element(bytes(info.public_key))

    def send(batch_id: int) -> int:
        # A session opened on A is continued on either instance, alternately.
        request = EvaluateRequest(
            info.suite, info.mode, info.key_epoch, info.key_id, batch_id, (element,) * 30
        )
        with (a if batch_id % 2 else b).client() as own:
            return own.post(path, content=request.encode(), headers=auth).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, range(24)))
    assert statuses.count(200) == 13  # 13 * 30 = 390 <= 400 < 14 * 30, across both
    assert statuses.count(429) == 11
    with a.client() as client_a, b.client() as client_b:
        # Same epoch and key on both: the key file is shared, created once.
        assert client_a.get("/v1/keys").json() == client_b.get("/v1/keys").json()


def test_report_on_a_matched_on_b_withdrawn_on_b_revoked_on_a(
    pair: tuple[Server, Server],
) -> None:
    a, b = pair
    with a.client() as client_a, b.client() as client_b:
        made = _report(client_a, [{"signal": "md5", "hash": REPORTED}])
        assert made.status_code == 201
        report_id, receipt = made.json()["report_id"], made.json()["receipt"]
        # A burst of other reports through both, so both publishers have work at once.
        with ThreadPoolExecutor(4) as pool:
            burst = list(
                pool.map(
                    lambda n: (
                        _report(
                            client_a if n % 2 else client_b,
                            [{"signal": "sha256", "hash": hashlib.sha256(b"%d" % n).hexdigest()}],
                        ).status_code
                    ),
                    range(12),
                )
            )
        assert burst == [201] * 12
        manifest = wait_published(
            client_b, lambda m: references(m, "md5") == 1 and references(m, "sha256") == 12
        )
        # The same signed document through both (generated_at aside, it is the same).
        signed_a, signed_b = _signed_manifest(client_a), _signed_manifest(client_b)
        for signed in (signed_a, signed_b):
            signed.pop("generated_at")
        assert signed_a == signed_b
        indexes = manifest["indexes"]
        assert isinstance(indexes, dict)
        for signal in ("md5", "pdq"):
            url = indexes[signal]["url"]
            assert client_a.get(url).content == client_b.get(url).content

        api_key = json.loads(b.admin("platform", "create", "acme").stdout)["api_key"]
        uploads = [Upload("hit", "md5", bytes.fromhex(REPORTED)), Upload("miss", "md5", OTHER)]
        handles = _match(client_b, api_key, manifest, uploads)
        assert len(handles) == 1

        headers = {"Blindmatch-Receipt": receipt}
        gone = client_b.delete(f"/v1/reports/{report_id}", headers=headers)
        assert gone.status_code == 200
        assert _signed_manifest(client_a)["revoked_handles"] == handles
        assert client_a.get(f"/v1/reports/{report_id}", headers=headers).json()["status"] == (
            "withdrawn"
        )
        again = client_a.delete(f"/v1/reports/{report_id}", headers=headers)
        assert again.status_code == 409
        rebuilt = wait_published(client_a, lambda m: references(m, "md5") == 0)
        assert rebuilt["revoked_handles"] == []
    engine = sa.create_engine(_sql_url(a))
    try:
        with engine.connect() as connection:
            versions = connection.execute(
                sa.select(publications.c.version).order_by(publications.c.version)
            ).scalars()
            numbers = list(versions)
            assert numbers == list(range(1, len(numbers) + 1))
            per_file: dict[tuple[int, str], list[int]] = {}
            for row in connection.execute(
                sa.select(
                    publication_deltas.c.publication,
                    publication_deltas.c.signal,
                    publication_deltas.c.sequence,
                ).order_by(publication_deltas.c.sequence)
            ):
                per_file.setdefault((row.publication, row.signal), []).append(row.sequence)
            for sequences in per_file.values():
                assert sequences == list(range(1, len(sequences) + 1))
    finally:
        engine.dispose()
    verified = json.loads(a.admin("--json", "audit", "verify").stdout)
    assert verified["ok"] is True


def test_exclusive_sections_exclude_other_holders(
    tmp_path: Path,
    database_url: str,  # noqa: F811
) -> None:
    # Two engines stand for two instances: the lock is the database's (PostgreSQL advisory
    # lock) or the data directory's (flock beside the SQLite file), not a process's.
    settings = Settings(tmp_path / "data", database_url)
    settings.prepare()
    first, second = Database(settings), Database(settings)
    try:
        with first.exclusive("publisher", wait=False) as held:
            assert held is True
            with second.exclusive("publisher", wait=False) as other:
                assert other is False
            with second.exclusive("bootstrap", wait=False) as unrelated:
                assert unrelated is True
        with second.exclusive("publisher", wait=False) as after:
            assert after is True
    finally:
        first.dispose()
        second.dispose()
