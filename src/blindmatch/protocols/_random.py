"""The sessions' randomness, from one injectable byte source.

Every random choice of a session (blinds, pads, the shuffle of a batch, where canaries go,
which batches an audit samples, the clearinghouse's proof nonce) is drawn here from
``random_bytes(n)`` (``secrets.token_bytes`` unless a caller injects another source, as
:func:`blindmatch.psi.index.build_index` allows): a test or a vector generator that injects
a seeded source gets the same transcript byte for byte (tests/vectors/sessions/). A
deployment never injects one.
"""

from __future__ import annotations

import hmac
import secrets

from blindmatch.errors import LocalProtocolError
from blindmatch.psi.group import Scalar
from blindmatch.psi.shares import RandomBytes

__all__ = ["SessionRandom"]


class SessionRandom:
    """Uniform scalars and integers drawn from a byte source.

    Raises:
        errors.LocalProtocolError: ``random_bytes`` is not callable.
    """

    __slots__ = ("_random_bytes",)

    def __init__(self, random_bytes: RandomBytes = secrets.token_bytes) -> None:
        if not callable(random_bytes):
            raise LocalProtocolError("random_bytes must be a callable n -> n bytes")
        self._random_bytes = random_bytes

    def _take(self, count: int) -> bytes:
        data = self._random_bytes(count)
        if type(data) is not bytes or len(data) != count:
            raise LocalProtocolError("random_bytes(n) must return n bytes")
        return data

    def scalar(self) -> Scalar:
        """A uniform non-zero scalar: 64 bytes reduced mod the group order (bias 2**-256)."""
        while True:
            scalar = Scalar.reduce(self._take(64))
            if not hmac.compare_digest(bytes(scalar), bytes(32)):
                return scalar

    def below(self, bound: int) -> int:
        """A uniform integer in ``[0, bound)`` (rejection sampling, as ``secrets.randbelow``)."""
        if bound <= 1:
            return 0
        bits = (bound - 1).bit_length()
        size = (bits + 7) // 8
        while True:
            value = int.from_bytes(self._take(size), "big") >> (8 * size - bits)
            if value < bound:
                return value
