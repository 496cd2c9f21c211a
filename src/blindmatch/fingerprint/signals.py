"""Signal types: every hash algorithm behind one contract, collected in an explicit registry.

Theory of operation
-------------------
A *signal type* (the name python-threatexchange gives it) is one way of fingerprinting
content: PDQ, MD5, vPDQ, ... Code that matches, stores or ships hashes should not care which;
it asks the signal type. The contract, :class:`SignalType`, is what every algorithm gives:

- ``name``: unique, lowercase, stable (it goes on the wire and into hash lists);
- ``content_types``: which of ``"image"`` / ``"video"`` it hashes;
- ``value_type``: the typed value ``hash`` returns (never a loose ``str``);
- ``hash(path)``: the file to a value; failures raise a
  :class:`~blindmatch.errors.FingerprintError` subclass, never a sentinel;
- ``distance(a, b)``: a non-negative ``int``, ``0`` for a value and itself, symmetric;
- ``match_threshold``: ``distance <= match_threshold`` is a match;
- ``quality(value)`` and ``quality_floor``: values of quality below the floor match nothing;
- ``to_text`` / ``from_text``: the value's text form (hex based), exact round trip;
- ``exact``: ``True`` for hashes of the raw bytes (any file hashes; distance is 0 or 1);
- ``banding``: how private matching cuts the hash into bands (a
  :class:`~blindmatch.fingerprint.types.BandingSpec`), ``None`` for a signal that is only
  compared in the clear; with it, ``match_bytes(value)`` gives the bytes the bands sample;
- ``grouped``: ``True`` for a value that is a bag of hashes (vPDQ: a video's frames).
  Private matching then bands each item (``match_items(value)``, bounded in number), the
  index groups the items of one report, and a layer above the session applies the
  signal's own rule to the matched items (:mod:`blindmatch.protocols.video`).

This is the one place that says what a signal is. Everything that matches derives from it:
the index of a signal is built with its banding, a platform session refuses uploads below
its quality floor, the simulation and the demo fingerprint with ``hash`` and match what
``matches`` would. Adding a signal type is its module (a :class:`SignalType`) and one line in
:func:`default_registry`.

:class:`SignalRegistry` is an explicit object, not import-time magic: it refuses a second
signal type of the same name and raises on unknown names (both
:class:`~blindmatch.errors.RegistryError`). :func:`default_registry` builds a fresh one holding
the built-in types; one shared contract test (``tests/test_signals.py``) runs over all of them.

Built-in types
--------------
========  =====  =========  =====  ===========================================================
name      media  threshold  floor  value, text form
========  =====  =========  =====  ===========================================================
pdq       image  31         50     :class:`PdqFingerprint`; ``"<64 hex>,<quality>"``, the
                                   first two columns the reference ``pdq-photo-hasher`` prints
md5       both   0          0      :class:`Md5Digest` of the file bytes; 32 hex digits
sha256    both   0          0      :class:`Sha256Digest` of the file bytes; 64 hex digits
vpdq      video  20         50     :class:`VideoFingerprint`; see :class:`VpdqSignal`
phash     image  8          0      :class:`ImageHash64`; 16 hex digits as imagehash prints
dhash     image  8          0      same
ahash     image  8          0      same
whash     image  8          0      same
========  =====  =========  =====  ===========================================================

PDQ's threshold (31 of 256 bits) and floor (quality 50) are the published ones. The imagehash
family are secondary signals (no quality measure, weaker than PDQ against crops and
re-encodes of real photos); 8 of 64 bits is PDQ's 12 % scaled to 64 bits. Measured on 24
generated photo-like images under 7 mild edits (JPEG q50, half size, grey, blur 1.5,
+-20 % brightness/contrast, sharpen): edited copies were at most 6 bits away (whash 8),
while the closest unrelated pair was 20 (phash), 20 (dhash), 16 (ahash), 18 (whash) bits away.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import math
import re
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Literal, TypeVar

import numpy as np
from PIL import Image

from blindmatch._fixed import FixedBytes
from blindmatch.errors import InvalidArgument, InvalidEncoding, RegistryError
from blindmatch.fingerprint._files import PathLike
from blindmatch.fingerprint.exact import md5_file, sha256_file
from blindmatch.fingerprint.frontend import Policy, load_rgb, load_rgb_image
from blindmatch.fingerprint.pdq import pdq_from_rgb
from blindmatch.fingerprint.types import (
    BandingSpec,
    ImageHash64,
    Md5Digest,
    PdqFingerprint,
    PdqHash,
    Sha256Digest,
    VideoFingerprint,
    VideoFrame,
)

if TYPE_CHECKING:
    import imagehash

    from blindmatch.fingerprint.video import VideoMatch

__all__ = [
    "AhashSignal",
    "ContentType",
    "DhashSignal",
    "Md5Signal",
    "PdqSignal",
    "PhashSignal",
    "SECONDARY_EXTRA",
    "Sha256Signal",
    "SignalRegistry",
    "SignalType",
    "VpdqSignal",
    "WhashSignal",
    "default_registry",
    "hash_file",
]

ContentType = Literal["image", "video"]
"""The kinds of content a signal type hashes."""

V = TypeVar("V")

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_QUALITY = re.compile(r"(?:0|[1-9][0-9]{0,2})\Z")
_CONTENT_TYPES: Final = frozenset({"image", "video"})

SECONDARY_EXTRA: Final = "secondary"
"""The extra that installs imagehash, which the phash/dhash/ahash/whash signals need."""
_SECONDARY_NAMES: Final = frozenset({"phash", "dhash", "ahash", "whash"})
_NO_SECONDARY: Final = (
    "the secondary signals (phash, dhash, ahash, whash) need imagehash: install blindmatch "
    f"with the '{SECONDARY_EXTRA}' extra (pip install 'blindmatch[{SECONDARY_EXTRA}]')"
)


class SignalType(abc.ABC, Generic[V]):
    """The contract of one hash algorithm (see the module docstring for each member)."""

    name: ClassVar[str]
    content_types: ClassVar[frozenset[ContentType]]
    value_type: ClassVar[type[Any]]
    match_threshold: ClassVar[int]
    quality_floor: ClassVar[int]
    exact: ClassVar[bool] = False
    banding: ClassVar[BandingSpec | None] = None
    grouped: ClassVar[bool] = False

    @abc.abstractmethod
    def hash(self, path: PathLike) -> V:
        """Fingerprint one file.

        Args:
            path: The file.

        Returns:
            The file's value, of type :attr:`value_type`.

        Raises:
            FingerprintError: A subclass saying why the file cannot be hashed.
        """

    @abc.abstractmethod
    def distance(self, a: V, b: V) -> int:
        """How far apart two values are: ``>= 0``, ``0`` for equal values, symmetric."""

    @abc.abstractmethod
    def quality(self, value: V) -> int:
        """The value's quality, 0..100 (100 where the algorithm has no notion of quality)."""

    @abc.abstractmethod
    def to_text(self, value: V) -> str:
        """The value's text form (hex based, ASCII, no whitespace at the ends)."""

    @abc.abstractmethod
    def from_text(self, text: str) -> V:
        """Parse :meth:`to_text` output; raises :class:`InvalidEncoding` on anything else."""

    def match_bytes(self, value: V) -> bytes:
        """The bytes private matching bands: the hash alone, ``banding.hash_bytes`` long.

        Raises:
            RegistryError: the signal type has no banding (it is not matched privately).
            TypeError: ``value`` is not of the signal's value type.
        """
        if self.banding is None:
            raise RegistryError(f"{self.name} is not matched privately (no banding)")
        if not isinstance(value, FixedBytes):
            raise TypeError(f"a {self.name} value must be a {self.value_type.__name__}")
        return bytes(value)

    def accepts(self, quality: int | None) -> bool:
        """Whether a value of this quality may match at all (``None``: no quality given)."""
        if self.quality_floor == 0:
            return True
        return quality is not None and quality >= self.quality_floor

    def matches(self, a: V, b: V) -> bool:
        """Whether two values match: both at or above the quality floor, and within threshold.

        Args:
            a: One value.
            b: The other.

        Returns:
            ``True`` for a match.
        """
        if self.quality(a) < self.quality_floor or self.quality(b) < self.quality_floor:
            return False
        return self.distance(a, b) <= self.match_threshold

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class SignalRegistry:
    """An explicit set of signal types, keyed by name; duplicates and unknown names raise."""

    def __init__(self, signals: Iterable[SignalType[Any]] = ()) -> None:
        """Start with ``signals`` registered in order (duplicates raise)."""
        self._signals: dict[str, SignalType[Any]] = {}
        for signal in signals:
            self.register(signal)

    def register(self, signal: SignalType[Any]) -> None:
        """Add a signal type after checking its contract attributes.

        Args:
            signal: An instance of a :class:`SignalType` subclass.

        Raises:
            RegistryError: The name is taken, or the type's attributes break the contract
                (name not lowercase ``[a-z][a-z0-9_]*``, unknown content types, no value
                class, negative threshold, floor outside 0..100).
        """
        if not isinstance(signal, SignalType):
            raise RegistryError("only SignalType instances can be registered")
        name = getattr(signal, "name", None)
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistryError("a signal type name must match [a-z][a-z0-9_]*")
        if name in self._signals:
            raise RegistryError(f"a signal type named {name!r} is already registered")
        if not signal.content_types or not signal.content_types <= _CONTENT_TYPES:
            raise RegistryError(f"{name}: content_types must be a non-empty subset of image/video")
        if not isinstance(getattr(signal, "value_type", None), type):
            raise RegistryError(f"{name}: value_type must be the class of its values")
        if not isinstance(signal.match_threshold, int) or signal.match_threshold < 0:
            raise RegistryError(f"{name}: match_threshold must be an int >= 0")
        if not isinstance(signal.quality_floor, int) or not 0 <= signal.quality_floor <= 100:
            raise RegistryError(f"{name}: quality_floor must be an int in 0..100")
        banding = signal.banding
        if banding is not None and (
            not isinstance(banding, BandingSpec) or banding.exact != signal.exact
        ):
            raise RegistryError(f"{name}: banding must be a BandingSpec, exact iff the signal is")
        if signal.grouped and (banding is None or signal.exact):
            raise RegistryError(f"{name}: a grouped signal needs a fuzzy banding")
        self._signals[name] = signal

    def get(self, name: str) -> SignalType[Any]:
        """The signal type registered as ``name``.

        Raises:
            RegistryError: No signal type has that name.
        """
        try:
            return self._signals[name]
        except (KeyError, TypeError):
            if name in _SECONDARY_NAMES and not _has_imagehash():
                raise RegistryError(_NO_SECONDARY) from None
            raise RegistryError("no signal type of that name is registered") from None

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        return tuple(sorted(self._signals))

    def for_content(self, content_type: ContentType) -> tuple[SignalType[Any], ...]:
        """The signal types that hash ``content_type``, in name order."""
        if content_type not in _CONTENT_TYPES:
            raise RegistryError("content type must be 'image' or 'video'")
        return tuple(s for n, s in sorted(self._signals.items()) if content_type in s.content_types)

    def matchable(self) -> tuple[SignalType[Any], ...]:
        """The signal types private matching can run (those with a banding), in name order."""
        return tuple(s for n, s in sorted(self._signals.items()) if s.banding is not None)

    def __contains__(self, name: object) -> bool:
        return name in self._signals

    def __iter__(self) -> Iterator[SignalType[Any]]:
        return iter(self._signals[n] for n in sorted(self._signals))

    def __len__(self) -> int:
        return len(self._signals)


