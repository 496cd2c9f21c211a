"""How a platform client batches, pipelines, audits and retries."""

from __future__ import annotations

from dataclasses import dataclass

from blindmatch.errors import InvalidArgument
from blindmatch.protocols.messages import MAX_ELEMENTS

__all__ = ["ClientOptions"]


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Tuning of :class:`~blindmatch.client.PlatformClient` (defaults suit most platforms).

    Attributes:
        batch_size: elements per evaluation request at most; the clearinghouse's
            ``max_batch`` (from ``ServerInfo``) lowers it, so the default sends requests of
            the server's batch size.
        pipeline: evaluation requests in flight at once (each on its own connection).
        audit_batches: answered batches a session asks one DLEQ proof for before it closes
            (0: no audit). The clearinghouse evaluates audited batches again, so this is a
            sample; any failed proof is :class:`~blindmatch.errors.VerifyError`.
        canary_interval: one canary query per this many uploads of a signal.
        max_retries: transient failures in a row (no answer, 5xx, a session lost) before
            :class:`~blindmatch.errors.ServiceUnavailable`; any answered upload resets it.
        backoff: the first wait between retries, in seconds; doubled each time, with
            random jitter, up to ``max_backoff``.
        max_backoff: the longest wait between retries.
        max_retry_after: the longest ``Retry-After`` honoured by waiting; a longer one (a
            spent daily quota) raises :class:`~blindmatch.errors.QuotaExhausted` at once.
        timeout: seconds for one HTTP request (connect, read, write each).
        retro: keep what ``match`` learned of each upload in the retro store, so that
            ``retro_matches()`` finds past uploads matching reports published later in the
            key epoch, locally (docs/client.md "Retro-matching"). Off by default: the store
            is sensitive (docs/protocol.md 7.5).
        retro_max_records: the retro store's bound, in records (one per query: a PDQ
            upload with dihedral variants takes 8, about 50 KB; an MD5 upload one, under
            100 bytes); the oldest uploads are forgotten first beyond it.
        lock_timeout: seconds to wait for the cache directory's lock held by another
            client before :class:`~blindmatch.errors.CacheLocked`.

    Raises:
        errors.InvalidArgument: a value out of range.
    """

    batch_size: int = MAX_ELEMENTS
    pipeline: int = 2
    audit_batches: int = 1
    canary_interval: int = 64
    max_retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0
    timeout: float = 60.0
    retro: bool = False
    retro_max_records: int = 200_000
    lock_timeout: float = 600.0

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_ELEMENTS:
            raise InvalidArgument(f"batch_size must be in [1, {MAX_ELEMENTS}]")
        if not 1 <= self.pipeline <= 64:
            raise InvalidArgument("pipeline must be in [1, 64]")
        if self.audit_batches < 0 or self.max_retries < 0 or self.canary_interval < 1:
            raise InvalidArgument("audit_batches, max_retries >= 0; canary_interval >= 1")
        if not 0 <= self.backoff <= self.max_backoff or self.max_retry_after < 0:
            raise InvalidArgument("0 <= backoff <= max_backoff, max_retry_after >= 0")
        if self.timeout <= 0:
            raise InvalidArgument("timeout must be positive")
        if self.retro_max_records < 1 or self.lock_timeout < 0:
            raise InvalidArgument("retro_max_records >= 1, lock_timeout >= 0")
