"""Index publication: build each signal's index of an epoch, sign a manifest, serve files.

Theory of operation
-------------------
A publication is one version of the full indexes of one key epoch: one file per signal
type, built by the existing process-pool builder (:func:`blindmatch.psi.index.build_index`,
every core) from the live reports (not withdrawn, not suspended). The publisher builds
into a fresh directory, then in one transaction takes the next version number, records
the files, their digests and the private handle -> report map, appends an audit entry,
and renames the directory to its version before committing. A publisher that loses a
race for the version (two hosts) just discards its build.

The manifest is made when it is asked for, from the newest publication of the epoch and
the current state of the reports, and signed with the deployment's Ed25519 publication
key: its ``revoked_handles`` list the handles of that publication whose report has been
withdrawn or suspended since, so a withdrawal takes effect at the platforms' next
manifest poll, before any rebuild; the next full index no longer holds the report.

Signals. Reports carry ``pdq``, ``md5``, ``sha256`` and ``vpdq`` fingerprints; vPDQ frames
are PDQ hashes and are published in the ``pdq`` index, so a platform's image or frame
matches either. :func:`banding_for` is the one place a signal name becomes a banding.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from blindmatch.fingerprint.signals import default_registry
from blindmatch.protocols import IndexDigest, signal_banding
from blindmatch.psi.bands import Banding
from blindmatch.psi.index import Reference, build_index
from blindmatch.service import audit
from blindmatch.service.epochs import KeyStore
from blindmatch.service.errors import NotFound, Unavailable
from blindmatch.service.schema import (
    fingerprints,
    handles,
    publication_files,
    publications,
    reports,
)
from blindmatch.service.settings import Settings
from blindmatch.service.storage import Database, now

__all__ = [
    "INDEX_SIGNALS",
    "Manifest",
    "PublishedFile",
    "banding_for",
    "current_digests",
    "index_signal",
    "manifest",
    "needs_publication",
    "publish",
    "published_file",
]

INDEX_SIGNALS = ("md5", "pdq", "sha256")
"""Signal types with a published index, sorted."""
MANIFEST_FORMAT = 1


def banding_for(signal: str) -> Banding:
    """The public banding of an index signal, as its signal type in the registry says."""
    if signal not in INDEX_SIGNALS:
        raise NotFound("no index for that signal", code="unknown_signal")
    return signal_banding(default_registry().get(signal))


def index_signal(stored: str) -> str:
    """The index a stored fingerprint's signal is published in (vPDQ frames: ``pdq``)."""
    return "pdq" if stored == "vpdq" else stored


def _live_state(connection: Connection) -> tuple[int, int]:
    row = connection.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(reports.c.id), 0)).where(
            reports.c.status == "active"
        )
    ).one()
    return int(row[0]), int(row[1])


def _latest(connection: Connection, epoch: int) -> sa.Row[tuple[object, ...]] | None:
    return connection.execute(
        sa.select(publications)
        .where(publications.c.epoch == epoch)
        .order_by(publications.c.version.desc())
        .limit(1)
    ).first()


def needs_publication(connection: Connection, epoch: int) -> bool:
    """Whether the live reports differ from what the epoch's newest publication holds."""
    latest = _latest(connection, epoch)
    if latest is None:
        return True
    active, max_report = _live_state(connection)
    return bool(latest.active_reports != active or latest.max_report != max_report)


def publish(
    settings: Settings, database: Database, keys: KeyStore, *, processes: int | None = None
) -> int:
    """Build and record a new publication of the current epoch; return its version."""
    with database.begin() as connection:
        epoch = keys.current(connection).epoch
        active, max_report = _live_state(connection)
        rows = connection.execute(
            sa.select(reports.c.id, reports.c.report_id, fingerprints.c.signal, fingerprints.c.hash)
            .join(fingerprints, fingerprints.c.report == reports.c.id)
            .where(reports.c.status == "active", reports.c.id <= max_report)
        ).all()
    secret = keys.secret(epoch)
    per_signal: dict[str, list[Reference]] = {s: [] for s in INDEX_SIGNALS}
    report_pk: dict[str, int] = {}
    seen: set[tuple[str, str, bytes]] = set()
    for pk, report_id, signal, value in rows:
        target = index_signal(signal)
        if (report_id, target, value) in seen:
            continue
        seen.add((report_id, target, value))
        per_signal[target].append(Reference(report_id, target, bytes(value)))
        report_pk[report_id] = pk
    epoch_dir = settings.publications_dir / str(epoch)
    build_dir = epoch_dir / f"build-{secrets.token_hex(8)}"
    build_dir.mkdir(parents=True, mode=0o755)
    files: list[dict[str, Any]] = []
    handle_rows: dict[bytes, int] = {}
    try:
        for signal in INDEX_SIGNALS:
            built = build_index(
                secret, banding_for(signal), per_signal[signal], processes=processes
            )
            (build_dir / f"{signal}.idx").write_bytes(built.data)
            files.append(
                {
                    "signal": signal,
                    "name": f"{signal}.idx",
                    "sha256": sha256_bytes(built.data),
                    "index_digest": built.digest,
                    "size": len(built.data),
                    "entries": built.header.entry_count,
                    "references": len(per_signal[signal]),
                }
            )
            for handle, report_id in built.handles.items():
                handle_rows[bytes(handle)] = report_pk[report_id]
        with database.begin() as connection:
            latest = _latest(connection, epoch)
            version = 1 if latest is None else int(latest.version) + 1
            pub_id = connection.execute(
                sa.insert(publications)
                .values(
                    epoch=epoch,
                    version=version,
                    created_at=now(),
                    max_report=max_report,
                    active_reports=active,
                )
                .returning(publications.c.id)
            ).scalar_one()
            connection.execute(
                sa.insert(publication_files), [{"publication": pub_id, **f} for f in files]
            )
            if handle_rows:
                connection.execute(
                    sa.insert(handles),
                    [
                        {"publication": pub_id, "handle": h, "report": r}
                        for h, r in handle_rows.items()
                    ],
                )
            audit.append(
                connection,
                "publication",
                {
                    "epoch": epoch,
                    "version": version,
                    "indexes": {
                        str(f["signal"]): {
                            "references": f["references"],
                            "size": f["size"],
                            "sha256": f["sha256"].hex(),
                        }
                        for f in files
                    },
                },
            )
            build_dir.rename(epoch_dir / str(version))
    finally:
        if build_dir.exists():
            shutil.rmtree(build_dir, ignore_errors=True)
    return version