# --- PDQ -------------------------------------------------------------------------------


class PdqSignal(SignalType[PdqFingerprint]):
    """PDQ through the pinned front end (:mod:`blindmatch.fingerprint.frontend`)."""

    name: ClassVar[str] = "pdq"
    content_types: ClassVar[frozenset[ContentType]] = frozenset({"image"})
    value_type: ClassVar[type[Any]] = PdqFingerprint
    match_threshold: ClassVar[int] = 31
    quality_floor: ClassVar[int] = 50
    # L = 384 bands of k = 32 bits, two agreeing: docs/design.md "Bands" for the choice.
    banding: ClassVar[BandingSpec | None] = BandingSpec(
        256, 32, 384, 2, b"blindmatch/v1/pdq-bands/seed-0"
    )

    def __init__(self, policy: Policy = "default", *, max_pixels: int | None = None) -> None:
        """Args: policy: the front-end policy (``default`` is comparable with everyone);
        max_pixels: the decompression-bomb limit (``frontend.DEFAULT_MAX_PIXELS`` if None)."""
        self.policy: Policy = policy
        self.max_pixels = max_pixels

    def hash(self, path: PathLike) -> PdqFingerprint:
        """PDQ hash and quality of an image file (errors: see ``frontend.load_rgb``)."""
        if self.max_pixels is None:
            return pdq_from_rgb(load_rgb(path, self.policy))
        return pdq_from_rgb(load_rgb(path, self.policy, max_pixels=self.max_pixels))

    def distance(self, a: PdqFingerprint, b: PdqFingerprint) -> int:
        """Hamming distance of the two 256-bit hashes."""
        return a.hash.distance(b.hash)

    def quality(self, value: PdqFingerprint) -> int:
        """The PDQ quality the core computed."""
        return value.quality

    def match_bytes(self, value: PdqFingerprint) -> bytes:
        """The 32 hash bytes (the quality is checked, not matched)."""
        return bytes(value.hash)

    def to_text(self, value: PdqFingerprint) -> str:
        """``"<hash hex>,<quality>"``."""
        return f"{value.hash.hex()},{value.quality}"

    def from_text(self, text: str) -> PdqFingerprint:
        """Parse ``"<64 hex>,<quality 0..100>"``."""
        parts = _split(text, ",", 2, "PDQ text must be '<64 hex digits>,<quality>'")
        return PdqFingerprint(PdqHash.from_hex(parts[0]), _parse_quality(parts[1]))


