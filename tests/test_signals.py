"""The signal-type contract, run over every registered type; the registry; per-type specifics."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from blindmatch.errors import FingerprintError, InvalidEncoding, RegistryError, UnreadableMedia
from blindmatch.fingerprint.signals import (
    Md5Signal,
    PdqSignal,
    PhashSignal,
    SignalRegistry,
    SignalType,
    VpdqSignal,
    default_registry,
)
from blindmatch.fingerprint.types import (
    ImageHash64,
    Md5Digest,
    PdqFingerprint,
    PdqHash,
    Sha256Digest,
    VideoFingerprint,
    VideoFrame,
)

VECTORS = Path(__file__).parent / "vectors"
REGISTRY = default_registry()
SIGNALS = list(REGISTRY)
NAMES = [s.name for s in SIGNALS]

# --- generated media --------------------------------------------------------------------


def _picture(seed: int, width: int = 96, height: int = 72) -> Image.Image:
    """A deterministic textured picture: PDQ quality well above 50."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        draw.ellipse((x, y, x + 30, y + 20), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image


def _write_video(path: Path, seed: int) -> None:
    """2 s at 10 fps, 64x48: a random texture panning right (PyAV, MPEG-4 part 2)."""
    import av

    rng = np.random.default_rng(seed)
    texture = np.asarray(_picture(seed, 128, 48))
    texture = np.clip(texture + rng.integers(0, 40, texture.shape), 0, 255).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            frame = np.ascontiguousarray(texture[:, 2 * i : 2 * i + 64])
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Two different good files and one corrupt file per content type."""
    root = tmp_path_factory.mktemp("media")
    files: dict[str, list[Path]] = {}
    images = []
    for seed in (1, 2):
        path = root / f"picture{seed}.png"
        _picture(seed).save(path)
        images.append(path)
    corrupt_image = root / "corrupt.jpg"
    buf = io.BytesIO()
    _picture(3).save(buf, "JPEG")
    corrupt_image.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    files["image"] = [*images, corrupt_image]
    videos = []
    for seed in (4, 5):
        path = root / f"video{seed}.mp4"
        _write_video(path, seed)
        videos.append(path)
    corrupt_video = root / "corrupt.mp4"
    corrupt_video.write_bytes(videos[0].read_bytes()[:600])
    files["video"] = [*videos, corrupt_video]
    return files


@pytest.fixture(scope="module")
def hashed(media: dict[str, list[Path]]) -> dict[tuple[str, str], tuple[Any, Any]]:
    """Each signal's values of the two good files of each content type it handles."""
    out: dict[tuple[str, str], tuple[Any, Any]] = {}
    for signal in SIGNALS:
        for kind in sorted(signal.content_types):
            first, second, _ = media[kind]
            out[signal.name, kind] = (signal.hash(first), signal.hash(second))
    return out


# --- value strategies, one per value type (a new signal type must add its own) ---------

frames = st.builds(
    VideoFrame,
    frame_number=st.integers(0, 10**6),
    timestamp=st.floats(0, 1e5, allow_nan=False, allow_infinity=False),
    pdq=st.binary(min_size=32, max_size=32).map(PdqHash),
    quality=st.integers(0, 100),
)
VALUES: dict[type[Any], st.SearchStrategy[Any]] = {
    PdqFingerprint: st.builds(
        PdqFingerprint, st.binary(min_size=32, max_size=32).map(PdqHash), st.integers(0, 100)
    ),
    Md5Digest: st.binary(min_size=16, max_size=16).map(Md5Digest),
    Sha256Digest: st.binary(min_size=32, max_size=32).map(Sha256Digest),
    ImageHash64: st.binary(min_size=8, max_size=8).map(ImageHash64),
    VideoFingerprint: st.builds(
        VideoFingerprint,
        frames=st.lists(frames, max_size=5).map(tuple),
        fps=st.floats(0.1, 240, allow_nan=False),
        seconds_per_hash=st.floats(0, 10, allow_nan=False),
    ),
}


# --- the contract -----------------------------------------------------------------------


def test_default_registry_holds_the_built_in_types() -> None:
    assert REGISTRY.names() == (
        "ahash",
        "dhash",
        "md5",
        "pdq",
        "phash",
        "sha256",
        "vpdq",
        "whash",
    )
    assert len(set(REGISTRY.names())) == len(REGISTRY) == 8


