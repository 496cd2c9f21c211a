"""The platform's side of the matching protocol: a sans-IO session (bytes in, bytes out).

Theory of operation
-------------------
A :class:`PlatformSession` turns upload fingerprints into padded batches of blinded
elements, finalizes the clearinghouse's answers, looks them up in the downloaded index and
yields :class:`Match` values. It owns no socket and reads no clock; the caller moves bytes.

States::

    START --hello()--> AWAIT_INFO --ServerInfo--> READY --close()--> CLOSING --Close--> CLOSED
                            \\                        \\
                             +------ FAILED <---------+  (ErrorMessage, key or canary
                                                          mismatch, stale index, failed
                                                          proof)

In ``READY`` the caller adds uploads (:meth:`~PlatformSession.add_uploads`), sends
:meth:`~PlatformSession.next_request` while :attr:`~PlatformSession.wants_to_send`, passes
every reply to :meth:`~PlatformSession.receive` (which returns the matches it completes),
and may audit answered batches (:meth:`~PlatformSession.audit_request`). Requests may be
pipelined: replies are matched to requests by their batch or audit id.

Timing. :meth:`~PlatformSession.receive` does the lookup work, which grows with tag hits
(a PDQ match interpolates many pairs). An adapter must not let the time it sends the next
request, an audit or ``close()`` depend on it (pipeline requests, or send on a schedule):
otherwise the clearinghouse learns roughly which batches held a match
(docs/protocol.md section 7.1).

Blinding. Each upload gets ONE random blind ``r``; its ``L`` band inputs are blinded as
``B_j = r * HashToGroup(x_j)`` and unblinded with ``r^-1`` (RFC 9497 outputs, unchanged;
the DDH argument is in docs/protocol.md). The uploads of a batch are blinded in one call and
the uploads a reply completes are finalized in one call (one batch inversion). Elements of
all uploads are packed into batches of exactly ``batch_size`` elements; when the queue runs
empty (the end of a flush) the last batch is filled with pads ``rho * G`` for fresh random
``rho`` (uniform group elements, like every blinded element) up to a multiple of
``pad_quantum``, and each batch is shuffled, so the clearinghouse learns a flush's element
count to within ``pad_quantum`` and neither the position nor the length says where an
upload starts or which signal an element serves (docs/protocol.md 8.2). Pads' answers are
discarded (but kept for audits).

Variants. An :class:`Upload` may carry more hashes of itself (:meth:`Upload.dihedral`: the
8 dihedral PDQ variants). Each variant is a query of its own (its own blind and slot); the
upload is answered when its last variant is looked up, with one :class:`Match` per report
naming the variant that matched, so a caller never sees eight matches for one upload.

Current indexes. ``ServerInfo`` lists the digest of the index the clearinghouse currently
serves for each signal type (:class:`~blindmatch.protocols.messages.IndexDigest`). Before
sending anything the session compares it with the digest of every index it holds (a base
with deltas counts as one set): a signal listed with another digest, or not listed at all
while others are, fails the session with :class:`~blindmatch.errors.StaleIndex` (download
the index again). A clearinghouse that lists no digest leaves the platform unable to check
(:attr:`~PlatformSession.index_digests_checked` stays false).

Canaries. Every index carries public canary hashes whose handles it lists. The session
mixes canaries into the uploads as ordinary queries, one per ``canary_interval`` uploads of
a signal (at least one per :meth:`add_uploads` call and signal), at random positions, each
on ``t`` random bands of its hash (2 elements for PDQ; docs/protocol.md 8.6). A
canary that does not match its handle means the index and the online key disagree: the
session fails with :class:`~blindmatch.errors.CanaryMismatch` before returning any match of
that reply.

Audits. Every answered batch ``(B, Z)`` is kept until audited. :meth:`audit_request` names
some of them; the clearinghouse answers with one batched DLEQ proof that each ``Z_j =
sk * B_j`` for the ``sk`` behind the published key, which :meth:`receive` verifies
(:class:`~blindmatch.errors.VerifyError` fails the session).

Errors. Bytes that do not decode, a reply to no pending request, or a reply of the wrong
shape raise a :class:`~blindmatch.errors.RemoteProtocolError` and change nothing: the
session stays usable (a correct reply may still arrive). A refusal
(:class:`~blindmatch.errors.RequestRejected`), a key mismatch, a stale index, a canary
mismatch, a failed proof or an index that refuses a lookup
(:class:`~blindmatch.errors.IndexTooDense`: an upload over ``max_hits``, or a reply over
``max_lookup_trials``) moves the session to ``FAILED``: the matches it returned before
stay true (a wrong key loses matches, it cannot invent them), nothing more is sent,
:meth:`unfinished` lists the uploads without an answer, including those of a reply whose
canary failed (its answers are not under the published key, so they count as none) or
whose lookup the index refused. A reply is checked whole (every element decoded
canonically, its uploads finalized and looked up, its canaries matched) before the session
records any of it, so whatever a reply holds, every upload ends either answered (matched or
not) or in :meth:`unfinished`.
Calling a method in the wrong state raises :class:`~blindmatch.errors.LocalProtocolError`.
"""

from __future__ import annotations

