"""Where the service keeps its state and the limits it enforces.

Theory of operation
-------------------
Everything that matters lives in the database or in the data directory, never in a
worker's memory: several uvicorn workers (or several hosts behind one PostgreSQL) behave
exactly like one. A :class:`Settings` value is therefore all a worker needs to start, and
it travels to workers through environment variables (:meth:`Settings.to_env`,
:meth:`Settings.from_env`), because uvicorn starts its workers from an import string.

Every field of :class:`Limits` can be set as ``BLINDMATCH_LIMIT_<NAME>`` (e.g.
``BLINDMATCH_LIMIT_INTAKE_PER_HOUR=100``) in the environment of ``blindmatch serve``.

Data directory layout (docs/deployment.md)::

    DIR/                      0700
      blindmatch.sqlite3      the database (when no --database-url is given), WAL mode
      keys/                   0700
        epoch-<n>.key         the VOPRF secret key of epoch n (0600)
        publication.key       the Ed25519 seed that signs manifests (0600)
      publications/<epoch>/<version>/<signal>[.v3].idx   published full index files (0644)
      publications/<epoch>/<version>/deltas/<signal>-<sequence>[.v3].idx   their deltas (0644)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Final

from blindmatch.service.errors import ConfigurationError

__all__ = [
    "ENV_DATABASE_URL",
    "ENV_DATA_DIR",
    "ENV_EXACT_INDEX",
    "ENV_PAGE_DIR",
    "ENV_PAGE_POLICY",
    "ENV_RAY_ADDRESS",
    "ENV_RAY_TASK_TIMEOUT",
    "EXACT_INDEX_KINDS",
    "Limits",
    "Settings",
]

ENV_DATA_DIR: Final = "BLINDMATCH_DATA_DIR"
ENV_DATABASE_URL: Final = "BLINDMATCH_DATABASE_URL"
ENV_PAGE_DIR: Final = "BLINDMATCH_PAGE_DIR"
ENV_PAGE_POLICY: Final = "BLINDMATCH_PAGE_POLICY"
ENV_RAY_ADDRESS: Final = "BLINDMATCH_RAY_ADDRESS"
ENV_RAY_TASK_TIMEOUT: Final = "BLINDMATCH_RAY_TASK_TIMEOUT"
DEFAULT_RAY_TASK_TIMEOUT: Final = 600.0
ENV_EXACT_INDEX: Final = "BLINDMATCH_EXACT_INDEX"
EXACT_INDEX_KINDS: Final = ("compact", "bands")
_SQLITE_NAME: Final = "blindmatch.sqlite3"
_LIMIT_PREFIX: Final = "BLINDMATCH_LIMIT_"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client or one platform may do (every limit is enforced in the database)."""

    max_json_body: int = 256 * 1024
    """Bytes of a JSON request body (an intake with a long video's frames fits)."""
    max_binary_body: int = 2 * 1024 * 1024 + 64
    """Bytes of a wire-message body (one full batch of 65536 elements)."""
    max_fingerprints: int = 64
    """Fingerprints of one intake (vPDQ frames count one each)."""
    max_frames: int = 1024
    """Frames of one vPDQ fingerprint."""
    intake_per_hour: int = 30
    """Intakes per client (keyed hash of its address) per hour."""
    max_batch: int = 4096
    """Elements of one evaluation request (the platform SDK batches to it)."""
    default_daily_elements: int = 10_000_000
    """Daily element quota of a platform created without ``--daily-elements``."""
    grace_seconds: int = 7 * 24 * 3600
    """How long a rotated-out key epoch keeps answering."""
    publish_interval: float = 20.0
    """Seconds between the publisher's checks for new reports: a new report is in a
    published delta within one interval plus one delta build (the issue's bound is 60 s)."""
    rebuild_seconds: float = 600.0
    """Most seconds a change deltas cannot carry waits for the next full version: a
    withdrawal, suspension or reinstatement (a report leaving or re-entering the full
    index), a new reported video entering the grouped ``vpdq`` index. Withdrawals are
    revoked in the manifest at once regardless (a platform drops a revoked handle's
    matches), and new frames reach the ``pdq`` deltas at once, so this rebuild only
    reclaims space and completes video matching. At scale something has always changed,
    so this is the largest age of a full version (docs/scaling.md: a week at 10^7)."""
    rebuild_delta_fraction: float = 0.125
    """A full version replaces the next delta once one signal's deltas hold more than this
    fraction of its full index's bytes (and more than ``rebuild_delta_floor``
    references): a platform's delta downloads and per-delta lookups stay within it."""
    rebuild_delta_floor: int = 1024
    """References one signal's deltas may hold whatever the fraction says (a small full
    index is not rebuilt for every few reports)."""
    rebuild_max_deltas: int = 64
    """Deltas of one signal after which the next publication is a full version (a
    platform looks up every delta file for every upload)."""
    rebuild_revoked_fraction: float = 0.05
    """A full version is made at once when more than this fraction of the reports the
    current version holds (full index and deltas) have been withdrawn or suspended since:
    every manifest lists their revoked handles, about 35 bytes each."""
    dispute_threshold: int = 3
    """Distinct platforms disputing a report ("not the reported kind") that suspend it."""
    session_seconds: int = 3600
    """How long a matching session lives (its unproved batches are then forgotten)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The data directory, the database URL and the limits of one deployment.

    ``page_dir``: a directory of static files served at ``/`` with ``page_policy`` as
    their Content-Security-Policy (``blindmatch serve`` passes the reporting page of
    :mod:`blindmatch.web`; the service itself knows nothing of it), or ``None``.

    ``ray_address``: where the publisher builds indexes (``"local"``, ``"auto"``,
    ``HOST:PORT`` or ``ray://HOST:PORT``; :class:`blindmatch.psi.ray_build.RayBuild`, the
    ``ray`` extra), or ``""`` for this machine's process pool (the default).

    ``ray_task_timeout``: seconds after which a Ray task of a build that has not answered
    is cancelled and resubmitted (``RayBuild(task_timeout=...)``; three submissions, then
    the publication fails and the next poll tries again); ``0`` waits for ever.

    ``exact_index``: how the exact signals (``md5``, ``sha256``) are published:
    ``"compact"`` (the default: compact exact indexes, format version 3, about 5 bytes a
    reference) or ``"bands"`` (banded indexes, format version 1, about 28 bytes a
    reference). Platforms retro-match either (docs/protocol.md 7.5).
    """

    data_dir: Path
    database_url: str = ""
    limits: Limits = field(default_factory=Limits)
    page_dir: Path | None = None
    page_policy: str = "default-src 'none'; frame-ancestors 'none'"
    ray_address: str = ""
    exact_index: str = "compact"
    ray_task_timeout: float = DEFAULT_RAY_TASK_TIMEOUT

    def __post_init__(self) -> None:
        if self.exact_index not in EXACT_INDEX_KINDS:
            raise ConfigurationError("exact_index must be 'compact' or 'bands'")
        timeout = self.ray_task_timeout
        if type(timeout) not in (int, float) or not 0 <= timeout < math.inf:
            raise ConfigurationError("ray_task_timeout must be a number of seconds >= 0")
        object.__setattr__(self, "data_dir", Path(self.data_dir).resolve())
        if not self.database_url:
            sqlite = self.data_dir / _SQLITE_NAME
            object.__setattr__(self, "database_url", f"sqlite:///{sqlite}")

    @property
    def keys_dir(self) -> Path:
        """Secret key files (0700, files 0600)."""
        return self.data_dir / "keys"

    @property
    def publications_dir(self) -> Path:
        """Published index files."""
        return self.data_dir / "publications"

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is SQLite (the default, inside the data directory)."""
        return self.database_url.startswith("sqlite")

    def prepare(self) -> None:
        """Create the data directory tree with owner-only permissions.

        Raises:
            ConfigurationError: the directory cannot be created or is not a directory.
        """
        try:
            for path in (self.data_dir, self.keys_dir, self.publications_dir):
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.data_dir.chmod(0o700)
            self.keys_dir.chmod(0o700)
        except OSError as exc:
            raise ConfigurationError(f"cannot create the data directory ({exc.strerror})") from None

    def to_env(self) -> dict[str, str]:
        """The environment variables :meth:`from_env` reads (for uvicorn workers)."""
        env = {ENV_DATA_DIR: str(self.data_dir), ENV_DATABASE_URL: self.database_url}
        if self.page_dir is not None:
            env[ENV_PAGE_DIR] = str(self.page_dir)
            env[ENV_PAGE_POLICY] = self.page_policy
        if self.ray_address:
            env[ENV_RAY_ADDRESS] = self.ray_address
        env[ENV_RAY_TASK_TIMEOUT] = repr(float(self.ray_task_timeout))
        env[ENV_EXACT_INDEX] = self.exact_index
        for item in fields(Limits):
            env[_LIMIT_PREFIX + item.name.upper()] = str(getattr(self.limits, item.name))
        return env

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """The settings a ``blindmatch serve`` parent put in the environment.

        Raises:
            ConfigurationError: no data directory in the environment.
        """
        env = dict(os.environ) if environ is None else environ
        data_dir = env.get(ENV_DATA_DIR)
        if not data_dir:
            raise ConfigurationError(f"{ENV_DATA_DIR} is not set")
        changes: dict[str, object] = {}
        for item in fields(Limits):
            text = env.get(_LIMIT_PREFIX + item.name.upper())
            if text is None:
                continue
            try:
                changes[item.name] = float(text) if item.type == "float" else int(text)
            except ValueError:
                raise ConfigurationError(
                    f"{_LIMIT_PREFIX}{item.name.upper()} is not a number"
                ) from None
        limits = replace(Limits(), **changes)  # type: ignore[arg-type]
        timeout_text = env.get(ENV_RAY_TASK_TIMEOUT, "").strip()
        try:
            timeout = float(timeout_text) if timeout_text else DEFAULT_RAY_TASK_TIMEOUT
        except ValueError:
            raise ConfigurationError(f"{ENV_RAY_TASK_TIMEOUT} is not a number") from None
        settings = cls(
            Path(data_dir),
            env.get(ENV_DATABASE_URL, ""),
            limits,
            ray_address=env.get(ENV_RAY_ADDRESS, "").strip(),
            exact_index=env.get(ENV_EXACT_INDEX, "compact").strip() or "compact",
            ray_task_timeout=timeout,
        )
        page_dir = env.get(ENV_PAGE_DIR)
        if page_dir:
            policy = env.get(ENV_PAGE_POLICY) or settings.page_policy
            settings = replace(settings, page_dir=Path(page_dir), page_policy=policy)
        return settings

    def with_limits(self, **changes: object) -> Settings:
        """A copy with some limits changed (tests, benchmarks)."""
        return replace(self, limits=replace(self.limits, **changes))  # type: ignore[arg-type]
