"""The background publisher: deltas for new reports, full versions when needed.

``blindmatch serve`` starts it as its own process (``python -m
blindmatch.service.publisher``) so that index builds, which use every core through the
process-pool builder, never run inside a worker serving requests. It polls the database
every ``publish_interval`` seconds and does what :func:`~.publication.plan` says (a delta
of the new reports, or a full version: the rules are in :mod:`.publication`), prunes
expired rate-limit windows and matching sessions, writes the closed days' element counts
of every platform into the audit log (:func:`.quotas.audit_closed_days`: within one
interval of midnight UTC), and exits when its parent is gone.
With ``ray_address`` set (``blindmatch serve --ray-address``) its builds run on a Ray
cluster (:class:`blindmatch.psi.ray_build.RayBuild`, byte-identical to a local build).
Several publishers (several instances on one database) take turns: each poll runs under
the deployment-wide ``publisher`` lock (:meth:`.storage.Database.exclusive`, a PostgreSQL
advisory lock), and a publisher that finds it taken skips that poll, so no two instances
build the same version. Should two builds still overlap (a lock lost with its
connection), what a build extends is claimed in the database and the loser discards its
build.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

import sqlalchemy as sa

from blindmatch.errors import BlindmatchError
from blindmatch.psi.index import ChunkEvaluator
from blindmatch.psi.ray_build import LOCAL, RayBuild
from blindmatch.service import quotas
from blindmatch.service.epochs import KeyStore
from blindmatch.service.publication import plan, publish, publish_delta
from blindmatch.service.schema import match_batches, match_sessions, rate_limits
from blindmatch.service.settings import Settings
from blindmatch.service.storage import Database, now

__all__ = ["evaluator_for", "main", "publish_if_needed", "run"]

log = logging.getLogger("blindmatch.service.publisher")


def publish_if_needed(
    settings: Settings,
    database: Database,
    keys: KeyStore,
    *,
    processes: int | None = None,
    evaluator: ChunkEvaluator | None = None,
) -> str | None:
    """Publish what :func:`~.publication.plan` asks for; return a line for the log, or
    ``None`` when there was nothing to do (or another publisher did it first). Builds run
    on ``evaluator`` (a Ray cluster) when given, else on ``processes`` local processes."""
    with database.begin() as connection:
        epoch = keys.current(connection).epoch
        wanted = plan(connection, epoch, settings.limits)
    if wanted.action == "full":
        version = publish(settings, database, keys, processes=processes, evaluator=evaluator)
        if version is not None:
            return f"published epoch {epoch} version {version} ({wanted.reason})"
    elif wanted.action == "delta":
        delta = publish_delta(settings, database, keys, processes=processes, evaluator=evaluator)
        if delta is not None:
            sequences = ", ".join(f"{s} {n}" for s, n in sorted(delta.sequences.items()))
            return (
                f"published deltas of epoch {delta.epoch} version {delta.version}: "
                f"{sequences} ({delta.reports} reports)"
            )
    return None


def _prune(settings: Settings, database: Database) -> None:
    at = now()
    with database.begin() as connection:
        quotas.audit_closed_days(connection)
    with database.begin() as connection:
        connection.execute(sa.delete(rate_limits).where(rate_limits.c.window < at // 3600 - 1))
        expired = sa.select(match_sessions.c.id).where(
            match_sessions.c.created_at < at - settings.limits.session_seconds
        )
        connection.execute(sa.delete(match_batches).where(match_batches.c.session.in_(expired)))


def evaluator_for(settings: Settings) -> RayBuild | None:
    """The builds' evaluator the settings ask for: a :class:`RayBuild` on
    ``settings.ray_address`` (connected at the first build) with
    ``settings.ray_task_timeout``, or ``None`` for this machine's process pool."""
    if not settings.ray_address:
        return None
    timeout = settings.ray_task_timeout
    return RayBuild(settings.ray_address, task_timeout=timeout if timeout > 0 else None)


def run(settings: Settings, parent: int | None = None) -> None:
    """Poll and publish until the parent process is gone."""
    database = Database(settings)
    keys = KeyStore(settings, database)
    evaluator = evaluator_for(settings)
    if evaluator is not None:
        log.info(
            "index builds run on Ray (%s)", "local" if evaluator.address == LOCAL else "a cluster"
        )
    try:
        while parent is None or os.getppid() == parent:
            try:
                with database.exclusive("publisher", wait=False) as held:
                    if held:
                        done = publish_if_needed(settings, database, keys, evaluator=evaluator)
                        if done is not None:
                            log.info("%s", done)
                        _prune(settings, database)
            except (BlindmatchError, sa.exc.SQLAlchemyError, OSError) as exc:
                # OSError: a full index file missing or unreadable (a publications
                # directory not shared between hosts, a full disk); the next poll tries
                # again. BlindmatchError includes a Ray build that failed (WorkerError) or
                # a missing ray extra (BackendUnavailable).
                log.error("publication failed: %s", type(exc).__name__)
            deadline = time.monotonic() + settings.limits.publish_interval
            while time.monotonic() < deadline:
                if parent is not None and os.getppid() != parent:
                    return
                time.sleep(0.5)
    finally:
        if evaluator is not None:
            evaluator.close()  # stops a local Ray instance this process started


def _stop(signum: int, frame: object) -> None:
    # ``blindmatch serve`` ends its publisher with SIGTERM: exit through ``finally`` so a
    # local Ray instance is shut down with it.
    raise SystemExit(0)


def main() -> None:
    """Entry point of ``python -m blindmatch.service.publisher``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s publisher %(message)s")
    signal.signal(signal.SIGTERM, _stop)
    run(Settings.from_env(), os.getppid())


if __name__ == "__main__":
    main()
    sys.exit(0)
