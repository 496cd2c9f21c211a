"""Index publication: full versions of each signal's index, deltas, a signed manifest.

Theory of operation
-------------------
A *publication* is one full version of the indexes of one key epoch: one file per signal
type, built by the existing process-pool builder straight into its file
(:func:`blindmatch.psi.index.build_index_file`, every core, memory bounded by a run and a
band rather than the file's size) from the live reports (not withdrawn, not suspended).
Between full versions, reports that arrive are published in *deltas* of that version
(:func:`blindmatch.psi.index.add_references`, kind ``DELTA``, each extending the full index
directly: psi refuses a delta of a delta), numbered 1, 2, ... per signal. A platform holding
version V with deltas 1..n downloads only deltas n+1..m; when the manifest names a new
version it downloads the new full files.

The publisher (:mod:`.publisher`) asks :func:`plan` what to do every ``publish_interval``.
A full version costs one OPRF evaluation per (reference, band) and a full download for
every platform (at 10^7 PDQ references about 87 core-hours and 46 GB: docs/scaling.md), so
it is made only when a quantity the database already holds passes a bound of
:class:`~.settings.Limits`, first rule first:

- nothing published for the current epoch (first start, key rotation): a full version;
- more than ``rebuild_revoked_fraction`` of the reports the version holds (full index
  and deltas: ``covered_active``) withdrawn or suspended since (their handles revoked in
  every manifest): a full version at once, whatever its age;
- a change deltas cannot carry (a report withdrawn, suspended or reinstated, or a new
  reported video for the grouped ``vpdq`` index) and the newest version at least
  ``rebuild_seconds`` old: a full version. Until then deltas go on carrying new reports,
  withdrawals are already revoked in the manifest (platforms drop a revoked handle's
  matches: :mod:`blindmatch.client.flows`), and a new video's frames are in the ``pdq``
  deltas; so this rebuild only reclaims space and completes video matching;
- new live reports since what the newest version covers: a delta, unless one signal's
  deltas already passed their bound (``rebuild_max_deltas`` deltas, or more than
  ``rebuild_delta_fraction`` of its full file's bytes and more than
  ``rebuild_delta_floor`` references): then a full version in its place.

Several publishers (several workers' hosts) never publish the same thing twice: a build
remembers what it started from and the commit transaction decides. A full version is
recorded only if the epoch's newest version is still the one the build saw (the unique
``(epoch, version)`` refuses the rest); a delta only if the conditional ``UPDATE`` that
advances its version's ``covered_report`` from the value the build saw changes one row
(on PostgreSQL the second writer waits for the first's row lock and then finds the value
changed). The loser discards its files. Files are built under a temporary name and
renamed inside the recording transaction.

Exact signals (``md5``, ``sha256``) are published as compact exact indexes (format version
3, :mod:`blindmatch.psi.compact`; file names ending ``.v3.idx``) unless the deployment's
``exact_index`` is ``"bands"``; a delta follows its base's format. A compact file is built
over one key per distinct hash (one OPRF evaluation per hash, on the publisher's process
pool or Ray evaluator as a banded build; the filter is solved in this process), and its
handle, derived from the hash's OPRF output, stands for every report of that hash:
``handles`` names the first, ``shared_handles`` the others (also a report in a delta whose
hash an earlier file holds), and the handle is revoked only once none of them is live.

The manifest (format 3, docs/deployment.md) is made when it is asked for, from the newest
version of the epoch, its deltas and the current state of the reports, and signed with the
deployment's Ed25519 publication key: ``indexes[signal].current_digest`` names the full
index with the listed deltas (what ``ServerInfo`` carries), and ``revoked_handles`` lists
the handles of that version and its deltas whose report has been withdrawn or suspended
since, so a withdrawal takes effect at the platforms' next manifest poll, before any
rebuild; the next full version no longer holds the report.

Signals. Reports carry ``pdq``, ``md5``, ``sha256`` and ``vpdq`` fingerprints. A reported
video's frames are published twice: as references of one group in the grouped ``vpdq``
index (format version 2), which ``VideoMatcher`` uses to match an uploaded video under the
vPDQ rule (query and compared shares), and as plain references in the ``pdq`` index. The
second costs index entries, but a screenshot or a single frame of a reported video posted
as an image is worth matching, and the ``pdq`` index gets deltas, so a new video's frames
are matchable within one publish interval while the grouped index, which psi never
extends with deltas, waits for the next full version. :func:`banding_for` is the one place
a signal name becomes a banding.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from blindmatch.fingerprint.signals import default_registry
from blindmatch.fingerprint.types import PdqHash, VideoFingerprint, VideoFrame
from blindmatch.protocols import IndexDigest, signal_banding, video_references
from blindmatch.protocols.indexes import index_digest
from blindmatch.psi.bands import Banding
from blindmatch.psi.compact import COMPACT_VERSION
from blindmatch.psi.index import (
    BuiltCompactIndex,
    BuiltIndex,
    ChunkEvaluator,
    CompactIndex,
    Index,
    Reference,
    WrittenIndex,
    add_compact_references,
    add_references,
    build_compact_index,
    build_index_file,
)
from blindmatch.psi.keys import SecretKey
from blindmatch.service import audit
from blindmatch.service.epochs import KeyStore
from blindmatch.service.errors import NotFound, Unavailable
from blindmatch.service.schema import (
    fingerprints,
    handles,
    publication_deltas,
    publication_files,
    publications,
    reports,
    shared_handles,
)
from blindmatch.service.settings import Limits, Settings
from blindmatch.service.storage import Database, now

__all__ = [
    "COMPACT_SIGNALS",
    "DELTA_SIGNALS",
    "DeltaResult",
    "GROUPED_SIGNALS",
    "INDEX_SIGNALS",
    "MANIFEST_FORMAT",
    "Manifest",
    "Plan",
    "PublishedFile",
    "banding_for",
    "current_digests",
    "manifest",
    "plan",
    "publish",
    "publish_delta",
    "published_delta",
    "published_file",
]

INDEX_SIGNALS = ("md5", "pdq", "sha256", "vpdq")
"""Signal types with a published index, sorted."""
GROUPED_SIGNALS = frozenset({"vpdq"})
"""Signals published as a grouped index (one group per reported video): never deltas."""
DELTA_SIGNALS = tuple(s for s in INDEX_SIGNALS if s not in GROUPED_SIGNALS)
"""Signals whose new references are published in deltas."""
COMPACT_SIGNALS = frozenset({"md5", "sha256"})
"""Exact signals published as compact exact indexes (format version 3) unless the
deployment's ``exact_index`` setting is ``"bands"``."""
MANIFEST_FORMAT = 3
"""Format 2 added ``current_digest`` and the ``deltas`` list (format 1: always empty);
format 3 added ``format_version`` to every index and delta entry (1 banded, 2 grouped,
3 compact exact)."""
_COMPACT_SUFFIX = ".v3.idx"
"""A compact file's name ends so (``md5.v3.idx``, ``md5-2.v3.idx``): the name, which the
database keeps, says the file's format."""