# --- exact hashes ----------------------------------------------------------------------


class Md5Signal(SignalType[Md5Digest]):
    """MD5 of the file bytes: what NCMEC's hash sharing accepts for images and videos."""

    name: ClassVar[str] = "md5"
    banding: ClassVar[BandingSpec | None] = BandingSpec.whole(128)
    content_types: ClassVar[frozenset[ContentType]] = frozenset({"image", "video"})
    value_type: ClassVar[type[Any]] = Md5Digest
    match_threshold: ClassVar[int] = 0
    quality_floor: ClassVar[int] = 0
    exact: ClassVar[bool] = True

    def hash(self, path: PathLike) -> Md5Digest:
        """MD5 of the file's bytes (any file; only unreadable paths raise)."""
        return md5_file(path)

    def distance(self, a: Md5Digest, b: Md5Digest) -> int:
        """0 when equal, 1 otherwise: an exact hash knows no nearness."""
        return 0 if a == b else 1

    def quality(self, value: Md5Digest) -> int:
        """Always 100: an exact hash has no quality to doubt."""
        return 100

    def to_text(self, value: Md5Digest) -> str:
        """32 lowercase hex digits."""
        return value.hex()

    def from_text(self, text: str) -> Md5Digest:
        """Parse 32 hex digits."""
        return Md5Digest.from_hex(text)


