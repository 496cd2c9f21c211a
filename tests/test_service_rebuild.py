"""The rebuild policy: full versions only when a measured quantity passes its bound.

In process, on both databases: :func:`blindmatch.service.publication.plan` against real
published files (the deltas' bytes against the full file's, their count, the withdrawn
fraction of the version's reports). Over HTTP against the real ``blindmatch serve`` with
small thresholds: deltas accumulate without a rebuild until the threshold, then exactly
one full version; a report withdrawn meanwhile never matches through the platform SDK
(its handle is revoked in the manifest). Enough withdrawals make a full version at once,
whatever ``rebuild_seconds`` says (in process, on both databases).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from blindmatch.client import PlatformClient
from blindmatch.protocols import Upload
from blindmatch.service import intake
from blindmatch.service.bootstrap import bootstrap
from blindmatch.service.epochs import KeyStore
from blindmatch.service.models import IntakeRequest
from blindmatch.service.publication import Plan, plan, publish, publish_delta
from blindmatch.service.schema import publication_deltas, publication_files, reports
from blindmatch.service.settings import Settings
from blindmatch.service.storage import Database
from service_support import (  # noqa: F401 - fixtures
    database_url,
    postgres,
    start_server,
    wait_published,
)
from test_client import FAST


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


# --- in process: the rules ------------------------------------------------------------


@pytest.fixture
def deployment(
    tmp_path: Path,
    database_url: str,  # noqa: F811
) -> Iterator[tuple[Settings, Database, KeyStore]]:
    settings = Settings(tmp_path / "data", database_url, exact_index="bands").with_limits(
        intake_per_hour=10_000
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


def _plan(database: Database, keys: KeyStore, settings: Settings, **limits: object) -> Plan:
    chosen = settings.with_limits(**limits).limits
    with database.begin() as connection:
        return plan(connection, keys.current(connection).epoch, chosen)


def _sizes(database: Database) -> tuple[int, int]:
    """Bytes of the md5 full file and of all its deltas, as recorded."""
    with database.begin() as connection:
        full = connection.execute(
            sa.select(publication_files.c.size).where(publication_files.c.signal == "md5")
        ).scalar_one()
        deltas = connection.execute(
            sa.select(sa.func.coalesce(sa.func.sum(publication_deltas.c.size), 0)).where(
                publication_deltas.c.signal == "md5"
            )
        ).scalar_one()
    return int(full), int(deltas)


def test_deltas_pass_their_bound_by_bytes_count_and_floor(
    deployment: tuple[Settings, Database, KeyStore],
) -> None:
    settings, database, keys = deployment
    for n in range(8):
        _submit(database, settings, f"base {n}")
    assert publish(settings, database, keys, processes=1) == 1
    for n in range(2):
        _submit(database, settings, f"new {n}")
        assert publish_delta(settings, database, keys, processes=1) is not None
    _submit(database, settings, "waiting")  # a delta is due: full or delta?
    full, deltas = _sizes(database)
    assert 0 < deltas < full
    loose = {"rebuild_delta_floor": 0, "rebuild_max_deltas": 100}
    # The deltas' bytes against the full file's: at the fraction, a delta; past it, a full.
    at = _plan(database, keys, settings, rebuild_delta_fraction=deltas / full, **loose)
    assert at.action == "delta"
    over = _plan(database, keys, settings, rebuild_delta_fraction=deltas / full * 0.99, **loose)
    assert over.action == "full"
    assert f"md5 deltas hold {deltas} bytes against {full}" in over.reason
    # The floor: 2 references in deltas never pass a floor of 2.
    floored = _plan(
        database,
        keys,
        settings,
        rebuild_delta_fraction=0.0,
        rebuild_delta_floor=2,
        rebuild_max_deltas=100,
    )
    assert floored.action == "delta"
    # The count: 2 deltas reach a maximum of 2.
    counted = _plan(database, keys, settings, rebuild_max_deltas=2)
    assert (counted.action, counted.reason) == (
        "full",
        "the deltas passed their bound (md5 has 2 deltas)",
    )
    assert _plan(database, keys, settings, rebuild_max_deltas=3).action == "delta"
    # Deltas past their bound wait for a new report: nothing new, nothing to publish.
    assert publish_delta(settings, database, keys, processes=1) is not None
    assert _plan(database, keys, settings, rebuild_max_deltas=2).action == "none"


def test_withdrawn_reports_make_a_full_version_past_their_fraction_at_any_age(
    deployment: tuple[Settings, Database, KeyStore],
) -> None:
    settings, database, keys = deployment
    ids = [_submit(database, settings, f"report {n}") for n in range(4)]
    assert publish(settings, database, keys, processes=1) == 1
    _submit(database, settings, "in a delta")
    assert publish_delta(settings, database, keys, processes=1) is not None
    never_old = {"rebuild_seconds": 10.0**9, "rebuild_revoked_fraction": 0.25}
    assert _plan(database, keys, settings, **never_old).action == "none"

    def leave(report_id: str, status: str) -> None:
        with database.begin() as connection:
            connection.execute(
                sa.update(reports).where(reports.c.report_id == report_id).values(status=status)
            )

    leave(ids[0], "withdrawn")  # 1 of the version's 5 reports: 0.2, not past 0.25
    assert _plan(database, keys, settings, **never_old).action == "none"
    _submit(database, settings, "more")
    assert _plan(database, keys, settings, **never_old).action == "delta"
    # ... while an old enough version is rebuilt for it (rebuild_seconds: the age bound).
    assert _plan(database, keys, settings, rebuild_seconds=0.0).action == "full"
    leave(ids[1], "suspended")  # 2 of 5: past 0.25, at once
    chosen = _plan(database, keys, settings, **never_old)
    assert (chosen.action, chosen.reason) == (
        "full",
        "2 of the version's 5 reports withdrawn or suspended",
    )
    assert publish(settings, database, keys, processes=1) == 2
    # The new version holds neither: nothing withdrawn in it, nothing to rebuild.
    assert _plan(database, keys, settings, **never_old).action == "none"


# --- over HTTP: a real server with small thresholds -------------------------------------


def _report(http: httpx.Client, text: str) -> tuple[str, str]:
    made = http.post(
        "/v1/reports",
        json={
            "content_kind": "image",
            "age_attestation": "minor",
            "fingerprints": [{"signal": "md5", "hash": _md5(text)}],
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["report_id"]), str(made.json()["receipt"])


def _md5_deltas(manifest: dict[str, object]) -> int:
    deltas = manifest["deltas"]
    assert isinstance(deltas, list)
    return sum(d["signal"] == "md5" for d in deltas)


def _full_md5(manifest: dict[str, object]) -> int:
    indexes = manifest["indexes"]
    assert isinstance(indexes, dict)
    return int(indexes["md5"]["references"])


def test_deltas_accumulate_then_one_rebuild_and_withdrawals_never_match(
    tmp_path: Path,
) -> None:
    server = start_server(
        tmp_path / "data",
        "",
        limits={
            "intake_per_hour": "1000",
            "rebuild_seconds": "3600",  # no rebuild for age during the test
            "rebuild_max_deltas": "3",
            "rebuild_delta_floor": "0",
            "rebuild_delta_fraction": "1000",  # the count decides here (bytes: in process)
            "rebuild_revoked_fraction": "0.5",
        },
        exact_index="bands",
    )
    try:
        with server.client() as http:
            first = wait_published(http)  # the empty first version, before any report
            version = first["version"]
            api_key = json.loads(server.admin("platform", "create", "acme").stdout)["api_key"]
            platform = PlatformClient(
                server.url,
                api_key=api_key,
                publication_key=http.get("/v1/keys").json()["publication_key"],
                cache_dir=tmp_path / "cache",
                options=FAST,
            )
            texts = [f"report {n}" for n in range(4)]
            uploads = [Upload(t, "md5", bytes.fromhex(_md5(t))) for t in texts]

            def matched() -> list[str]:
                return sorted(m.upload.ref for m in platform.match(uploads).matches)

            def published(count: int) -> dict[str, object]:
                return wait_published(
                    http, lambda m: _md5_deltas(m) + _full_md5(m) == count, timeout=60
                )

            made = [_report(http, texts[0])]
            published(1)
            made.append(_report(http, texts[1]))
            published(2)

            # Withdrawn between rebuilds: 1 of the version's 2 reports (not past 0.5). The
            # manifest revokes it at once; the SDK never reports its match.
            report_id, receipt = made[0]
            gone = http.delete(f"/v1/reports/{report_id}", headers={"Blindmatch-Receipt": receipt})
            assert gone.status_code == 200
            assert matched() == [texts[1]]
            revoked = wait_published(http)["revoked_handles"]
            assert isinstance(revoked, list)
            assert len(revoked) == 1

            # A third delta of the same version: the withdrawal did not rebuild it.
            made.append(_report(http, texts[2]))
            manifest = published(3)
            assert (manifest["version"], _md5_deltas(manifest)) == (version, 3)
            assert manifest["revoked_handles"] == revoked

            # The fourth report finds 3 deltas: one full version in their place.
            made.append(_report(http, texts[3]))
            rebuilt = wait_published(http, lambda m: m["version"] != version, timeout=60)
            assert rebuilt["version"] == int(str(version)) + 1
            assert (_full_md5(rebuilt), _md5_deltas(rebuilt)) == (3, 0)  # not the withdrawn
            assert rebuilt["revoked_handles"] == []

            assert matched() == texts[1:4]
            platform.close()
        log = server.log_path.read_text()
        assert "the deltas passed their bound (md5 has 3 deltas)" in log
        # With the default fraction (0.05) the withdrawal would have rebuilt at once.
        assert "withdrawn or suspended" not in log
    finally:
        server.stop()