def banding_for(signal: str) -> Banding:
    """The public banding of an index signal, as its signal type in the registry says."""
    if signal not in INDEX_SIGNALS:
        raise NotFound("no index for that signal", code="unknown_signal")
    return signal_banding(default_registry().get(signal))


def is_compact(settings: Settings, signal: str) -> bool:
    """Whether ``signal`` is published as a compact exact index in this deployment."""
    return signal in COMPACT_SIGNALS and settings.exact_index == "compact"


def format_version(signal: str, name: str) -> int:
    """The index format version of a published file, from its signal and file name."""
    if name.endswith(_COMPACT_SUFFIX):
        return COMPACT_VERSION
    return 2 if signal in GROUPED_SIGNALS else 1


def _suffix(settings: Settings, signal: str) -> str:
    return _COMPACT_SUFFIX if is_compact(settings, signal) else ".idx"


def _build_compact(
    secret: SecretKey,
    signal: str,
    references: Sequence[Reference],
    report_pk: dict[str, int],
    base: CompactIndex | None,
    *,
    processes: int | None,
    evaluator: ChunkEvaluator | None,
) -> tuple[BuiltCompactIndex, dict[bytes, list[int]]]:
    """A compact full index (``base`` None) or delta, and handle -> every report pk; its
    OPRF work on ``evaluator`` or ``processes`` local processes, as a banded build's.

    A hash reported several times is one key of the filter and one handle: the filter is
    built over one reference per distinct hash (its "report id" the hash's position), and
    the handle then stands for every report of that hash."""
    by_hash: dict[bytes, list[int]] = {}
    for reference in references:
        pks = by_hash.setdefault(reference.hash, [])
        pk = report_pk[reference.report_id]
        if pk not in pks:
            pks.append(pk)
    hashes = list(by_hash)
    distinct = [Reference(str(i), signal, h) for i, h in enumerate(hashes)]
    if base is None:
        built = build_compact_index(
            secret, banding_for(signal), distinct, processes=processes, evaluator=evaluator
        )
    else:
        built = add_compact_references(
            secret, base.header, distinct, processes=processes, evaluator=evaluator
        )
    mapping = {bytes(h): by_hash[hashes[int(i)]] for h, i in built.handles.items()}
    return built, mapping