class Sha256Signal(SignalType[Sha256Digest]):
    """SHA-256 of the file bytes."""

    name: ClassVar[str] = "sha256"
    banding: ClassVar[BandingSpec | None] = BandingSpec.whole(256)
    content_types: ClassVar[frozenset[ContentType]] = frozenset({"image", "video"})
    value_type: ClassVar[type[Any]] = Sha256Digest
    match_threshold: ClassVar[int] = 0
    quality_floor: ClassVar[int] = 0
    exact: ClassVar[bool] = True

    def hash(self, path: PathLike) -> Sha256Digest:
        """SHA-256 of the file's bytes (any file; only unreadable paths raise)."""
        return sha256_file(path)

    def distance(self, a: Sha256Digest, b: Sha256Digest) -> int:
        """0 when equal, 1 otherwise."""
        return 0 if a == b else 1

    def quality(self, value: Sha256Digest) -> int:
        """Always 100."""
        return 100

    def to_text(self, value: Sha256Digest) -> str:
        """64 lowercase hex digits."""
        return value.hex()

    def from_text(self, text: str) -> Sha256Digest:
        """Parse 64 hex digits."""
        return Sha256Digest.from_hex(text)


# --- vPDQ ------------------------------------------------------------------------------


class VpdqSignal(SignalType[VideoFingerprint]):
    """vPDQ: a video as a bag of frame PDQ hashes (:mod:`blindmatch.fingerprint.video`).

    The vPDQ match rule is not a metric: it computes ``query%`` (share of the query's
    unique frames of quality >= 50 within PDQ distance 31 of some frame of the other video)
    and ``compared%`` (the reverse), and usually requires ``query% >= 80``. The contract's
    symmetric distance is the worse direction, in whole percentage points of unmatched
    frames::

        distance(a, b) = ceil(100 - min(query%, compared%))

    so ``distance <= 20`` (:attr:`match_threshold`) means both directions reach 80 %,
    which is stricter than the one-sided default. Use :meth:`video_match` for the
    asymmetric percentages. Frames below quality 50 take no part in either direction, so a
    video without a single such frame is at distance 100 from everything, itself included;
    :meth:`quality` is the best frame's quality, so the floor of 50 says the same.

    Text form: a first line ``"vpdq,<fps>,<seconds_per_hash>"``, then one line per frame
    ``"<frame_number>,<quality>,<pdq hex>,<timestamp>"`` (the reference's sample-hash
    columns), lines joined by ``"\\n"``; floats are written with ``repr`` (and must be read back
    in that canonical form) so each value has exactly one text.

    PyAV is imported only when a video is hashed or compared, never by importing this module.
    """

    name: ClassVar[str] = "vpdq"
    content_types: ClassVar[frozenset[ContentType]] = frozenset({"video"})
    value_type: ClassVar[type[Any]] = VideoFingerprint
    match_threshold: ClassVar[int] = 20
    quality_floor: ClassVar[int] = 50
    frame_distance_threshold: ClassVar[int] = 31
    #: Frames are banded as PDQ hashes are (k = 32, L = 384, t = 2: a frame matches a frame
    #: within distance 31 with PDQ's recall), under their own seed and signal name, so a
    #: frame's band inputs are never a PDQ image's.
    banding: ClassVar[BandingSpec | None] = BandingSpec(
        256, 32, 384, 2, b"blindmatch/v1/vpdq-bands/seed-0"
    )
    grouped: ClassVar[bool] = True
    query_threshold: ClassVar[float] = 80.0
    """vPDQ's default least query share (percent) of a match."""
    compared_threshold: ClassVar[float] = 0.0
    """vPDQ's default least compared share (percent) of a match."""

    def __init__(self, seconds_per_hash: float = 1.0, max_match_frames: int = 64) -> None:
        """Args:
        seconds_per_hash: sampling interval (vPDQ's default 1.0).
        max_match_frames: most frames of one video private matching bands
            (``video.DEFAULT_MAX_MATCH_FRAMES``): the bound on its cost per video.
        """
        if type(max_match_frames) is not int or max_match_frames < 1:
            raise InvalidArgument("max_match_frames must be a positive int")
        self.seconds_per_hash = seconds_per_hash
        self.max_match_frames = max_match_frames

    def match_items(self, value: VideoFingerprint) -> tuple[VideoFrame, ...]:
        """The frames private matching bands: distinct hashes of quality >= 50, pairwise
        more than 31 apart, at most :attr:`max_match_frames` spread evenly
        (``video.match_frames``)."""
        if not isinstance(value, VideoFingerprint):
            raise TypeError("a vpdq value must be a VideoFingerprint")
        frames: tuple[VideoFrame, ...] = _video().match_frames(
            value,
            quality_floor=self.quality_floor,
            max_frames=self.max_match_frames,
            distance_threshold=self.frame_distance_threshold,
        )
        return frames

    def match_bytes(self, value: Any) -> bytes:
        """The 32 PDQ bytes of one frame (a :class:`VideoFrame` of :meth:`match_items`)."""
        if not isinstance(value, VideoFrame):
            raise TypeError("vpdq bands one VideoFrame at a time (see match_items)")
        return bytes(value.pdq)

    def hash(self, path: PathLike) -> VideoFingerprint:
        """The vPDQ fingerprint of a video file (errors: see ``video.hash_video``)."""
        fingerprint: VideoFingerprint = _video().hash_video(
            path, seconds_per_hash=self.seconds_per_hash
        )
        return fingerprint

    def video_match(self, query: VideoFingerprint, compared: VideoFingerprint) -> VideoMatch:
        """The vPDQ rule's two shares for ``query`` against ``compared``.

        Args:
            query: The video being checked.
            compared: The video it is compared against.

        Returns:
            ``VideoMatch(query_pct, compared_pct)``, frame distance 31, quality floor 50.
        """
        result: VideoMatch = _video().video_match(
            query,
            compared,
            distance_threshold=self.frame_distance_threshold,
            quality_floor=self.quality_floor,
        )
        return result

    def distance(self, a: VideoFingerprint, b: VideoFingerprint) -> int:
        """``ceil(100 - min(query%, compared%))``: 0 when every usable frame matches."""
        result = self.video_match(a, b)
        worst = min(result.query_pct, result.compared_pct)
        return max(0, min(100, math.ceil(100.0 - worst - 1e-9)))

    def quality(self, value: VideoFingerprint) -> int:
        """The best frame's quality (0 for a video without frames)."""
        return max((frame.quality for frame in value.frames), default=0)

    def to_text(self, value: VideoFingerprint) -> str:
        """Header line plus one line per frame (see the class docstring)."""
        lines = [f"vpdq,{value.fps!r},{value.seconds_per_hash!r}"]
        lines += [
            f"{f.frame_number},{f.quality},{f.pdq.hex()},{f.timestamp!r}" for f in value.frames
        ]
        return "\n".join(lines)

    def from_text(self, text: str) -> VideoFingerprint:
        """Parse :meth:`to_text` output."""
        if not isinstance(text, str):
            raise InvalidEncoding("vPDQ text must be a str")
        header, *rows = text.split("\n")
        head = _split(header, ",", 3, "vPDQ text must start with 'vpdq,<fps>,<seconds>'")
        if head[0] != "vpdq":
            raise InvalidEncoding("vPDQ text must start with 'vpdq,<fps>,<seconds>'")
        frames = []
        for row in rows:
            cols = _split(row, ",", 4, "vPDQ frame line must be 'frame,quality,hex,time'")
            if not cols[0].isascii() or not cols[0].isdigit():
                raise InvalidEncoding("vPDQ frame number must be decimal digits")
            frames.append(
                VideoFrame(
                    frame_number=int(cols[0]),
                    quality=_parse_quality(cols[1]),
                    pdq=PdqHash.from_hex(cols[2]),
                    timestamp=_parse_float(cols[3]),
                )
            )
        return VideoFingerprint(
            frames=tuple(frames), fps=_parse_float(head[1]), seconds_per_hash=_parse_float(head[2])
        )


