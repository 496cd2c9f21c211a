"""Signal types as private matching runs them: the banding of an index, from the signal type.

A signal type (:mod:`blindmatch.fingerprint.signals`) owns its banding as plain numbers
(:class:`~blindmatch.fingerprint.types.BandingSpec`), its quality floor, its threshold and
whether it is exact; fingerprinting knows nothing of the cryptography, so the
:class:`~blindmatch.psi.bands.Banding` an index is built with is made here, the one layer
that sees both.
"""

from __future__ import annotations

from typing import Any

from blindmatch.errors import RegistryError
from blindmatch.fingerprint.signals import SignalType
from blindmatch.psi.bands import Banding

__all__ = ["signal_banding"]


def signal_banding(signal: SignalType[Any]) -> Banding:
    """The public banding of an index of ``signal`` (its name and its banding spec).

    Raises:
        RegistryError: the signal type has no banding (it is not matched privately).
    """
    spec = signal.banding
    if spec is None:
        raise RegistryError(f"{signal.name} is not matched privately (no banding)")
    return Banding(
        signal=signal.name,
        hash_bits=spec.hash_bits,
        k=spec.k,
        count=spec.count,
        threshold=spec.threshold,
        seed=spec.seed,
    )