@pytest.mark.parametrize("signal", SIGNALS, ids=NAMES)
class TestContract:
    def test_name_and_attributes(self, signal: SignalType[Any]) -> None:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", signal.name)
        assert signal.name == signal.name.lower()
        assert signal.content_types
        assert signal.content_types <= {"image", "video"}
        assert isinstance(signal.match_threshold, int)
        assert signal.match_threshold >= 0
        assert isinstance(signal.quality_floor, int)
        assert 0 <= signal.quality_floor <= 100
        assert signal.value_type in VALUES, "add a hypothesis strategy for the new value type"
        if signal.exact:
            assert signal.match_threshold == 0

    def test_hash_returns_the_value_type(
        self, signal: SignalType[Any], hashed: dict[tuple[str, str], tuple[Any, Any]]
    ) -> None:
        for kind in signal.content_types:
            for value in hashed[signal.name, kind]:
                assert isinstance(value, signal.value_type)
                quality = signal.quality(value)
                assert isinstance(quality, int)
                assert 0 <= quality <= 100
                # The generated media are textured: every built-in type trusts them.
                assert quality >= signal.quality_floor

    def test_distance_zero_symmetric_and_matches_self(
        self, signal: SignalType[Any], hashed: dict[tuple[str, str], tuple[Any, Any]]
    ) -> None:
        for kind in signal.content_types:
            a, b = hashed[signal.name, kind]
            assert signal.distance(a, a) == 0
            assert signal.matches(a, a)
            ab, ba = signal.distance(a, b), signal.distance(b, a)
            assert isinstance(ab, int)
            assert ab == ba
            assert ab > 0
            # Two unrelated generated files never match.
            assert not signal.matches(a, b)

    def test_hashing_is_deterministic(
        self,
        signal: SignalType[Any],
        media: dict[str, list[Path]],
        hashed: dict[tuple[str, str], tuple[Any, Any]],
    ) -> None:
        kind = sorted(signal.content_types)[0]
        assert signal.hash(str(media[kind][0])) == hashed[signal.name, kind][0]

    def test_text_round_trip_of_hashed_values(
        self, signal: SignalType[Any], hashed: dict[tuple[str, str], tuple[Any, Any]]
    ) -> None:
        for kind in signal.content_types:
            for value in hashed[signal.name, kind]:
                text = signal.to_text(value)
                assert isinstance(text, str)
                assert text.isascii()
                assert text == text.strip()
                assert signal.from_text(text) == value

    def test_text_round_trip_of_any_value(self, signal: SignalType[Any]) -> None:
        @settings(max_examples=40, deadline=None)
        @given(VALUES[signal.value_type])
        def round_trip(value: Any) -> None:
            assert signal.from_text(signal.to_text(value)) == value

        round_trip()

    @pytest.mark.parametrize(
        "text", ["", "zz", "\n", " 00", "0" * 200], ids=["empty", "zz", "newline", "space", "long"]
    )
    def test_malformed_text_is_rejected(self, signal: SignalType[Any], text: str) -> None:
        with pytest.raises(InvalidEncoding):
            signal.from_text(text)

    def test_text_with_appended_garbage_is_rejected(
        self, signal: SignalType[Any], hashed: dict[tuple[str, str], tuple[Any, Any]]
    ) -> None:
        kind = sorted(signal.content_types)[0]
        text = signal.to_text(hashed[signal.name, kind][0])
        for bad in (text + "0", text + ",", "x" + text, text.upper() + "g"):
            with pytest.raises(InvalidEncoding):
                signal.from_text(bad)
        with pytest.raises(InvalidEncoding):
            signal.from_text(text.encode())  # type: ignore[arg-type]

    def test_corrupt_file(self, signal: SignalType[Any], media: dict[str, list[Path]]) -> None:
        for kind in signal.content_types:
            corrupt = media[kind][2]
            if signal.exact:
                # Exact hashes read bytes, not pictures: a damaged file still has a digest.
                assert signal.hash(corrupt) != signal.hash(media[kind][0])
            else:
                with pytest.raises(FingerprintError):
                    signal.hash(corrupt)

    def test_missing_file(self, signal: SignalType[Any], tmp_path: Path) -> None:
        with pytest.raises(UnreadableMedia):
            signal.hash(tmp_path / "missing")

    def test_registry_lookup(self, signal: SignalType[Any]) -> None:
        assert REGISTRY.get(signal.name) is signal
        assert signal.name in REGISTRY
        for kind in signal.content_types:
            assert signal in REGISTRY.for_content(kind)


# --- the registry -----------------------------------------------------------------------


def test_duplicate_names_are_refused() -> None:
    registry = SignalRegistry([PdqSignal()])
    with pytest.raises(RegistryError, match="already registered"):
        registry.register(PdqSignal(policy="fast"))
    with pytest.raises(RegistryError):
        SignalRegistry([Md5Signal(), Md5Signal()])


