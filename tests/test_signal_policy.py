"""One source for what a signal type is: banding, quality floor, threshold, exactness."""

from __future__ import annotations

from typing import ClassVar

import pytest

from blindmatch import errors
from blindmatch.fingerprint.signals import (
    Md5Signal,
    PdqSignal,
    PhashSignal,
    Sha256Signal,
    SignalRegistry,
    default_registry,
)
from blindmatch.fingerprint.types import BandingSpec, Md5Digest
from blindmatch.protocols import PlatformSession, Upload, signal_banding
from blindmatch.psi.bands import exact_banding, pdq_banding
from blindmatch.psi.index import Index, Reference, build_index
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.oprf import Mode
from blindmatch.simulate import DEFAULT_SIGNALS, SIGNALS

KEY = SecretKey.derive(bytes(32), b"signal policy", mode=Mode.VOPRF)


def test_the_registered_bandings_are_the_published_ones() -> None:
    assert signal_banding(PdqSignal()) == pdq_banding()
    assert signal_banding(Md5Signal()) == exact_banding("md5", 128)
    assert signal_banding(Sha256Signal()) == exact_banding("sha256", 256)
    with pytest.raises(errors.RegistryError):
        signal_banding(PhashSignal())


def test_every_place_that_matches_asks_the_registry() -> None:
    registry = default_registry()
    matchable = registry.matchable()
    assert [s.name for s in matchable] == ["md5", "pdq", "sha256", "vpdq"] == list(SIGNALS)
    assert list(DEFAULT_SIGNALS) == [s.name for s in matchable if s.exact]
    for signal in matchable:
        assert signal.banding is not None
        assert signal.banding.exact == signal.exact


def test_match_bytes_are_the_hash_alone() -> None:
    digest = Md5Digest(bytes(range(16)))
    assert Md5Signal().match_bytes(digest) == bytes(range(16))
    with pytest.raises(TypeError):
        Md5Signal().match_bytes(b"raw")  # type: ignore[arg-type]


def test_the_registry_refuses_a_banding_that_contradicts_the_signal() -> None:
    class FuzzyMd5(Md5Signal):
        name: ClassVar[str] = "fuzzy_md5"
        banding: ClassVar[BandingSpec | None] = BandingSpec(128, 32, 8, 2, b"seed")

    with pytest.raises(errors.RegistryError, match="exact"):
        SignalRegistry([FuzzyMd5()])
    with pytest.raises(errors.InvalidEncoding):
        BandingSpec(128, 256, 1, 1)


def test_the_platform_takes_quality_floors_from_the_registry() -> None:
    class StrictPdq(PdqSignal):
        quality_floor: ClassVar[int] = 70

    built = build_index(KEY, pdq_banding(256), [Reference("r", "pdq", bytes(32))], processes=1)
    index = Index.from_bytes(built.to_bytes())
    default = PlatformSession(index, KEY.public_key)
    default.add_uploads([Upload("ok", "pdq", bytes(32), 60)])
    strict = PlatformSession(index, KEY.public_key, signals=SignalRegistry([StrictPdq()]))
    with pytest.raises(errors.LocalProtocolError, match="at least 70"):
        strict.add_uploads([Upload("blurry", "pdq", bytes(32), 60)])
    strict.add_uploads([Upload("sharp", "pdq", bytes(32), 70)])
    with pytest.raises(errors.LocalProtocolError, match="unregistered"):
        PlatformSession(index, KEY.public_key, signals=SignalRegistry([Md5Signal()]))