def _latest(connection: Connection, epoch: int) -> sa.Row[tuple[object, ...]] | None:
    return connection.execute(
        sa.select(publications)
        .where(publications.c.epoch == epoch)
        .order_by(publications.c.version.desc())
        .limit(1)
    ).first()


def _active_count(connection: Connection, up_to: int | None = None) -> int:
    query = sa.select(sa.func.count()).where(reports.c.status == "active")
    if up_to is not None:
        query = query.where(reports.c.id <= up_to)
    return int(connection.execute(query).scalar_one())


def _max_report(connection: Connection) -> int:
    return int(
        connection.execute(sa.select(sa.func.coalesce(sa.func.max(reports.c.id), 0))).scalar_one()
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """What the publisher should do now, and why (``reason`` goes to its log)."""

    action: Literal["none", "delta", "full"]
    reason: str


def _deltas_over_bound(connection: Connection, publication: int, limits: Limits) -> str | None:
    """Why one signal's deltas of ``publication`` passed their bound, or ``None``."""
    rows = connection.execute(
        sa.select(
            publication_deltas.c.signal,
            sa.func.count(),
            sa.func.sum(publication_deltas.c.references),
            sa.func.sum(publication_deltas.c.size),
        )
        .where(publication_deltas.c.publication == publication)
        .group_by(publication_deltas.c.signal)
        .order_by(publication_deltas.c.signal)
    ).all()
    base = {
        str(signal): int(size)
        for signal, size in connection.execute(
            sa.select(publication_files.c.signal, publication_files.c.size).where(
                publication_files.c.publication == publication
            )
        )
    }
    for signal, count, references, size in rows:
        if int(count) >= limits.rebuild_max_deltas:
            return f"{signal} has {int(count)} deltas"
        full = base.get(str(signal), 0)
        if (
            int(size or 0) > limits.rebuild_delta_fraction * full
            and int(references or 0) > limits.rebuild_delta_floor
        ):
            return f"{signal} deltas hold {int(size or 0)} bytes against {full} in its full index"
    return None


def _withdrawn_held(connection: Connection, publication: int) -> int:
    """Reports no longer active whose handles ``publication`` (full files or deltas)
    still holds: what the manifest revokes until the next full version."""
    held = sa.or_(
        sa.select(handles.c.report)
        .where(handles.c.publication == publication, handles.c.report == reports.c.id)
        .exists(),
        sa.select(shared_handles.c.report)
        .where(
            shared_handles.c.publication == publication,
            shared_handles.c.report == reports.c.id,
        )
        .exists(),
    )
    return int(
        connection.execute(
            sa.select(sa.func.count()).where(reports.c.status != "active", held)
        ).scalar_one()
    )


def plan(connection: Connection, epoch: int, limits: Limits, at: int | None = None) -> Plan:
    """What to publish for ``epoch`` now (module docstring: the rules, in order)."""
    latest = _latest(connection, epoch)
    if latest is None:
        return Plan("full", "first publication of the epoch")
    covered = int(latest.covered_report)
    held = int(latest.covered_active)
    withdrawn = _withdrawn_held(connection, int(latest.id))
    if withdrawn and withdrawn > limits.rebuild_revoked_fraction * held:
        return Plan("full", f"{withdrawn} of the version's {held} reports withdrawn or suspended")
    covered_now = _active_count(connection, covered)
    new = _active_count(connection) - covered_now
    changed = covered_now != held or withdrawn > 0
    videos = connection.execute(
        sa.select(fingerprints.c.id)
        .join(reports, reports.c.id == fingerprints.c.report)
        .where(
            reports.c.status == "active",
            reports.c.id > latest.max_report,
            fingerprints.c.signal == "vpdq",
        )
        .limit(1)
    ).first()
    old_enough = (now() if at is None else at) - int(latest.created_at) >= limits.rebuild_seconds
    if (changed or videos is not None) and old_enough:
        return Plan(
            "full", "withdrawn, suspended or reinstated reports" if changed else "new videos"
        )
    if new > 0:
        over = _deltas_over_bound(connection, int(latest.id), limits)
        if over is not None:
            return Plan("full", f"the deltas passed their bound ({over})")
        return Plan("delta", "new reports")
    return Plan("none", "nothing new")


@dataclass
class _Collected:
    """The references of a set of reports, per index signal."""

    per_signal: dict[str, list[Reference]] = field(default_factory=dict)
    report_pk: dict[str, int] = field(default_factory=dict)
    reports: int = 0


def _collect(rows: Sequence[Any], signals: Sequence[str]) -> _Collected:
    """References per signal from ``(pk, report_id, signal, hash, quality)`` rows, in
    report then fingerprint order (module docstring: where vPDQ frames go)."""
    out = _Collected({s: [] for s in signals})
    seen: set[tuple[str, str, bytes]] = set()
    frames: dict[str, list[VideoFrame]] = {}
    for pk, report_id, signal, value, quality in rows:
        out.report_pk[report_id] = pk
        raw = bytes(value)
        if signal == "vpdq":
            frames.setdefault(report_id, []).append(
                VideoFrame(len(frames.get(report_id, ())), 0.0, PdqHash(raw), quality or 100)
            )
        target = "pdq" if signal == "vpdq" else signal
        if target in out.per_signal and (report_id, target, raw) not in seen:
            seen.add((report_id, target, raw))
            out.per_signal[target].append(Reference(report_id, target, raw))
    if "vpdq" in out.per_signal:
        for report_id, video in frames.items():
            fingerprint = VideoFingerprint(tuple(video), fps=1.0, seconds_per_hash=1.0)
            out.per_signal["vpdq"].extend(video_references(report_id, fingerprint))
    out.reports = len(out.report_pk)
    return out


def _rows(connection: Connection, above: int, up_to: int) -> list[Any]:
    return list(
        connection.execute(
            sa.select(
                reports.c.id,
                reports.c.report_id,
                fingerprints.c.signal,
                fingerprints.c.hash,
                fingerprints.c.quality,
            )
            .join(fingerprints, fingerprints.c.report == reports.c.id)
            .where(reports.c.status == "active", reports.c.id > above, reports.c.id <= up_to)
            .order_by(reports.c.id, fingerprints.c.id)
        ).all()
    )


def _file_entry(
    signal: str, name: str, built: BuiltIndex | BuiltCompactIndex, references: int
) -> dict[str, Any]:
    header = built.header
    entries = header.key_count if isinstance(built, BuiltCompactIndex) else header.entry_count  # type: ignore[union-attr]
    return {
        "signal": signal,
        "name": name,
        "sha256": sha256_bytes(built.data),
        "index_digest": built.digest,
        "size": len(built.data),
        "entries": entries,
        "references": references,
    }


def _written_entry(
    signal: str, name: str, written: WrittenIndex, references: int
) -> dict[str, Any]:
    """:func:`_file_entry` of an index built into a file (its SHA-256 read in blocks)."""
    with written.path.open("rb") as file:
        sha256 = hashlib.file_digest(file, "sha256").digest()
    return {
        "signal": signal,
        "name": name,
        "sha256": sha256,
        "index_digest": written.digest,
        "size": written.size,
        "entries": written.header.entry_count,
        "references": references,
    }


def _write_temporary(directory: Path, data: bytes) -> Path:
    path = directory / f".build-{secrets.token_hex(8)}.tmp"
    path.write_bytes(data)
    path.chmod(0o644)
    return path


def publish(
    settings: Settings,
    database: Database,
    keys: KeyStore,
    *,
    processes: int | None = None,
    evaluator: ChunkEvaluator | None = None,
) -> int | None:
    """Build and record a new full version of the current epoch (on ``evaluator``, e.g. a
    Ray cluster, when given; else ``processes`` local processes).

    Returns:
        Its version number, or ``None`` when another publisher recorded a version of this
        epoch while this one was building (this build is then discarded).
    """
    with database.begin() as connection:
        epoch = keys.current(connection).epoch
        seen = _latest(connection, epoch)
        max_report = _max_report(connection)
        active = _active_count(connection, max_report)
        rows = _rows(connection, 0, max_report)
    secret = keys.secret(epoch)
    collected = _collect(rows, INDEX_SIGNALS)
    epoch_dir = settings.publications_dir / str(epoch)
    epoch_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    temporary: dict[str, Path] = {}
    files: list[dict[str, Any]] = []
    handle_rows: dict[bytes, list[int]] = {}
    try:
        for signal in INDEX_SIGNALS:
            references = collected.per_signal[signal]
            name = f"{signal}{_suffix(settings, signal)}"
            if is_compact(settings, signal):
                built, mapping = _build_compact(
                    secret,
                    signal,
                    references,
                    collected.report_pk,
                    None,
                    processes=processes,
                    evaluator=evaluator,
                )
                handle_rows.update(mapping)
                temporary[name] = _write_temporary(epoch_dir, built.data)
                files.append(_file_entry(signal, name, built, len(references)))
                continue
            # A banded full index is built straight into its file (build_index_file): the
            # publisher's memory stays a run and a band, not a multiple of the file.
            path = epoch_dir / f".build-{secrets.token_hex(8)}.tmp"
            temporary[name] = path
            written = build_index_file(
                path,
                secret,
                banding_for(signal),
                references,
                processes=processes,
                grouped=signal in GROUPED_SIGNALS,
                evaluator=evaluator,
            )
            path.chmod(0o644)
            for handle, report_id in written.handles.items():
                handle_rows[bytes(handle)] = [collected.report_pk[report_id]]
            files.append(_written_entry(signal, name, written, len(references)))
        try:
            with database.begin() as connection:
                latest = _latest(connection, epoch)
                if (None if latest is None else latest.id) != (None if seen is None else seen.id):
                    return None
                version = 1 if latest is None else int(latest.version) + 1
                pub_id = connection.execute(
                    sa.insert(publications)
                    .values(
                        epoch=epoch,
                        version=version,
                        created_at=now(),
                        max_report=max_report,
                        active_reports=active,
                        covered_report=max_report,
                        covered_active=active,
                    )
                    .returning(publications.c.id)
                ).scalar_one()
                connection.execute(
                    sa.insert(publication_files), [{"publication": pub_id, **f} for f in files]
                )
                _insert_handles(connection, pub_id, handle_rows)
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
                version_dir = epoch_dir / str(version)
                version_dir.mkdir(mode=0o755, exist_ok=True)
                for name, path in temporary.items():
                    path.replace(version_dir / name)
        except sa.exc.IntegrityError:
            return None  # another publisher took this version number first
    finally:
        for path in temporary.values():
            path.unlink(missing_ok=True)
    return version


def _insert_handles(connection: Connection, publication: int, rows: dict[bytes, list[int]]) -> None:
    """Record handle -> reports: the first report in ``handles`` and any further one (a
    compact handle of a hash reported twice, or reported again in a delta) in
    ``shared_handles``."""
    if not rows:
        return
    known: dict[bytes, int] = {}
    chosen = list(rows)
    for at in range(0, len(chosen), 500):
        for handle, report in connection.execute(
            sa.select(handles.c.handle, handles.c.report).where(
                handles.c.publication == publication, handles.c.handle.in_(chosen[at : at + 500])
            )
        ):
            known[bytes(handle)] = int(report)
    shared_known: set[tuple[bytes, int]] = set()
    if known:
        keys = list(known)
        for at in range(0, len(keys), 500):
            for handle, report in connection.execute(
                sa.select(shared_handles.c.handle, shared_handles.c.report).where(
                    shared_handles.c.publication == publication,
                    shared_handles.c.handle.in_(keys[at : at + 500]),
                )
            ):
                shared_known.add((bytes(handle), int(report)))
    first: list[dict[str, Any]] = []
    more: list[dict[str, Any]] = []
    for handle, reports_of in rows.items():
        main = known.get(handle)
        for report in reports_of:
            if main is None:
                main = report
                first.append({"publication": publication, "handle": handle, "report": report})
            elif report != main and (handle, report) not in shared_known:
                shared_known.add((handle, report))
                more.append({"publication": publication, "handle": handle, "report": report})
    if first:
        connection.execute(sa.insert(handles), first)
    if more:
        connection.execute(sa.insert(shared_handles), more)


@dataclass(frozen=True, slots=True)
class DeltaResult:
    """A recorded delta step: the version it extends and each signal's new sequence."""

    epoch: int
    version: int
    sequences: dict[str, int]
    reports: int


def publish_delta(
    settings: Settings,
    database: Database,
    keys: KeyStore,
    *,
    processes: int | None = None,
    evaluator: ChunkEvaluator | None = None,
) -> DeltaResult | None:
    """Publish the live reports the newest full version does not cover yet as deltas
    (built as :func:`publish` builds).

    One delta per signal that has new references, each extending the full index of that
    signal directly.

    Returns:
        What was recorded, or ``None``: nothing new, no full version yet, or another
        publisher recorded a delta or a version first (this build is then discarded).
    """
    with database.begin() as connection:
        epoch = keys.current(connection).epoch
        latest = _latest(connection, epoch)
        if latest is None:
            return None
        covered = int(latest.covered_report)
        max_report = _max_report(connection)
        rows = _rows(connection, covered, max_report)
        prior = connection.execute(
            sa.select(publication_deltas.c.signal, publication_deltas.c.name)
            .where(publication_deltas.c.publication == latest.id)
            .order_by(publication_deltas.c.signal, publication_deltas.c.sequence)
        ).all()
        base_names = {
            str(signal): str(name)
            for signal, name in connection.execute(
                sa.select(publication_files.c.signal, publication_files.c.name).where(
                    publication_files.c.publication == latest.id
                )
            )
        }
    if not rows:
        return None
    collected = _collect(rows, DELTA_SIGNALS)
    secret = keys.secret(epoch)
    version = int(latest.version)
    version_dir = settings.publications_dir / str(epoch) / str(version)
    delta_dir = version_dir / "deltas"
    delta_dir.mkdir(mode=0o755, exist_ok=True)
    earlier: dict[str, list[str]] = {}
    for signal, name in prior:
        earlier.setdefault(signal, []).append(name)
    temporary: dict[str, Path] = {}
    entries: list[dict[str, Any]] = []
    handle_rows: dict[bytes, list[int]] = {}
    try:
        for signal in DELTA_SIGNALS:
            references = collected.per_signal[signal]
            if not references:
                continue
            base_name = base_names[signal]
            sequence = len(earlier.get(signal, [])) + 1
            built: BuiltIndex | BuiltCompactIndex
            if base_name.endswith(_COMPACT_SUFFIX):
                # The delta's format follows its base's, whatever the setting says now.
                compact_base = CompactIndex.open(version_dir / base_name, verify=False)
                built, mapping = _build_compact(
                    secret,
                    signal,
                    references,
                    collected.report_pk,
                    compact_base,
                    processes=processes,
                    evaluator=evaluator,
                )
                handle_rows.update(mapping)
                compact_before = [
                    CompactIndex.open(delta_dir / n, verify=False) for n in earlier.get(signal, [])
                ]
                current = index_digest(compact_base, [*compact_before, built]).digest
                name = f"{signal}-{sequence}{_COMPACT_SUFFIX}"
            else:
                base = Index.open(version_dir / base_name, verify=False)
                built = add_references(
                    secret, base.header, references, processes=processes, evaluator=evaluator
                )
                before = [Index.open(delta_dir / n, verify=False) for n in earlier.get(signal, [])]
                current = index_digest(base, [*before, built]).digest
                for handle, report_id in built.handles.items():
                    handle_rows[bytes(handle)] = [collected.report_pk[report_id]]
                name = f"{signal}-{sequence}.idx"
            temporary[name] = _write_temporary(delta_dir, built.data)
            entry = _file_entry(signal, name, built, len(references))
            entry["sequence"] = sequence
            entry["current_digest"] = current
            entries.append(entry)
        with database.begin() as connection:
            claimed = connection.execute(
                sa.update(publications)
                .where(publications.c.id == latest.id, publications.c.covered_report == covered)
                .values(
                    covered_report=max_report,
                    covered_active=publications.c.covered_active + collected.reports,
                )
            )
            if claimed.rowcount != 1:
                return None
            at = now()
            connection.execute(
                sa.insert(publication_deltas),
                [{"publication": latest.id, "created_at": at, **e} for e in entries],
            )
            _insert_handles(connection, int(latest.id), handle_rows)
            audit.append(
                connection,
                "delta",
                {
                    "epoch": epoch,
                    "version": version,
                    "deltas": {
                        str(e["signal"]): {
                            "sequence": e["sequence"],
                            "references": e["references"],
                            "size": e["size"],
                            "sha256": e["sha256"].hex(),
                        }
                        for e in entries
                    },
                },
            )
            for name, path in temporary.items():
                path.replace(delta_dir / name)
    finally:
        for path in temporary.values():
            path.unlink(missing_ok=True)
    return DeltaResult(
        epoch, version, {str(e["signal"]): int(e["sequence"]) for e in entries}, collected.reports
    )


def sha256_bytes(data: bytes) -> bytes:
    """SHA-256 of a file's bytes (what the manifest and the ETag carry)."""
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
    delta_rows = connection.execute(
        sa.select(publication_deltas)
        .where(publication_deltas.c.publication == latest.id)
        .order_by(publication_deltas.c.signal, publication_deltas.c.sequence)
    ).all()
    current = {row.signal: bytes(row.index_digest) for row in file_rows}
    for delta in delta_rows:
        current[delta.signal] = bytes(delta.current_digest)
    # A handle is revoked when none of its reports is active (a compact handle can stand
    # for several reports of one hash: shared_handles).
    still_active = (
        sa.select(shared_handles.c.handle)
        .join(reports, reports.c.id == shared_handles.c.report)
        .where(
            shared_handles.c.publication == handles.c.publication,
            shared_handles.c.handle == handles.c.handle,
            reports.c.status == "active",
        )
        .exists()
    )
    revoked = (
        connection.execute(
            sa.select(handles.c.handle)
            .join(reports, reports.c.id == handles.c.report)
            .where(
                handles.c.publication == latest.id,
                reports.c.status != "active",
                ~still_active,
            )
            .order_by(handles.c.handle)
        )
        .scalars()
        .all()
    )
    prefix = f"/v1/index/{info.epoch}/{latest.version}"
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
                "url": f"{prefix}/{row.signal}",
                "sha256": row.sha256.hex(),
                "index_digest": row.index_digest.hex(),
                "current_digest": current[row.signal].hex(),
                "size": row.size,
                "entries": row.entries,
                "references": row.references,
                "format_version": format_version(row.signal, row.name),
                "banding": _banding_json(banding_for(row.signal)),
            }
            for row in file_rows
        },
        "deltas": [
            {
                "signal": row.signal,
                "sequence": row.sequence,
                "url": f"{prefix}/{row.signal}/deltas/{row.sequence}",
                "sha256": row.sha256.hex(),
                "index_digest": row.index_digest.hex(),
                "size": row.size,
                "entries": row.entries,
                "references": row.references,
                "format_version": format_version(row.signal, row.name),
            }
            for row in delta_rows
        ],
        "revoked_handles": [bytes(h).hex() for h in revoked],
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    signature = keys.signing_key().sign(text.encode()).signature
    return Manifest(text, signature)