@pytest.mark.parametrize("name", ["sha1", "", "PDQ", "Pdq", 7, None], ids=repr)
def test_unknown_names_are_refused(name: Any) -> None:
    with pytest.raises(RegistryError):
        REGISTRY.get(name)


def test_unknown_content_type_is_refused() -> None:
    with pytest.raises(RegistryError):
        REGISTRY.for_content("audio")  # type: ignore[arg-type]


def _variant(base: type[SignalType[Any]], **attributes: Any) -> SignalType[Any]:
    cls = type("Variant", (base,), attributes)
    instance: SignalType[Any] = cls()
    return instance


@pytest.mark.parametrize(
    "attributes",
    [
        {"name": "Upper"},
        {"name": "has space"},
        {"name": "9lives"},
        {"name": ""},
        {"content_types": frozenset()},
        {"content_types": frozenset({"audio"})},
        {"match_threshold": -1},
        {"match_threshold": 1.5},
        {"quality_floor": 101},
        {"quality_floor": -1},
        {"value_type": "Md5Digest"},
    ],
    ids=lambda a: "-".join(f"{k}={v!r}" for k, v in a.items()),
)
def test_contract_violations_are_refused(attributes: dict[str, Any]) -> None:
    with pytest.raises(RegistryError):
        SignalRegistry().register(_variant(Md5Signal, **attributes))


def test_only_signal_types_register() -> None:
    with pytest.raises(RegistryError):
        SignalRegistry().register("pdq")  # type: ignore[arg-type]


def test_default_registries_are_independent() -> None:
    mine = default_registry()
    mine.register(_variant(Md5Signal, name="md5_copy"))
    assert "md5_copy" in mine
    assert "md5_copy" not in default_registry()


def test_for_content_splits_images_and_videos() -> None:
    assert [s.name for s in REGISTRY.for_content("video")] == ["md5", "sha256", "vpdq"]
    assert "vpdq" not in [s.name for s in REGISTRY.for_content("image")]


# --- per-type specifics -----------------------------------------------------------------


def test_pdq_signal_reproduces_a_reference_vector() -> None:
    data = json.loads((VECTORS / "pdq" / "reference.json").read_text(encoding="utf-8"))
    vector = next(v for v in data["vectors"] if v["file"] == "labelme-q0122.jpg")
    signal = REGISTRY.get("pdq")
    value = signal.hash(VECTORS / "pdq" / "images" / vector["file"])
    assert signal.to_text(value) == f"{vector['pdq']},{vector['quality']}"


@pytest.mark.parametrize(
    "text",
    [
        "0" * 64 + ",101",
        "0" * 64 + ",-1",
        "0" * 64 + ",05",
        "0" * 64 + ",\u0665",
        "0" * 64,
        "0" * 64 + ",50,1",
    ],
    ids=repr,
)
def test_pdq_text_rejects_bad_quality(text: str) -> None:
    with pytest.raises(InvalidEncoding):
        REGISTRY.get("pdq").from_text(text)


def test_pdq_low_quality_never_matches() -> None:
    signal = REGISTRY.get("pdq")
    h = PdqHash(bytes(32))
    assert signal.matches(PdqFingerprint(h, 50), PdqFingerprint(h, 50))
    assert not signal.matches(PdqFingerprint(h, 49), PdqFingerprint(h, 100))


@pytest.mark.parametrize(
    ("name", "function"),
    [
        ("phash", imagehash.phash),
        ("dhash", imagehash.dhash),
        ("ahash", imagehash.average_hash),
        ("whash", imagehash.whash),
    ],
)
def test_imagehash_text_equals_imagehash_str(
    name: str, function: Any, media: dict[str, list[Path]]
) -> None:
    path = media["image"][0]
    with Image.open(path) as image:
        expected = str(function(image.convert("RGB")))
    signal = REGISTRY.get(name)
    assert signal.to_text(signal.hash(path)) == expected


def test_imagehash_policy_is_kept() -> None:
    assert PhashSignal(policy="fast").policy == "fast"


_WITHOUT_IMAGEHASH = """\
import json, sys
sys.modules["imagehash"] = None  # as if not installed: import fails, find_spec is None
from blindmatch.errors import RegistryError
from blindmatch.fingerprint.signals import PhashSignal, default_registry
registry = default_registry()
report = {"names": list(registry.names()), "pdq": registry.get("pdq").hash(sys.argv[1]).hash.hex()}
for what, call in [("get", lambda: registry.get("phash")),
                   ("hash", lambda: PhashSignal().hash(sys.argv[1]))]:
    try:
        call()
    except RegistryError as exc:
        report[what] = str(exc)
report["imported"] = [n for n in ("imagehash", "scipy") if sys.modules.get(n)]
print(json.dumps(report))
"""