import enum
import secrets
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from blindmatch import errors
from blindmatch.fingerprint.pdq import DIHEDRAL_NAMES
from blindmatch.fingerprint.signals import SignalRegistry, SignalType, default_registry
from blindmatch.protocols._random import SessionRandom
from blindmatch.protocols.indexes import index_digest
from blindmatch.protocols.matches import DEFAULT_MAX_LOOKUP_TRIALS, Match
from blindmatch.protocols.messages import (
    MAX_ELEMENTS,
    Close,
    ErrorCode,
    ErrorMessage,
    EvaluateRequest,
    EvaluateResponse,
    Hello,
    IndexDigest,
    Message,
    ProofRequest,
    ProofResponse,
    ServerInfo,
    Suite,
    decode,
)
from blindmatch.protocols.retro import AnyRetroRecord, make_compact_records, make_records
from blindmatch.psi import oprf
from blindmatch.psi.compact import CompactHeader
from blindmatch.psi.group import GENERATOR, Element, Scalar
from blindmatch.psi.index import (
    CompactIndex,
    CompactIndexSet,
    Index,
    IndexHeader,
    IndexKind,
    IndexSet,
    MatchResult,
)
from blindmatch.psi.kdf import ReportHandle, derive_entries
from blindmatch.psi.keys import PublicKey
from blindmatch.psi.parallel import SERIAL, Evaluator
from blindmatch.psi.shares import RandomBytes

__all__ = [
    "DEFAULT_MAX_LOOKUP_TRIALS",
    "DEFAULT_PAD_QUANTUM",
    "Match",
    "ORIGINAL",
    "PlatformSession",
    "PlatformState",
    "PlatformStats",
    "Upload",
]

DEFAULT_PAD_QUANTUM = 128
"""Elements the last request of a flush is padded to a multiple of: the clearinghouse
learns a flush's element count to within 128 (docs/protocol.md 8.2), and a flush of 8 PDQ
uploads (3,072 elements and a canary) wastes at most 127 pads + 2 canary elements."""
_MAX_REF = 4096
_MAX_VARIANTS = 7
ORIGINAL = DIHEDRAL_NAMES[0]
"""The name of an upload's own hash among its variants (``"original"``)."""
_MODE = oprf.Mode.VOPRF


class PlatformState(enum.Enum):
    """Where a :class:`PlatformSession` is (see the module docstring)."""

    START = "start"
    AWAIT_INFO = "await_info"
    READY = "ready"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Upload:
    """One fingerprint of one upload to look up.

    Attributes:
        ref: the platform's own reference of the upload (a path, an id); never sent.
        signal: the signal type, the name of an index's banding (``"md5"``, ``"sha256"``,
            ``"pdq"``).
        hash: the hash bytes (``bytes(digest)`` of a typed digest).
        quality: the quality (0..100) of a signal with a quality floor (PDQ), ``None`` for
            exact signals.
        variants: more hashes of the same upload, each ``(name, hash bytes)``, queried with
            it (docs/protocol.md "Dihedral queries"): the other 7 dihedral PDQ variants, so
            that a mirrored or rotated copy of a reported image matches. Every variant costs
            as many elements as the hash; the upload still gives one :class:`Match` per
            report, naming the variant that matched. :meth:`dihedral` builds such an upload.

    Raises:
        TypeError: a field has the wrong type.
        errors.LocalProtocolError: a field is out of range.
    """

    ref: str
    signal: str
    hash: bytes
    quality: int | None = None
    variants: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def dihedral(
        cls, ref: str, signal: str, hashes: Sequence[bytes], quality: int | None = None
    ) -> Upload:
        """An upload queried with its 8 dihedral variants.

        Args:
            ref: the platform's reference of the upload.
            signal: the signal type (``"pdq"``).
            hashes: the 8 variant hashes in :data:`~blindmatch.fingerprint.DIHEDRAL_NAMES`
                order (``blindmatch hash --dihedral``,
                :func:`~blindmatch.fingerprint.pdq_dihedral_from_rgb`); the first is the
                hash of the image as it is.
            quality: the image's quality (the same for every variant).

        Raises:
            TypeError: a hash is not bytes.
            errors.LocalProtocolError: not exactly 8 hashes, or a bad field.
        """
        chosen = tuple(hashes)
        if len(chosen) != len(DIHEDRAL_NAMES):
            raise errors.LocalProtocolError(f"give the {len(DIHEDRAL_NAMES)} dihedral hashes")
        variants = tuple(zip(DIHEDRAL_NAMES[1:], chosen[1:], strict=True))
        return cls(ref, signal, chosen[0], quality, variants)

    @property
    def queries(self) -> tuple[tuple[str, bytes], ...]:
        """``(variant name, hash)`` of every query this upload makes, the hash first
        (named ``"original"``)."""
        return ((ORIGINAL, self.hash), *self.variants)

    def __post_init__(self) -> None:
        # A wrong type is a TypeError everywhere (blindmatch.errors), a wrong value typed.
        if not isinstance(self.ref, str) or not isinstance(self.signal, str):
            raise TypeError("an upload's ref and signal must be str")
        if not isinstance(self.hash, bytes):
            raise TypeError("an upload's hash must be bytes")
        if self.quality is not None and (
            not isinstance(self.quality, int) or isinstance(self.quality, bool)
        ):
            raise TypeError("an upload's quality must be an int or None")
        if not isinstance(self.variants, tuple) or not all(
            isinstance(v, tuple)
            and len(v) == 2
            and isinstance(v[0], str)
            and isinstance(v[1], bytes)
            for v in self.variants
        ):
            raise TypeError("an upload's variants must be a tuple of (name, bytes) pairs")
        names = [ORIGINAL, *(name for name, _ in self.variants)]
        if len(self.variants) > _MAX_VARIANTS or len(set(names)) != len(names):
            raise errors.LocalProtocolError(
                f"an upload has at most {_MAX_VARIANTS} variants, named distinctly and not "
                f"{ORIGINAL!r}"
            )
        if not all(0 < len(name) <= 32 for name in names):
            raise errors.LocalProtocolError("a variant name must be a string of 1..32")
        if not 0 < len(self.ref) <= _MAX_REF:
            raise errors.LocalProtocolError(f"upload ref must be a string of 1..{_MAX_REF}")
        if self.quality is not None and not 0 <= self.quality <= 100:
            raise errors.LocalProtocolError("quality must be an integer in [0, 100]")

    def __repr__(self) -> str:
        extra = f", variants={len(self.variants)}" if self.variants else ""
        return f"Upload(ref={self.ref!r}, signal={self.signal!r}, hash=<redacted>{extra})"


