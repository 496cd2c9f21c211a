"""A platform session wired to a clearinghouse session in memory (h11's ``ConnectionPair``).

Both sessions are sans-IO; this is the smallest adapter between them: every request's bytes
go to :meth:`ClearinghouseSession.receive`, every reply's bytes back to
:meth:`PlatformSession.receive`, and each message is recorded. It is how
:func:`blindmatch.simulate.simulate`, the tests and the README run the protocol without a
socket; a deployment puts HTTP (or any transport) where :meth:`SessionPair.exchange` is.
"""

from __future__ import annotations

from typing import NamedTuple

from blindmatch.protocols.clearinghouse import ClearinghouseSession
from blindmatch.protocols.platform import Match, PlatformSession, PlatformState

__all__ = ["SessionPair", "TranscriptEntry"]


class TranscriptEntry(NamedTuple):
    """One message on the wire: ``"platform"`` sent it to the clearinghouse, or back."""

    sender: str
    data: bytes


class SessionPair:
    """A :class:`PlatformSession` and a :class:`ClearinghouseSession` exchanging bytes.

    Args:
        platform: the client session (its uploads may be added before or after wiring).
        clearinghouse: the server session it talks to.

    Raises:
        TypeError: the arguments are not the two sessions.
    """

    __slots__ = ("clearinghouse", "platform", "transcript")

    def __init__(self, platform: PlatformSession, clearinghouse: ClearinghouseSession) -> None:
        if not isinstance(platform, PlatformSession) or not isinstance(
            clearinghouse, ClearinghouseSession
        ):
            raise TypeError("wire a PlatformSession to a ClearinghouseSession")
        self.platform = platform
        self.clearinghouse = clearinghouse
        self.transcript: list[TranscriptEntry] = []
        """Every message, in order, as it crossed."""

    def exchange(self, request: bytes) -> list[Match]:
        """Carry one request to the clearinghouse and its reply back; the matches it completes.

        Raises:
            as :meth:`PlatformSession.receive` (the reply is recorded first).
        """
        self.transcript.append(TranscriptEntry("platform", request))
        reply = self.clearinghouse.receive(request)
        self.transcript.append(TranscriptEntry("clearinghouse", reply))
        return self.platform.receive(reply)

    def run(self) -> list[Match]:
        """Say hello if not done yet, then send every queued upload; the matches found.

        Raises:
            as :meth:`PlatformSession.receive`.
        """
        if self.platform.state is PlatformState.START:
            self.exchange(self.platform.hello())
        found: list[Match] = []
        while self.platform.wants_to_send:
            found += self.exchange(self.platform.next_request())
        return found

    def audit(self, batches: int) -> int:
        """Audit a random sample of up to ``batches`` answered batches in one proof request.

        Returns:
            The number of batches audited (0 when none is auditable or ``batches`` is 0).

        Raises:
            errors.VerifyError: the proof did not verify (the platform session failed).
        """
        count = min(batches, len(self.platform.auditable_batches))
        if count <= 0:
            return 0
        self.exchange(self.platform.audit_request(self.platform.sample_for_audit(count)))
        return count

    def close(self) -> None:
        """End both sessions (``Close`` and its acknowledgement)."""
        self.exchange(self.platform.close())