def current_digests(connection: Connection, epoch: int) -> list[IndexDigest]:
    """Per signal, the digest of the epoch's newest full index with all its deltas (what
    ``ServerInfo`` carries: the manifest's ``current_digest``)."""
    latest = _latest(connection, epoch)
    if latest is None:
        return []
    current = {
        row.signal: bytes(row.index_digest)
        for row in connection.execute(
            sa.select(publication_files.c.signal, publication_files.c.index_digest).where(
                publication_files.c.publication == latest.id
            )
        )
    }
    for row in connection.execute(
        sa.select(publication_deltas.c.signal, publication_deltas.c.current_digest)
        .where(publication_deltas.c.publication == latest.id)
        .order_by(publication_deltas.c.sequence)
    ):
        current[row.signal] = bytes(row.current_digest)
    return [IndexDigest(signal, digest) for signal, digest in sorted(current.items())]


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


def published_delta(
    connection: Connection,
    settings: Settings,
    epoch: int,
    version: int,
    signal: str,
    sequence: int,
) -> PublishedFile:
    """The file of one delta of one signal in one publication.

    Raises:
        NotFound: no such publication, signal or delta (``unknown_index``).
    """
    row = connection.execute(
        sa.select(publication_deltas.c.name, publication_deltas.c.sha256, publication_deltas.c.size)
        .join(publications, publications.c.id == publication_deltas.c.publication)
        .where(
            publications.c.epoch == epoch,
            publications.c.version == version,
            publication_deltas.c.signal == signal,
            publication_deltas.c.sequence == sequence,
        )
    ).first()
    if row is None:
        raise NotFound("no such index file", code="unknown_index")
    path = settings.publications_dir / str(epoch) / str(version) / "deltas" / row.name
    if not path.is_file():
        raise NotFound("no such index file", code="unknown_index")
    return PublishedFile(path, bytes(row.sha256), int(row.size))