@dataclass(slots=True)
class PlatformStats:
    """What the platform saw and sent in one session (counts only)."""

    requests: int = 0
    """Evaluation requests sent."""
    bytes_sent: int = 0
    bytes_received: int = 0
    elements_sent: int = 0
    """Elements sent, pads and canaries included (what the clearinghouse counts)."""
    pad_elements: int = 0
    canary_queries: int = 0
    canaries_matched: int = 0
    uploads_done: int = 0
    """Uploads (not canaries) looked up."""
    uploads_matched: int = 0
    matches: int = 0
    tag_hits: int = 0
    """Single-band tag hits over all uploads (not canaries)."""
    tag_hits_per_upload: dict[str, int] = field(default_factory=dict)
    """Upload ref -> single-band tag hits, for uploads with at least one."""
    variant_queries: int = 0
    """Queries of uploads' variants beyond their own hash (7 per dihedral upload)."""
    audits_sent: int = 0
    audits_verified: int = 0
    elements_audited: int = 0


@dataclass(slots=True, eq=False)
class _Slot:
    """An upload (or canary) whose elements are on their way.

    ``inputs`` are the band inputs, which hold the hash (all of it, for an exact signal):
    kept out of the repr like :class:`Upload`'s hash.
    """

    upload: Upload
    inputs: list[bytes] = field(repr=False)
    blind: Scalar
    evaluated: list[Element | None]
    missing: int
    canary: ReportHandle | None
    group: _Group | None = None
    """The upload's answer so far, shared by its variants' slots (``None``: a canary)."""
    variant: int = 0
    """Which of the upload's queries (:attr:`Upload.queries`) this slot carries."""
    bands: tuple[int, ...] | None = None
    """The bands a canary queries (``inputs`` holds theirs alone); ``None``: every band."""
    outputs: list[bytes] | None = field(default=None, repr=False)
    """The finalized outputs, kept from lookup to record only when the session retains."""


@dataclass(slots=True, eq=False)
class _Group:
    """One upload's answer, gathered over the slots of its variants.

    The upload is answered (and its matches returned) when its last variant is looked up:
    so one upload gives one :class:`Match` per report however many variants hit it.
    """

    upload: Upload
    pending: int
    tag_hits: int = 0
    found: dict[ReportHandle, int] = field(default_factory=dict, repr=False)
    """Report handle -> the first variant (by position) that matched it."""
    outputs: list[tuple[int, list[bytes]]] = field(default_factory=list, repr=False)
    """(variant position, finalized outputs) of looked-up variants, when the session
    retains (``retain=True``)."""


@dataclass(frozen=True, slots=True)
class _Batch:
    """A sent batch: its elements and, per position, (slot, band) or ``None`` for a pad."""

    elements: tuple[Element, ...]
    positions: tuple[tuple[_Slot, int] | None, ...]


class _Lookup:
    """One signal's index as the session uses it: a full index, or a base with deltas."""

    __slots__ = ("canaries", "canary_handles", "compact", "header", "source")

    def __init__(self, source: Index | IndexSet | CompactIndex | CompactIndexSet) -> None:
        self.source = source
        base = source if isinstance(source, Index | CompactIndex) else source.base
        self.header: IndexHeader | CompactHeader = base.header
        self.compact = isinstance(base, CompactIndex)
        self.canaries = base.canaries
        # Canary handles stand for no report: an upload that hits one is not a match.
        self.canary_handles = frozenset(c.handle for c in self.canaries)

    def lookup_many(
        self, outputs: Sequence[Sequence[bytes]], *, max_trials: int
    ) -> list[MatchResult]:
        return self.source.lookup_many(outputs, max_trials=max_trials)


_Source = Index | IndexSet | CompactIndex | CompactIndexSet
_SOURCES = (Index, IndexSet, CompactIndex, CompactIndexSet)


def _as_upload(item: Upload | tuple[str, str, bytes]) -> Upload:
    if isinstance(item, Upload):
        return item
    if isinstance(item, tuple) and len(item) == 3:
        return Upload(item[0], item[1], item[2])
    raise TypeError("an upload is an Upload or a (ref, signal, hash) tuple")