def _video() -> ModuleType:
    """:mod:`blindmatch.fingerprint.video`, imported on first use (it needs PyAV)."""
    return importlib.import_module("blindmatch.fingerprint.video")


# --- imagehash family ------------------------------------------------------------------
#
# imagehash pulls scipy and PyWavelets (over 100 MB, a tenth of a second to import) for
# signals PDQ outranks, so it is the 'secondary' extra, imported when one of them first
# hashes: the default registry holds them only where it is installed, and asking for one
# where it is not raises a RegistryError naming the extra.


def _has_imagehash() -> bool:
    """Whether imagehash is installed (found on the path; not imported)."""
    return importlib.util.find_spec("imagehash") is not None


def _imagehash() -> ModuleType:
    """imagehash, imported on first use.

    Raises:
        RegistryError: It is not installed (the message names the extra).
    """
    try:
        return importlib.import_module("imagehash")
    except ImportError:
        raise RegistryError(_NO_SECONDARY) from None


class _ImageHashSignal(SignalType[ImageHash64]):
    """A 64-bit imagehash algorithm over the pinned front end's RGB image."""

    content_types: ClassVar[frozenset[ContentType]] = frozenset({"image"})
    value_type: ClassVar[type[Any]] = ImageHash64
    match_threshold: ClassVar[int] = 8
    quality_floor: ClassVar[int] = 0

    def __init__(self, policy: Policy = "default") -> None:
        """Args: policy: the front-end policy the image is decoded with."""
        self.policy: Policy = policy

    def hash(self, path: PathLike) -> ImageHash64:
        """The 8x8 hash, packed row by row, first bit most significant (imagehash's order)."""
        image = load_rgb_image(path, self.policy)
        bits = np.asarray(self._compute(image).hash, dtype=bool)
        return ImageHash64(np.packbits(bits.ravel()).tobytes())

    @abc.abstractmethod
    def _compute(self, image: Image.Image) -> imagehash.ImageHash:
        """The imagehash function at its default size (8x8)."""

    def distance(self, a: ImageHash64, b: ImageHash64) -> int:
        """Hamming distance of the 64 bits."""
        return a.distance(b)

    def quality(self, value: ImageHash64) -> int:
        """Always 100: imagehash reports no quality."""
        return 100

    def to_text(self, value: ImageHash64) -> str:
        """16 hex digits, as ``str(imagehash.ImageHash)`` prints."""
        return value.hex()

    def from_text(self, text: str) -> ImageHash64:
        """Parse 16 hex digits."""
        return ImageHash64.from_hex(text)


