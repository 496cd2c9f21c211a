"""What a ``match`` call gives back (matches, unfinished uploads, counts), and what a
``retro_matches`` call does."""

from __future__ import annotations

from dataclasses import dataclass, field

from blindmatch.protocols import Match, Upload
from blindmatch.psi.kdf import ReportHandle

__all__ = ["ClientMatch", "ClientStats", "MatchReport", "RetroReport"]


@dataclass(frozen=True, slots=True)
class ClientMatch:
    """An upload matched a report that is not revoked.

    Attributes:
        upload: the upload as the caller gave it.
        handle: the report's opaque handle (what ``feedback`` takes).
        variant: the dihedral variant that matched, or ``None`` for a plain upload.
        agreeing_bands: for a fuzzy signal (PDQ), the bands whose tags the upload hit: the
            bands it agrees on with the reference, plus rare chance collisions (summed over
            variants); 1 for an exact signal.
    """

    upload: Upload
    handle: ReportHandle
    variant: str | None = None
    agreeing_bands: int = 0

    @property
    def signal(self) -> str:
        """The signal type that matched."""
        return self.upload.signal


@dataclass(slots=True)
class ClientStats:
    """Counts over one ``match`` call (all its sessions)."""

    sessions: int = 0
    requests: int = 0
    elements_sent: int = 0
    pad_elements: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    canaries_matched: int = 0
    audits_verified: int = 0
    elements_audited: int = 0
    retries: int = 0
    """Transient failures retried (each started a new session or repeated a request)."""
    manifest_refreshes: int = 0
    downloads: int = 0
    """Index and delta files downloaded (not found valid in the cache)."""
    bytes_downloaded: int = 0
    revoked_dropped: int = 0
    """Matches dropped because the manifest revokes their handle (a withdrawn report)."""
    retro_records: int = 0
    """Records kept in the retro store (one per query of an answered upload)."""
    retro_not_kept: int = 0
    """Records not kept: one session's records of a signal exceeded ``retro_max_records``."""


@dataclass(frozen=True, slots=True)
class MatchReport:
    """The outcome of ``match``: every upload is in exactly one of three places: it has
    matches in ``matches``, it was answered with no (unrevoked) match, or it is in
    ``unfinished`` (no answer: ask again later)."""

    matches: tuple[ClientMatch, ...]
    unfinished: tuple[Upload, ...]
    answered: int
    """Uploads answered (matched or not)."""
    epoch: int
    """The key epoch of the last session."""
    version: int
    """The publication version of the indexes last used."""
    stats: ClientStats = field(default_factory=ClientStats)


@dataclass(frozen=True, slots=True)
class RetroReport:
    """The outcome of ``retro_matches``: past uploads that match reports published since
    they were matched, found locally (no evaluation request was sent)."""

    matches: tuple[Match, ...]
    """One per (past upload, report), never one reported before (by ``match`` or an earlier
    ``retro_matches``), never a revoked handle; ``upload_ref`` is the ref the upload had."""
    checked: int
    """Index files looked up: new deltas, and full indexes rebuilt within the epoch."""
    records: int
    """Records the retro store holds afterwards."""
    forgotten: int
    """Records deleted: of an older key epoch, or of a signal no longer published."""
    epoch: int
    version: int
    """The key epoch and publication version of the manifest used."""
    stats: ClientStats = field(default_factory=ClientStats)