def sha256_bytes(data: bytes) -> bytes:
    """SHA-256 of a file's bytes (what the manifest and the ETag carry)."""
    import hashlib

    return hashlib.sha256(data).digest()


@dataclass(frozen=True, slots=True)
class Manifest:
    """A signed manifest: the exact text that was signed, and its signature."""

    text: str
    signature: bytes


def _banding_json(banding: Banding) -> dict[str, object]:
    return {
        "signal": banding.signal,
        "hash_bits": banding.hash_bits,
        "k": banding.k,
        "count": banding.count,
        "threshold": banding.threshold,
        "seed": banding.seed.hex(),
    }


def manifest(connection: Connection, keys: KeyStore, epoch: int | None = None) -> Manifest:
    """The signed manifest of the newest publication of ``epoch`` (default: current).

    Raises:
        NotFound: no such epoch, or it no longer answers.
        Unavailable: nothing published for it yet (``not_published``).
    """
    known = {e.epoch: e for e in keys.list(connection)}
    chosen = max(known) if epoch is None and known else epoch
    info = known.get(chosen) if chosen is not None else None
    if info is None or not info.accepts(now()):
        raise NotFound("no such key epoch", code="unknown_epoch")
    latest = _latest(connection, info.epoch)
    if latest is None:
        raise Unavailable("nothing is published yet", code="not_published")
    file_rows = connection.execute(
        sa.select(publication_files)
        .where(publication_files.c.publication == latest.id)
        .order_by(publication_files.c.signal)
    ).all()
    revoked = (
        connection.execute(
            sa.select(handles.c.handle)
            .join(reports, reports.c.id == handles.c.report)
            .where(handles.c.publication == latest.id, reports.c.status != "active")
            .order_by(handles.c.handle)
        )
        .scalars()
        .all()
    )
    body = {
        "format": MANIFEST_FORMAT,
        "suite": "ristretto255-SHA512",
        "mode": "voprf",
        "epoch": info.epoch,
        "key_id": info.key_id.hex(),
        "public_key": info.public_key.hex(),
        "retires_at": info.retires_at,
        "version": latest.version,
        "published_at": latest.created_at,
        "generated_at": now(),
        "indexes": {
            row.signal: {
                "url": f"/v1/index/{info.epoch}/{latest.version}/{row.signal}",
                "sha256": row.sha256.hex(),
                "index_digest": row.index_digest.hex(),
                "size": row.size,
                "entries": row.entries,
                "references": row.references,
                "banding": _banding_json(banding_for(row.signal)),
            }
            for row in file_rows
        },
        "deltas": [],
        "revoked_handles": [bytes(h).hex() for h in revoked],
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    signature = keys.signing_key().sign(text.encode()).signature
    return Manifest(text, signature)


def current_digests(connection: Connection, epoch: int) -> list[IndexDigest]:
    """The digests of the epoch's newest publication (sent in ``ServerInfo``)."""
    latest = _latest(connection, epoch)
    if latest is None:
        return []
    rows = connection.execute(
        sa.select(publication_files.c.signal, publication_files.c.index_digest).where(
            publication_files.c.publication == latest.id
        )
    ).all()
    return [IndexDigest(row.signal, bytes(row.index_digest)) for row in rows]


@dataclass(frozen=True, slots=True)
class PublishedFile:
    """A published index file on disk, with the digest its ETag carries."""

    path: Path
    sha256: bytes
    size: int


def published_file(
    connection: Connection, settings: Settings, epoch: int, version: int, signal: str
) -> PublishedFile:
    """The file of one signal in one publication.

    Raises:
        NotFound: no such publication or signal (``unknown_index``).
    """
    row = connection.execute(
        sa.select(publication_files.c.name, publication_files.c.sha256, publication_files.c.size)
        .join(publications, publications.c.id == publication_files.c.publication)
        .where(
            publications.c.epoch == epoch,
            publications.c.version == version,
            publication_files.c.signal == signal,
        )
    ).first()
    if row is None:
        raise NotFound("no such index file", code="unknown_index")
    path = settings.publications_dir / str(epoch) / str(version) / row.name
    if not path.is_file():
        raise NotFound("no such index file", code="unknown_index")
    return PublishedFile(path, bytes(row.sha256), int(row.size))