class PhashSignal(_ImageHashSignal):
    """imagehash's perceptual (DCT) hash."""

    name: ClassVar[str] = "phash"

    def _compute(self, image: Image.Image) -> imagehash.ImageHash:
        return _imagehash().phash(image)  # type: ignore[no-any-return]


class DhashSignal(_ImageHashSignal):
    """imagehash's difference (gradient) hash."""

    name: ClassVar[str] = "dhash"

    def _compute(self, image: Image.Image) -> imagehash.ImageHash:
        return _imagehash().dhash(image)  # type: ignore[no-any-return]


class AhashSignal(_ImageHashSignal):
    """imagehash's average hash."""

    name: ClassVar[str] = "ahash"

    def _compute(self, image: Image.Image) -> imagehash.ImageHash:
        return _imagehash().average_hash(image)  # type: ignore[no-any-return]


class WhashSignal(_ImageHashSignal):
    """imagehash's wavelet (Haar) hash."""

    name: ClassVar[str] = "whash"

    def _compute(self, image: Image.Image) -> imagehash.ImageHash:
        return _imagehash().whash(image)  # type: ignore[no-any-return]


def default_registry() -> SignalRegistry:
    """A new registry holding every built-in signal type with default settings.

    The secondary types (phash, dhash, ahash, whash) are included where imagehash, the
    :data:`SECONDARY_EXTRA` extra, is installed; :meth:`SignalRegistry.get` of one of them
    elsewhere raises :class:`~blindmatch.errors.RegistryError` naming the extra.

    Returns:
        A fresh :class:`SignalRegistry` (callers may register more without affecting others).
    """
    signals: list[SignalType[Any]] = [PdqSignal(), Md5Signal(), Sha256Signal(), VpdqSignal()]
    if _has_imagehash():
        signals += [PhashSignal(), DhashSignal(), AhashSignal(), WhashSignal()]
    return SignalRegistry(signals)


