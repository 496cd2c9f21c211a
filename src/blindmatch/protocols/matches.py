"""What a lookup finds, shared by the session and retro-matching: :class:`Match` and the
bound on a lookup's work.

A module of its own so that :mod:`~blindmatch.protocols.platform` (which retains records)
and :mod:`~blindmatch.protocols.retro` (which matches them later) both build on it without
importing each other in a circle. Both names stay re-exported by
:mod:`blindmatch.protocols.platform`.
"""

from __future__ import annotations

from dataclasses import dataclass

from blindmatch.psi.kdf import ReportHandle

__all__ = ["DEFAULT_MAX_LOOKUP_TRIALS", "Match"]

DEFAULT_MAX_LOOKUP_TRIALS = 1 << 19
"""Candidate trials (:func:`~blindmatch.psi.index.lookup_trials`) one reply's lookup of one
signal may make (per index file of an index set): at the bound, about 0.7 s and 135 MB of
lookup work (measured on a 2-core machine, 1024 hits of one PDQ upload, L = 256). An honest
reply needs far fewer: one PDQ upload (L = 384) that agrees with a reference on every band
makes 73,536 trials, with two such references 294,528."""


@dataclass(frozen=True, slots=True)
class Match:
    """An upload matched a reported hash: the platform learns the report's opaque handle.

    ``variant`` is ``None`` for an upload queried without variants; otherwise the name of
    the variant that matched (``"original"``, or e.g. ``"flipX"`` for a mirrored copy; the
    first in the upload's order when several matched the same report).
    """

    upload_ref: str
    signal: str
    handle: ReportHandle
    variant: str | None = None