def test_registry_without_the_secondary_extra(media: dict[str, list[Path]]) -> None:
    # A real interpreter in which imagehash cannot be imported, as in a base install.
    path = str(media["image"][0])
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_IMAGEHASH, path], capture_output=True, check=True
    )
    report = json.loads(done.stdout)
    assert report["names"] == ["md5", "pdq", "sha256", "vpdq"]
    assert report["pdq"] == REGISTRY.get("pdq").hash(path).hash.hex()
    for what in ("get", "hash"):
        assert "'secondary' extra" in report[what], what
        assert "pip install 'blindmatch[secondary]'" in report[what]
    assert report["imported"] == []


def test_secondary_signals_import_imagehash_on_first_use() -> None:
    code = (
        "import sys\n"
        "from blindmatch.fingerprint import default_registry\n"
        "registry = default_registry()\n"
        "print(sorted({'imagehash', 'scipy'} & set(sys.modules)), 'phash' in registry)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert done.stdout.decode().split() == ["[]", "True"]


def test_vpdq_text_layout() -> None:
    frame = VideoFrame(frame_number=10, timestamp=1.0, pdq=PdqHash(bytes(32)), quality=77)
    value = VideoFingerprint(frames=(frame,), fps=10.0, seconds_per_hash=1.0)
    text = VpdqSignal().to_text(value)
    assert text == "vpdq,10.0,1.0\n10,77," + "0" * 64 + ",1.0"


@pytest.mark.parametrize(
    "text",
    [
        "vpdq,10.0",
        "vpdx,10.0,1.0",
        "vpdq,nan,1.0",
        "vpdq,inf,1.0",
        "vpdq,-1.0,1.0",
        "vpdq,10.0,1.0\n-1,50," + "0" * 64 + ",0.0",
        "vpdq,10.0,1.0\n1,50," + "0" * 63 + ",0.0",
        "vpdq,10.0,1.0\n1,50," + "0" * 64,
        "vpdq,10.0,1.0\n",
        "vpdq, 10.0,1.0",
    ],
    ids=repr,
)
def test_vpdq_text_rejects_malformed(text: str) -> None:
    with pytest.raises(InvalidEncoding):
        VpdqSignal().from_text(text)


def _video_of(*frames: tuple[int, int]) -> VideoFingerprint:
    """A fingerprint whose frame i has hash ``from_int(value)`` spread over all 256 bits."""
    built = []
    for number, (value, quality) in enumerate(frames):
        pattern = int.from_bytes(bytes([value]) * 32, "big")
        built.append(
            VideoFrame(
                frame_number=number,
                timestamp=float(number),
                pdq=PdqHash.from_int(pattern),
                quality=quality,
            )
        )
    return VideoFingerprint(frames=tuple(built), fps=1.0, seconds_per_hash=1.0)


def test_vpdq_distance_is_the_worse_direction_in_percent() -> None:
    signal = VpdqSignal()
    # Byte patterns 0x00, 0xff, 0x0f, 0x33 are >= 64 bits apart: no cross matches.
    query = _video_of((0x00, 90), (0xFF, 90), (0x0F, 90), (0x33, 90))
    compared = _video_of((0x00, 90), (0xFF, 90), (0x0F, 90))
    shares = signal.video_match(query, compared)
    assert (shares.query_pct, shares.compared_pct) == (75.0, 100.0)
    assert signal.distance(query, compared) == signal.distance(compared, query) == 25
    assert not signal.matches(query, compared)
    # 3 of 3 vs 3 of 3 once the extra frame is low quality: it takes no part.
    query_low = _video_of((0x00, 90), (0xFF, 90), (0x0F, 90), (0x33, 49))
    assert signal.distance(query_low, compared) == 0
    assert signal.matches(query_low, compared)


def test_vpdq_duplicate_frames_count_once() -> None:
    signal = VpdqSignal()
    query = _video_of((0x00, 90), (0x00, 90), (0x00, 90), (0xFF, 90))
    compared = _video_of((0x00, 90))
    assert signal.video_match(query, compared).query_pct == 50.0
    assert signal.distance(query, compared) == 50


def test_vpdq_video_without_quality_frames_matches_nothing() -> None:
    signal = VpdqSignal()
    dull = _video_of((0x00, 10), (0xFF, 49))
    assert signal.quality(dull) == 49
    assert signal.distance(dull, dull) == 100
    assert not signal.matches(dull, dull)
    empty = VideoFingerprint(frames=(), fps=1.0, seconds_per_hash=1.0)
    assert signal.quality(empty) == 0
    assert signal.from_text(signal.to_text(empty)) == empty