class PlatformSession:
    """The client side of one session with the clearinghouse.

    Args:
        indexes: the downloaded index of every signal type to match, one per signal (its
            header names the signal, banding, key epoch, key id and canaries); an
            :class:`~blindmatch.psi.index.IndexSet` stands for a base index with deltas. An
            exact signal may come as a compact exact index
            (:class:`~blindmatch.psi.index.CompactIndex` or ``CompactIndexSet``, format
            version 3): looked up, audited and canaried the same way.
        public_key: the clearinghouse's published key; every index must be built under it.
        batch_size: elements per evaluation request (fewer if the clearinghouse's
            ``max_batch`` is lower); every request carries exactly this many, except the
            last one of a flush (the queue ran empty), which carries a multiple of
            ``pad_quantum``.
        pad_quantum: the last request of a flush is padded to a multiple of this many
            elements (:data:`DEFAULT_PAD_QUANTUM`); ``batch_size`` or more pads every
            request to the full batch. The clearinghouse learns each flush's element
            count rounded up to it (docs/protocol.md 8.2).
        canary_interval: one canary query per this many uploads of a signal (>= 1).
        evaluator: does the batch steps (Blind, Finalize): :data:`~blindmatch.psi.parallel.
            SERIAL` on the calling thread by default, a
            :class:`~blindmatch.psi.parallel.ThreadedEvaluator` to spread large batches over
            threads. The messages and matches are the same either way.
        random_bytes: the source of every random choice (blinds, pads, shuffles, canary
            positions, audit samples); ``secrets.token_bytes`` unless a test injects a
            seeded source to replay a session byte for byte.
        signals: the signal types, by name, whose quality floors apply to uploads
            (:func:`~blindmatch.fingerprint.signals.default_registry` when omitted); every
            index must be of a registered signal type.
        max_lookup_trials: bound on the lookup work of one reply per signal, in candidate
            trials (:data:`DEFAULT_MAX_LOOKUP_TRIALS`); a reply over it fails the session
            with :class:`~blindmatch.errors.IndexTooDense`, its uploads unfinished.
        retain: keep, for every answered upload, the per-band tags and pads of its lookup
            (the OPRF output of each query for a compact exact index) as :attr:`retained`
            records, for retro-matching later deltas of the same base
            (:mod:`blindmatch.protocols.retro`). Off by default: what they reveal if stolen
            is in docs/protocol.md "Retro-matching".

    Raises:
        TypeError: an argument of the wrong type.
        errors.LocalProtocolError: bad values, no index, two indexes of one signal, a
            delta without its base, an index of an unregistered signal type, or a key that
            is not a VOPRF key.
        errors.KeyMismatch: an index was built under another key epoch or key id.
    """

    def __init__(
        self,
        indexes: _Source | Sequence[_Source],
        public_key: PublicKey,
        *,
        batch_size: int = 256,
        pad_quantum: int = DEFAULT_PAD_QUANTUM,
        canary_interval: int = 64,
        evaluator: Evaluator = SERIAL,
        signals: SignalRegistry | None = None,
        random_bytes: RandomBytes = secrets.token_bytes,
        max_lookup_trials: int = DEFAULT_MAX_LOOKUP_TRIALS,
        retain: bool = False,
    ) -> None:
        chosen = [indexes] if isinstance(indexes, _SOURCES) else list(indexes)
        if not all(isinstance(i, _SOURCES) for i in chosen):
            raise TypeError("indexes must be Index or IndexSet values (or compact ones)")
        if not chosen:
            raise errors.LocalProtocolError("give at least one Index or IndexSet")
        if not isinstance(public_key, PublicKey):
            raise TypeError("public_key must be a PublicKey")
        if public_key.mode is not _MODE:
            raise errors.LocalProtocolError("public_key must be a VOPRF PublicKey")
        if not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_ELEMENTS:
            raise errors.LocalProtocolError(f"batch_size must be in [1, {MAX_ELEMENTS}]")
        if type(pad_quantum) is not int or not 1 <= pad_quantum <= MAX_ELEMENTS:
            raise errors.LocalProtocolError(f"pad_quantum must be in [1, {MAX_ELEMENTS}]")
        if not isinstance(canary_interval, int) or canary_interval < 1:
            raise errors.LocalProtocolError("canary_interval must be at least 1")
        if not isinstance(evaluator, Evaluator):
            raise TypeError("evaluator must be an Evaluator")
        registry = default_registry() if signals is None else signals
        if not isinstance(registry, SignalRegistry):
            raise TypeError("signals must be a SignalRegistry")
        if type(max_lookup_trials) is not int or max_lookup_trials < 1:
            raise errors.LocalProtocolError("max_lookup_trials must be a positive int")
        self._max_lookup_trials = max_lookup_trials
        if not isinstance(retain, bool):
            raise TypeError("retain must be a bool")
        self._retain = retain
        self._retained: list[AnyRetroRecord] = []
        self._evaluator = evaluator
        self._random = SessionRandom(random_bytes)
        self._signal_types: dict[str, SignalType[Any]] = {}
        self._indexes: dict[str, _Lookup] = {}
        self._digests: dict[str, IndexDigest] = {}
        for source in chosen:
            index = _Lookup(source)
            header = index.header
            if header.banding.signal in self._indexes:
                raise errors.LocalProtocolError("two indexes of one signal type")
            if header.kind is not IndexKind.FULL:
                raise errors.LocalProtocolError("a delta needs its base: give an IndexSet")
            if header.key_epoch != public_key.epoch or header.key_id != public_key.key_id:
                raise errors.KeyMismatch("an index was built under another key")
            if header.banding.signal not in registry:
                raise errors.LocalProtocolError("an index of an unregistered signal type")
            self._signal_types[header.banding.signal] = registry.get(header.banding.signal)
            self._indexes[header.banding.signal] = index
            self._digests[header.banding.signal] = index_digest(source)
        self._digests_checked = False
        self._public_key = public_key
        self._key_id = public_key.key_id
        self._batch_size = batch_size
        self._pad_quantum = pad_quantum
        self._canary_interval = canary_interval
        self._state = PlatformState.START
        self._element_limit = 0
        self._elements_sent = 0  # the quota's own count: ``stats`` may be reset
        self._queue: deque[tuple[Upload, ReportHandle | None]] = deque()
        self._carry: deque[tuple[_Slot, int, Element]] = deque()
        self._in_flight: dict[int, _Slot] = {}
        self._canaries_seen: set[str] = set()
        self._next_batch_id = 0
        self._next_audit_id = 0
        self._outstanding: dict[int, _Batch] = {}
        # Answered batches keep only (B, Z) for audits: their slots (blinds, band inputs)
        # are dropped once the uploads are finalized.
        self._auditable: dict[int, tuple[tuple[Element, ...], tuple[Element, ...]]] = {}
        self._audits: dict[int, tuple[list[Element], list[Element]]] = {}
        self.stats = PlatformStats()

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> PlatformState:
        """The current state."""
        return self._state

    @property
    def signals(self) -> tuple[str, ...]:
        """The signal types this session can match (one index each), sorted."""
        return tuple(sorted(self._indexes))

    @property
    def index_digests(self) -> tuple[IndexDigest, ...]:
        """The digests of the indexes this session holds, sorted by signal."""
        return tuple(self._digests[s] for s in sorted(self._digests))

    @property
    def index_digests_checked(self) -> bool:
        """True once ``ServerInfo`` listed digests and every held index was current.

        False before ``ServerInfo`` and when the clearinghouse listed no digest: then
        nothing says the indexes are the current ones of the key epoch.
        """
        return self._digests_checked

    @property
    def canary_checked_signals(self) -> tuple[str, ...]:
        """Signals for which at least one canary query came back matched, sorted.

        A signal missing here had no canary answered yet (its canaries are still queued, or
        its index holds none): nothing has shown that its index and the online key agree.
        """
        return tuple(sorted(self._canaries_seen))

    @property
    def batch_size(self) -> int:
        """Elements per request (after the clearinghouse's ``max_batch`` is known)."""
        return self._batch_size

    @property
    def wants_to_send(self) -> bool:
        """True while queued uploads or their elements wait for :meth:`next_request`."""
        return self._state is PlatformState.READY and bool(self._queue or self._carry)

    @property
    def outstanding(self) -> int:
        """Requests (evaluations and audits) sent and not answered yet."""
        return len(self._outstanding) + len(self._audits)

    @property
    def auditable_batches(self) -> tuple[int, ...]:
        """Ids of answered batches not audited yet, ascending."""
        return tuple(sorted(self._auditable))

    def unfinished(self) -> tuple[str, ...]:
        """Refs of uploads without an answer: queued, or in flight, which includes those of
        a reply that failed the session (a canary that did not match: its answers are not
        under the published key; an index that refused or failed the lookup)."""
        refs = [upload.ref for upload, canary in self._queue if canary is None]
        groups = {id(slot.group): slot.group for slot, _, _ in self._carry if slot.group}
        groups.update({id(s.group): s.group for s in self._in_flight.values() if s.group})
        refs.extend(group.upload.ref for group in groups.values())
        return tuple(refs)

    def _require(self, *states: PlatformState) -> None:
        if self._state not in states:
            raise errors.LocalProtocolError(f"not allowed in state {self._state.value}")

    # ------------------------------------------------------------------ sending

    def hello(self) -> bytes:
        """The opening :class:`~blindmatch.protocols.messages.Hello`; ``START`` only.

        Raises:
            errors.LocalProtocolError: not in ``START``.
        """
        self._require(PlatformState.START)
        self._state = PlatformState.AWAIT_INFO
        return self._sent(Hello(Suite.RISTRETTO255_SHA512, _MODE).encode())

    def add_uploads(self, uploads: Iterable[Upload | tuple[str, str, bytes]]) -> None:
        """Queue uploads for matching, with canaries mixed in.

        Allowed before and after the handshake (not once closing, closed or failed).

        Args:
            uploads: :class:`Upload` values or ``(ref, signal, hash_bytes)`` tuples.

        Raises:
            errors.LocalProtocolError: an unknown signal, a hash of the wrong length, an
                upload of a signal with a quality floor (PDQ) without a quality or below the
                floor, or the wrong state.
        """
        self._require(PlatformState.START, PlatformState.AWAIT_INFO, PlatformState.READY)
        checked = [_as_upload(item) for item in uploads]
        per_signal: dict[str, int] = {}
        for upload in checked:
            index = self._indexes.get(upload.signal)
            if index is None:
                raise errors.LocalProtocolError("no index for the upload's signal type")
            banding = index.header.banding
            if any(len(h) != banding.hash_bytes for _, h in upload.queries):
                raise errors.LocalProtocolError("hash length does not fit the signal type")
            signal_type = self._signal_types[upload.signal]
            if not signal_type.accepts(upload.quality):
                raise errors.LocalProtocolError(
                    f"{upload.signal} uploads need a quality of at least "
                    f"{signal_type.quality_floor}"
                )
            per_signal[upload.signal] = per_signal.get(upload.signal, 0) + 1
        items: list[tuple[Upload, ReportHandle | None]] = [(u, None) for u in checked]
        for signal, count in per_signal.items():
            canaries = self._indexes[signal].canaries
            if not canaries:
                continue
            for _ in range(-(-count // self._canary_interval)):
                canary = canaries[self._random.below(len(canaries))]
                upload = Upload("<canary>", signal, canary.hash, 100)
                items.insert(self._random.below(len(items) + 1), (upload, canary.handle))
        self._queue.extend(items)

    def next_request(self) -> bytes:
        """The next evaluation request: :attr:`batch_size` elements, or for the last
        request of a flush its elements padded to a multiple of ``pad_quantum``.

        Raises:
            errors.LocalProtocolError: not ``READY``, nothing to send, or the clearinghouse's
                element quota would be exceeded.
        """
        self._require(PlatformState.READY)
        if not (self._queue or self._carry):
            raise errors.LocalProtocolError("nothing to send")
        self._blind_upto(self._batch_size - len(self._carry))
        # A full batch while the queue holds one; the rest of a flush rounded up to the pad
        # quantum (docs/protocol.md 8.2).
        waiting = len(self._carry)
        size = self._batch_size
        if waiting < size and not self._queue:
            quantum = self._pad_quantum
            size = min(size, -(-waiting // quantum) * quantum)
        if self._elements_sent + size > self._element_limit:
            raise errors.LocalProtocolError("the clearinghouse's element quota would be exceeded")
        positions: list[tuple[_Slot, int] | None] = []
        elements: list[Element] = []
        while self._carry and len(elements) < size:
            slot, band, element = self._carry.popleft()
            positions.append((slot, band))
            elements.append(element)
        pads = size - len(elements)
        for _ in range(pads):
            positions.append(None)
            elements.append(self._random.scalar().multiply_base())
        order = list(range(size))
        for i in range(size - 1, 0, -1):  # Fisher-Yates with the CSPRNG
            j = self._random.below(i + 1)
            order[i], order[j] = order[j], order[i]
        batch = _Batch(tuple(elements[i] for i in order), tuple(positions[i] for i in order))
        batch_id = self._next_batch_id
        self._next_batch_id += 1
        self._outstanding[batch_id] = batch
        for position in batch.positions:
            if position is not None:
                self._in_flight[id(position[0])] = position[0]
        self._elements_sent += size
        self.stats.requests += 1
        self.stats.elements_sent += size
        self.stats.pad_elements += pads
        request = EvaluateRequest(
            Suite.RISTRETTO255_SHA512,
            _MODE,
            self._public_key.epoch,
            self._key_id,
            batch_id,
            batch.elements,
        )
        return self._sent(request.encode())

    def _blind_upto(self, wanted: int) -> None:
        """Blind queued uploads until ``wanted`` more elements are ready (or the queue is empty).

        Each upload gets its own random blind ``r``, shared by its bands; all uploads of one
        call are blinded in one batch call (per-input blinds, ``r`` repeated per band), which
        keeps the per-upload Python overhead out of the exact signals' one-band case.
        """
        inputs: list[bytes] = []
        blinds: list[Scalar] = []
        slots: list[_Slot] = []
        while wanted > 0 and self._queue:
            upload, canary = self._queue.popleft()
            banding = self._indexes[upload.signal].header.banding
            if canary is not None:
                # A canary queries t random bands (docs/protocol.md 8.6): t is all a match
                # needs, and one wrong answer among them fails the check.
                pool = list(range(banding.count))
                chosen = sorted(
                    pool.pop(self._random.below(len(pool))) for _ in range(banding.threshold)
                )
                every = banding.band_inputs(upload.hash)
                queries: list[tuple[list[bytes], tuple[int, ...] | None]] = [
                    ([every[j] for j in chosen], tuple(chosen))
                ]
                group = None
                self.stats.canary_queries += 1
            else:
                hashes = [upload.hash, *(h for _, h in upload.variants)]
                queries = [(banding.band_inputs(h), None) for h in hashes]
                group = _Group(upload, len(queries))
                self.stats.variant_queries += len(queries) - 1
            for variant, (band_inputs, bands) in enumerate(queries):
                blind = self._random.scalar()
                slot = _Slot(
                    upload,
                    band_inputs,
                    blind,
                    [None] * len(band_inputs),
                    len(band_inputs),
                    canary,
                    group,
                    variant,
                    bands,
                )
                slots.append(slot)
                inputs.extend(band_inputs)
                blinds.extend([blind] * len(band_inputs))
                wanted -= len(band_inputs)
        if not slots:
            return
        blinded = self._evaluator.blind_batch(inputs, _MODE, blinds=blinds)
        position = 0
        for slot in slots:
            count = len(slot.inputs)
            self._carry.extend(
                (slot, j, b) for j, b in enumerate(blinded[position : position + count])
            )
            position += count

    def audit_request(self, batch_ids: Sequence[int]) -> bytes:
        """Ask for one DLEQ proof over the named answered batches (docs/design.md "Audit").

        Args:
            batch_ids: distinct ids from :attr:`auditable_batches`, e.g. a random sample.

        Returns:
            The :class:`~blindmatch.protocols.messages.ProofRequest` bytes.

        Raises:
            errors.LocalProtocolError: not ``READY``, an id not answered or audited already,
                duplicates, or more than 2**16 elements in total.
        """
        self._require(PlatformState.READY)
        ids = tuple(batch_ids)
        if not ids or len(set(ids)) != len(ids) or any(b not in self._auditable for b in ids):
            raise errors.LocalProtocolError("audit distinct answered batches not audited yet")
        blinded = [e for b in ids for e in self._auditable[b][0]]
        evaluated = [e for b in ids for e in self._auditable[b][1]]
        if len(blinded) > oprf.MAX_PROOF_BATCH:
            raise errors.LocalProtocolError("an audit covers at most 2**16 elements")
        audit_id = self._next_audit_id
        self._next_audit_id += 1
        for b in ids:
            del self._auditable[b]
        self._audits[audit_id] = (blinded, evaluated)
        self.stats.audits_sent += 1
        return self._sent(ProofRequest(audit_id, ids).encode())

    def sample_for_audit(self, count: int) -> tuple[int, ...]:
        """A uniformly random sample of ``count`` auditable batch ids.

        Raises:
            errors.LocalProtocolError: fewer auditable batches than ``count``, or count < 1.
        """
        pool = list(self.auditable_batches)
        if not isinstance(count, int) or not 1 <= count <= len(pool):
            raise errors.LocalProtocolError("cannot sample that many auditable batches")
        chosen = []
        for _ in range(count):
            chosen.append(pool.pop(self._random.below(len(pool))))
        return tuple(sorted(chosen))

    def close(self) -> bytes:
        """End the session: the :class:`~blindmatch.protocols.messages.Close` to send.

        Raises:
            errors.LocalProtocolError: not ``READY``.
        """
        self._require(PlatformState.READY)
        self._state = PlatformState.CLOSING
        return self._sent(Close().encode())

    def _sent(self, data: bytes) -> bytes:
        self.stats.bytes_sent += len(data)
        return data

    # ------------------------------------------------------------------ receiving

    def receive(self, data: bytes) -> list[Match]:
        """Handle one reply; return the matches it completes.

        Args:
            data: the reply's bytes, exactly one message.

        Returns:
            Matches of the uploads this reply completed (often none).

        Raises:
            TypeError: ``data`` is not bytes-like.
            errors.LocalProtocolError: no reply is expected in this state.
            errors.RemoteProtocolError: the reply is malformed, unexpected or of the wrong
                shape (the session is unchanged), or :class:`~blindmatch.errors.KeyMismatch`
                and its subclasses :class:`~blindmatch.errors.StaleIndex` /
                :class:`~blindmatch.errors.CanaryMismatch` (the session failed).
            errors.RequestRejected: the clearinghouse refused a request (session failed).
            errors.VerifyError: an audit proof did not verify (session failed).
            errors.IndexTooDense: an upload hit more index entries than an honest index
                holds, or the reply's lookup would exceed ``max_lookup_trials`` (session
                failed; the reply's uploads stay unfinished).
            errors.IndexFormatError: the index failed the lookup (session failed, likewise).
        """
        self._require(PlatformState.AWAIT_INFO, PlatformState.READY, PlatformState.CLOSING)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("a reply must be bytes")
        message = decode(data, max_elements=self._batch_size)
        try:
            matches = self._dispatch(message)
        except (errors.UnexpectedMessage, errors.MessageDecodeError):
            raise  # refused before anything changed: the reply is not counted
        except errors.BlindmatchError:
            self.stats.bytes_received += len(data)
            raise
        self.stats.bytes_received += len(data)
        return matches

    def _dispatch(self, message: Message) -> list[Match]:
        if isinstance(message, ErrorMessage):
            self._state = PlatformState.FAILED
            raise errors.RequestRejected(message.code, ErrorCode(message.code).name, message.text)
        if isinstance(message, ServerInfo) and self._state is PlatformState.AWAIT_INFO:
            self._server_info(message)
            return []
        if isinstance(message, EvaluateResponse) and message.batch_id in self._outstanding:
            return self._evaluated(message)
        if isinstance(message, ProofResponse) and message.audit_id in self._audits:
            self._verify(message)
            return []
        if isinstance(message, Close) and self._state is PlatformState.CLOSING:
            if self._outstanding or self._audits:
                raise errors.UnexpectedMessage("Close acknowledged before all replies")
            self._state = PlatformState.CLOSED
            return []
        raise errors.UnexpectedMessage("a reply to no pending request")

    def _server_info(self, info: ServerInfo) -> None:
        if info.suite is not Suite.RISTRETTO255_SHA512 or info.mode is not _MODE:
            self._state = PlatformState.FAILED
            raise errors.UnsupportedVersion("the clearinghouse offers another suite or mode")
        if (
            info.public_key != self._public_key.element
            or info.key_epoch != self._public_key.epoch
            or info.key_id != self._key_id
        ):
            self._state = PlatformState.FAILED
            raise errors.KeyMismatch("the clearinghouse's key is not the published key")
        if info.index_digests:
            current = {d.signal: d.digest for d in info.index_digests}
            stale = tuple(
                signal
                for signal, held in sorted(self._digests.items())
                if current.get(signal) != held.digest
            )
            if stale:
                self._state = PlatformState.FAILED
                raise errors.StaleIndex(stale)
            self._digests_checked = True
        self._batch_size = min(self._batch_size, info.max_batch)
        self._element_limit = info.element_limit
        self._state = PlatformState.READY

    def _evaluated(self, response: EvaluateResponse) -> list[Match]:
        """Finalize and look up what a reply completes, then (only then) record it.

        The reply is staged first: each slot's answers are filled in a copy, the uploads
        it completes are finalized, looked up and their canaries checked, and nothing of
        the session changes until all of that succeeded. So an answer that does not
        finalize leaves the session as it was (the batch stays outstanding, its uploads in
        :meth:`unfinished`), and a reply that fails the session (an index that refuses the
        lookup, a canary that does not match) leaves its uploads in flight, hence in
        :meth:`unfinished`: no upload is ever dropped from the bookkeeping unanswered.
        """
        batch = self._outstanding[response.batch_id]
        if len(response.elements) != len(batch.elements):
            raise errors.MessageDecodeError("reply holds another number of elements")
        staged: dict[int, tuple[_Slot, list[Element | None], int]] = {}
        completed: list[tuple[_Slot, list[Element]]] = []
        for position, element in zip(batch.positions, response.elements, strict=True):
            if position is None:
                continue
            slot, band = position
            slot_id = id(slot)
            _, evaluated, missing = staged.get(slot_id, (slot, list(slot.evaluated), slot.missing))
            evaluated[band] = element
            staged[slot_id] = (slot, evaluated, missing - 1)
            if missing == 1:
                completed.append((slot, [e for e in evaluated if e is not None]))
        looked_up = self._look_up(completed)
        # Everything checked: record the reply.
        del self._outstanding[response.batch_id]
        self._auditable[response.batch_id] = (batch.elements, response.elements)
        for slot, evaluated, missing in staged.values():
            slot.evaluated = evaluated
            slot.missing = missing
        for slot, _ in completed:
            del self._in_flight[id(slot)]
        return self._record(looked_up)

    def _look_up(
        self, completed: list[tuple[_Slot, list[Element]]]
    ) -> list[tuple[_Slot, MatchResult]]:
        """Finalize and look up completed uploads and check their canaries; changes nothing
        but the state (to ``FAILED``) when the reply fails the session.

        Raises:
            errors.InvalidPeerElement: an answer does not finalize (session unchanged).
            errors.IndexTooDense: the index refuses the lookup (session failed).
            errors.IndexFormatError: the index is corrupt (session failed).
            errors.CanaryMismatch: a canary did not match (session failed).
        """
        by_signal: dict[str, list[tuple[_Slot, list[Element]]]] = {}
        for slot, evaluated in completed:
            by_signal.setdefault(slot.upload.signal, []).append((slot, evaluated))
        looked_up: list[tuple[_Slot, MatchResult]] = []
        for signal, items in sorted(by_signal.items()):
            # One call for every completed upload of the signal: blinds repeated per band, so
            # the batch inversion covers all of them (outputs are RFC 9497 Finalize).
            inputs = [x for slot, _ in items for x in slot.inputs]
            blinds = [slot.blind for slot, _ in items for _ in slot.inputs]
            answers = [e for _, evaluated in items for e in evaluated]
            try:
                flat = self._evaluator.finalize_batch(inputs, blinds, answers, _MODE)
            except errors.InvalidElement:
                # Decoding validated every element (canonical, not the identity), so a
                # product cannot fail; should a backend disagree, the reply is refused as
                # malformed before anything changed.
                raise errors.InvalidPeerElement("an answer does not finalize") from None
            outputs: list[list[bytes]] = []
            position = 0
            for slot, _ in items:
                answered = flat[position : position + len(slot.inputs)]
                position += len(slot.inputs)
                if slot.bands is not None:
                    # A canary's other bands get an output nobody evaluated (its own
                    # random blind, doubled; it never leaves the platform): it hits an
                    # entry only by a tag collision, like a band that does not agree.
                    count = self._indexes[signal].header.banding.count
                    filler = bytes(slot.blind) * 2
                    full = [filler] * count
                    for band, output in zip(slot.bands, answered, strict=True):
                        full[band] = output
                    answered = full
                elif self._retain:
                    slot.outputs = answered
                outputs.append(answered)
            try:
                results = self._indexes[signal].lookup_many(
                    outputs, max_trials=self._max_lookup_trials
                )
            except errors.IndexFormatError:
                # The index is not one an honest clearinghouse builds (or is corrupt):
                # nothing it answers counts. The reply's uploads stay in flight, so
                # unfinished() lists them; the session fails.
                self._state = PlatformState.FAILED
                raise
            looked_up.extend(
                (slot, result) for (slot, _), result in zip(items, results, strict=True)
            )
        canaries = [(slot.canary, result) for slot, result in looked_up if slot.canary is not None]
        if not all(canary in result.handles for canary, result in canaries):
            # The reply was evaluated under another key: none of its answers is one. Its
            # uploads stay unfinished (not "no match"), so a caller can query them again.
            self._state = PlatformState.FAILED
            raise errors.CanaryMismatch("a canary did not match: index and key disagree")
        return looked_up

    def _record(self, looked_up: list[tuple[_Slot, MatchResult]]) -> list[Match]:
        """Count a recorded reply's lookups and return its matches."""
        canaries = sum(1 for slot, _ in looked_up if slot.canary is not None)
        self.stats.canaries_matched += canaries
        self._canaries_seen.update(s.upload.signal for s, _ in looked_up if s.canary is not None)
        matches: list[Match] = []
        for slot, result in looked_up:
            group = slot.group
            if group is None:
                continue
            group.pending -= 1
            group.tag_hits += result.tag_hits
            if slot.outputs is not None:
                group.outputs.append((slot.variant, slot.outputs))
                slot.outputs = None
            canary_handles = self._indexes[group.upload.signal].canary_handles
            for handle in result.handles:
                if handle not in canary_handles:
                    group.found[handle] = min(group.found.get(handle, slot.variant), slot.variant)
            if group.pending == 0:
                matches.extend(self._answered(group))
        self.stats.matches += len(matches)
        return matches

    def _answered(self, group: _Group) -> list[Match]:
        """Count an upload whose every variant is looked up; its matches, one per report."""
        upload = group.upload
        self.stats.uploads_done += 1
        self.stats.tag_hits += group.tag_hits
        if group.tag_hits:
            hits = self.stats.tag_hits_per_upload
            hits[upload.ref] = hits.get(upload.ref, 0) + group.tag_hits
        if group.found:
            self.stats.uploads_matched += 1
        names = [name for name, _ in upload.queries] if upload.variants else None
        if self._retain:
            self._retain_group(group, names)
        return [
            Match(upload.ref, upload.signal, handle, None if names is None else names[variant])
            for handle, variant in sorted(group.found.items(), key=lambda item: bytes(item[0]))
        ]

    def _retain_group(self, group: _Group, names: list[str] | None) -> None:
        """Keep an answered upload's retro records: the tags and pads of a banded lookup
        (never its outputs), or, for a compact exact index, each query's OPRF output (its
        lookup needs nothing less: :mod:`blindmatch.protocols.retro`)."""
        lookup = self._indexes[group.upload.signal]
        header = lookup.header
        ordered = sorted(group.outputs, key=lambda item: item[0])
        group.outputs.clear()
        ref, signal = group.upload.ref, group.upload.signal
        if isinstance(header, CompactHeader):
            exact = [
                (None if names is None else names[position], position, outputs[0])
                for position, outputs in ordered
            ]
            self._retained.extend(make_compact_records(ref, signal, exact, header))
            return
        queries = []
        for position, outputs in ordered:
            tags, pads = derive_entries(outputs, header.tag_bytes)
            name = None if names is None else names[position]
            queries.append((name, position, tags, pads))
        self._retained.extend(make_records(ref, signal, queries, header))

    @property
    def retained(self) -> tuple[AnyRetroRecord, ...]:
        """Retro records of the uploads answered so far (one per query), when the session
        was made with ``retain=True``; empty otherwise."""
        return tuple(self._retained)

    def _verify(self, response: ProofResponse) -> None:
        blinded, evaluated = self._audits[response.audit_id]
        try:
            oprf.verify_proof(
                GENERATOR, self._public_key.element, blinded, evaluated, response.proof, _MODE
            )
        except errors.VerifyError:
            self._state = PlatformState.FAILED
            raise
        del self._audits[response.audit_id]  # recorded only once verified
        self.stats.audits_verified += 1
        self.stats.elements_audited += len(blinded)