def hash_file(
    path: PathLike, signal: str = "pdq", *, registry: SignalRegistry | None = None
) -> Any:
    """Fingerprint one file with one signal type of a registry (the default one if omitted).

    Args:
        path: the file.
        signal: the signal type's name (``"pdq"``, ``"md5"``, ``"sha256"``, ``"vpdq"``, ...).
        registry: where to find it; :func:`default_registry` when omitted.

    Returns:
        The signal type's typed value (:attr:`SignalType.value_type`), e.g. a
        :class:`~blindmatch.fingerprint.types.PdqFingerprint` with its quality.

    Raises:
        RegistryError: no signal type of that name.
        FingerprintError: the file cannot be hashed (a subclass says why).
    """
    chosen = default_registry() if registry is None else registry
    return chosen.get(signal).hash(path)


# --- text helpers ----------------------------------------------------------------------


def _split(text: object, sep: str, count: int, message: str) -> list[str]:
    if not isinstance(text, str):
        raise InvalidEncoding(message)
    parts = text.split(sep)
    if len(parts) != count:
        raise InvalidEncoding(message)
    return parts


def _parse_quality(text: str) -> int:
    if not _QUALITY.match(text) or int(text) > 100:
        raise InvalidEncoding("quality must be a decimal integer in 0..100")
    return int(text)


def _parse_float(text: str) -> float:
    """A finite, non-negative float in its canonical ``repr`` form (one text per value)."""
    try:
        value = float(text) if text.isascii() else math.nan
    except ValueError:
        raise InvalidEncoding("expected a decimal number") from None
    if not math.isfinite(value) or value < 0 or repr(value) != text:
        raise InvalidEncoding("expected a finite, non-negative number in repr form")
    return value
