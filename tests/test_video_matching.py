"""Private vPDQ matching: grouped index (format version 2), the video layer, simulate.

Real videos (encoded with PyAV from photo-like scenes), the real index build, the real
sessions over encoded messages.
"""

from __future__ import annotations

import importlib.util
import json
import random
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from blindmatch import errors
from blindmatch.fingerprint import video as vpdq
from blindmatch.fingerprint.signals import SignalRegistry, SignalType, VpdqSignal
from blindmatch.fingerprint.types import BandingSpec, PdqHash, VideoFingerprint, VideoFrame
from blindmatch.protocols import (
    ClearinghouseSession,
    Match,
    PlatformSession,
    SessionPair,
    Upload,
    VideoMatcher,
    signal_banding,
    video_references,
)
from blindmatch.protocols.video import FRAME_REF_PREFIX
from blindmatch.psi import oprf
from blindmatch.psi._index_format import NO_GROUP
from blindmatch.psi.index import (
    BuiltIndex,
    Index,
    Reference,
    add_references,
    build_index,
    merge_indexes,
)
from blindmatch.psi.keys import SecretKey
from blindmatch.samples import photo_like, video_codec, write_video
from blindmatch.simulate import SIGNALS, simulate
from index_tools import reseal

KEY = SecretKey.derive(bytes(range(32)), b"test-video", mode=oprf.Mode.VOPRF, epoch=4)
SIGNAL = VpdqSignal()
VECTORS = Path(__file__).parent / "vectors" / "index"
_spec = importlib.util.spec_from_file_location("index_generate", VECTORS / "generate.py")
assert _spec is not None
assert _spec.loader is not None
GENERATE = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(GENERATE)

FPS = 8
SIZE = (192, 144)


def _scenes(seed: int, count: int) -> list[np.ndarray[Any, np.dtype[np.uint8]]]:
    rng = np.random.default_rng(seed)
    return [photo_like(rng, *SIZE) for _ in range(count)]


def _write(
    path: Path, scenes: list[Any], *, scale: float = 1.0, bitrate: str | None = None
) -> Path:
    """One second per scene (the scene held still), so vPDQ hashes one frame per scene."""
    frames = []
    for scene in scenes:
        image = scene
        if scale != 1.0:
            size = (int(SIZE[0] * scale), int(SIZE[1] * scale))
            image = np.asarray(Image.fromarray(scene).resize(size, Image.Resampling.BILINEAR))
        frames.extend([image] * FPS)
    if bitrate is None:
        codec = video_codec()
        options = {"crf": "18"} if codec == "libx264" else {}
        write_video(path, frames, FPS, codec=codec, options=options)
    else:
        write_video(path, frames, FPS, codec="mpeg4", options={"b": bitrate})
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    reported = _scenes(11, 5)
    other = _scenes(12, 4)
    unrelated = _scenes(13, 5)
    return {
        "original": _write(root / "original.mp4", reported),
        "reencoded": _write(root / "reencoded.mp4", reported, bitrate="300000"),
        "resized": _write(root / "resized.mp4", reported, scale=0.5),
        "trimmed": _write(root / "trimmed.mp4", reported[:3]),
        "other": _write(root / "other.mp4", other),
        "unrelated": _write(root / "unrelated.mp4", unrelated),
    }


@dataclass
class Run:
    built: BuiltIndex
    index: Index
    fingerprints: dict[str, VideoFingerprint]
    found: list[Match]
    matcher: VideoMatcher
    pair: SessionPair
    platform: PlatformSession


UPLOADS = ("original", "reencoded", "resized", "trimmed", "unrelated")


def _run(
    references: dict[str, VideoFingerprint],
    uploads: dict[str, VideoFingerprint],
    signal: VpdqSignal = SIGNAL,
    **thresholds: float,
) -> Run:
    refs = [r for report, fp in references.items() for r in video_references(report, fp, signal)]
    built = build_index(KEY, signal_banding(signal), refs, grouped=True, processes=1)
    index = Index.from_bytes(built.to_bytes())
    platform = PlatformSession([index], KEY.public_key, batch_size=512)
    matcher = VideoMatcher(index, signal, **thresholds)
    for name, fp in uploads.items():
        platform.add_uploads(matcher.frame_uploads(name, fp))
    clearinghouse = ClearinghouseSession(KEY, element_limit=1 << 22, max_batch=512)
    pair = SessionPair(platform, clearinghouse)
    found = pair.run()
    assert pair.audit(1) == 1
    assert matcher.add_matches(found) == []  # every match is a frame match
    fingerprints = {**references, **uploads}
    return Run(built, index, fingerprints, found, matcher, pair, platform)


@pytest.fixture(scope="module")
def run(media: dict[str, Path]) -> Run:
    fps = {name: SIGNAL.hash(path) for name, path in media.items()}
    return _run(
        {"report-A": fps["original"], "report-B": fps["other"]},
        {name: fps[name] for name in UPLOADS},
    )


# --------------------------------------------------------------------------- matching


def test_sample_media_is_what_the_tests_assume(run: Run) -> None:
    for name in ("original", "reencoded", "resized"):
        assert len(SIGNAL.match_items(run.fingerprints[name])) == 5, name
    assert len(SIGNAL.match_items(run.fingerprints["trimmed"])) == 3


def test_edited_copies_match_privately_once_per_report(run: Run) -> None:
    results = run.matcher.results(run.platform.unfinished())
    assert not run.platform.unfinished()
    by_upload = {r.upload_ref: r for r in results}
    assert len(by_upload) == len(results)  # one video match per (upload, report)
    assert sorted(by_upload) == ["original", "reencoded", "resized", "trimmed"]
    for result in results:
        assert run.built.handles[result.handle] == "report-A"
        assert result.signal == "vpdq"
        assert result.report_frames == 5
        assert result.query_pct == 100.0
    assert by_upload["original"].compared_pct == 100.0
    assert by_upload["trimmed"].compared_pct == 60.0
    assert by_upload["trimmed"].report_frames_matched == 3
    # The plaintext vPDQ rule agrees with the private one on every upload.
    original = run.fingerprints["original"]
    for name in UPLOADS:
        assert vpdq.is_match(run.fingerprints[name], original) == (name in by_upload), name


def test_an_unrelated_video_matches_nothing(run: Run) -> None:
    frames = {f"{FRAME_REF_PREFIX}{UPLOADS.index('unrelated')}:{i}" for i in range(5)}
    assert not any(m.upload_ref in frames for m in run.found)
    assert "unrelated" not in {r.upload_ref for r in run.matcher.results()}


def _replay(run: Run, **thresholds: float) -> set[str]:
    """The same session's frame matches under other thresholds (frame refs are assigned
    in registration order, so registering the same videos again gives the same refs)."""
    matcher = VideoMatcher(run.index, SIGNAL, **thresholds)
    for name in UPLOADS:
        matcher.frame_uploads(name, run.fingerprints[name])
    assert matcher.add_matches(run.found) == []
    return {r.upload_ref for r in matcher.results()}


def test_thresholds_are_configurable(run: Run) -> None:
    assert "trimmed" in _replay(run, compared_threshold=60.0)
    assert "trimmed" not in _replay(run, compared_threshold=60.5)
    assert _replay(run, query_threshold=100.0, compared_threshold=100.0) == {
        "original",
        "reencoded",
        "resized",
    }


@pytest.mark.parametrize("bad", [-1.0, 100.5, float("nan"), True, "80"])
def test_thresholds_are_percentages(run: Run, bad: Any) -> None:
    with pytest.raises((errors.LocalProtocolError, TypeError)):
        VideoMatcher(run.index, SIGNAL, query_threshold=bad)


def test_other_matches_pass_through_and_unfinished_videos_wait(run: Run) -> None:
    matcher = VideoMatcher(run.index, SIGNAL)
    uploads = matcher.frame_uploads("clip", run.fingerprints["original"])
    foreign = Match("photo.jpg", "pdq", run.found[0].handle)
    assert matcher.add_matches([foreign]) == [foreign]
    assert matcher.results([u.ref for u in uploads[:1]]) == []
    assert matcher.unfinished_videos([uploads[0].ref, "photo.jpg"]) == ("clip",)


def test_the_matcher_needs_the_grouped_vpdq_index() -> None:
    plain = build_index(KEY, signal_banding(SIGNAL), [], processes=1)
    with pytest.raises(errors.LocalProtocolError):
        VideoMatcher(Index.from_bytes(plain.to_bytes()))
    with pytest.raises(TypeError):
        VideoMatcher(plain)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- cost bound


def _long_video(frames: int, seed: int) -> VideoFingerprint:
    rng = random.Random(seed)
    return VideoFingerprint(
        frames=tuple(
            VideoFrame(i * 30, float(i), PdqHash(rng.randbytes(32)), 90) for i in range(frames)
        ),
        fps=30.0,
        seconds_per_hash=1.0,
    )


def test_a_long_video_costs_at_most_the_bound() -> None:
    long = _long_video(3600, 1)  # an hour at one hash per second
    items = SIGNAL.match_items(long)
    assert len(items) == vpdq.DEFAULT_MAX_MATCH_FRAMES == SIGNAL.max_match_frames == 64
    assert items[0] == long.frames[0]
    assert items[-1] == long.frames[-1]
    assert len(video_references("r", long)) == 64
    # The whole protocol, with a small bound: the elements sent are the bound's.
    small = VpdqSignal(max_match_frames=3)
    result = _run({"long": long}, {"copy": long}, small)
    assert SIGNAL.banding is not None
    bands, t = SIGNAL.banding.count, SIGNAL.banding.threshold
    assert result.index.entry_count == 3 + len(result.index.canaries)
    queried = result.platform.stats.elements_sent - result.platform.stats.pad_elements
    # Every frame on all L bands; a canary on t random bands (docs/protocol.md 8.6).
    assert queried == 3 * bands + result.platform.stats.canary_queries * t
    [match] = result.matcher.results()
    assert (match.frames_queried, match.report_frames) == (3, 3)
    assert match.query_pct == match.compared_pct == 100.0


def test_sample_frames_spreads_evenly() -> None:
    frames = _long_video(10, 2).frames
    assert vpdq.sample_frames(frames, 20) == frames
    assert vpdq.sample_frames(frames, 1) == frames[:1]
    assert vpdq.sample_frames(frames, 4) == (frames[0], frames[3], frames[6], frames[9])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(errors.InvalidArgument):
            vpdq.sample_frames(frames, bad)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidArgument):
        VpdqSignal(max_match_frames=0)


def _still_video(frames: int, seed: int) -> VideoFingerprint:
    """A still scene whose hash wobbles: every frame within 6 bits of the first."""
    rng = random.Random(seed)
    base = int.from_bytes(rng.randbytes(32), "big")
    hashes = [base] + [
        base ^ sum(1 << b for b in rng.sample(range(256), 6)) for _ in range(1, frames)
    ]
    return VideoFingerprint(
        frames=tuple(
            VideoFrame(i * 30, float(i), PdqHash(h.to_bytes(32, "big")), 90)
            for i, h in enumerate(hashes)
        ),
        fps=30.0,
        seconds_per_hash=1.0,
    )


def test_near_duplicate_frames_are_one_frame() -> None:
    still = _still_video(20, 5)
    assert len({bytes(f.pdq) for f in still.frames}) == 20  # vPDQ's exact dedup keeps all
    assert SIGNAL.match_items(still) == still.frames[:1]
    mixed = VideoFingerprint(
        frames=_long_video(3, 6).frames + still.frames + _long_video(2, 7).frames,
        fps=30.0,
        seconds_per_hash=1.0,
    )
    assert len(SIGNAL.match_items(mixed)) == 3 + 1 + 2


def test_a_still_video_matches_without_overflowing_the_lookup() -> None:
    """The reason near-duplicates go: an uploaded frame agrees on (nearly) every band with
    every reported frame a few bits away, so twenty near-copies in the index overflow the
    platform's max_hits (the session fails on an honest index), one does not."""
    still = _still_video(20, 8)
    copies = [Reference("r", "vpdq", bytes(f.pdq)) for f in still.frames]
    dense = build_index(KEY, signal_banding(SIGNAL), copies, grouped=True, processes=1)
    platform = PlatformSession([Index.from_bytes(dense.to_bytes())], KEY.public_key)
    platform.add_uploads([Upload("frame", "vpdq", bytes(still.frames[0].pdq), 90)])
    pair = SessionPair(platform, ClearinghouseSession(KEY, element_limit=1 << 20))
    with pytest.raises(errors.IndexTooDense):
        pair.run()
    result = _run({"r": still}, {"copy": _still_video(20, 8)})
    [match] = result.matcher.results()
    assert (match.frames_queried, match.report_frames) == (1, 1)


def test_duplicate_and_poor_frames_are_not_banded() -> None:
    good = _long_video(3, 3).frames
    poor = VideoFrame(99, 9.0, PdqHash(bytes(range(32))), 49)
    fp = VideoFingerprint(frames=(*good, good[0], poor), fps=30.0, seconds_per_hash=1.0)
    assert SIGNAL.match_items(fp) == good


# --------------------------------------------------------------------------- what leaks


def _substrings(data: bytes, width: int = 4) -> set[bytes]:
    return {data[i : i + width] for i in range(len(data) - width + 1)}


def test_no_frame_hash_bits_in_the_index_or_on_the_wire(run: Run) -> None:
    data = run.built.to_bytes()
    hashes = [bytes(f.pdq) for fp in run.fingerprints.values() for f in fp.frames]
    pieces = set().union(*(_substrings(h) for h in hashes))
    found = [p for p in pieces if p in data]
    # A random 4-byte string occurs in a file of n bytes with probability about n / 2^32.
    assert len(found) <= 1, f"{len(found)} hash substrings found in the index"
    wire = b"".join(entry.data for entry in run.pair.transcript)
    assert not any(h[:8] in wire for h in hashes)


def test_the_groups_sections_hold_only_the_partition(run: Run) -> None:
    """Per handle a group number, per group a random handle: the frame counts, no hash."""
    index, layout = run.index, run.index.layout
    data = run.built.to_bytes()
    groups = np.frombuffer(
        data, dtype="<u4", count=index.header.handle_count, offset=layout.handle_groups_offset
    )
    sizes = sorted(np.bincount(groups[groups != NO_GROUP]).tolist())
    assert sizes == [4, 5]  # report-B's 4 frames, report-A's 5
    assert int(np.sum(groups == NO_GROUP)) == len(index.canaries)
    assert index.header.group_count == 2
    assert index.header.version == 2


# --------------------------------------------------------------------------- index format


def test_group_of_every_handle(run: Run) -> None:
    by_report: dict[str, set[bytes]] = {}
    for handle, report in run.built.handles.items():
        group = run.index.group_of(handle)
        if group is None:
            # A group handle is in the private map but is no frame handle of the file.
            assert handle not in [c.handle for c in run.index.canaries]
            continue
        assert run.built.handles[group.handle] == report
        by_report.setdefault(report, set()).add(bytes(group.handle))
        assert group.size == {"report-A": 5, "report-B": 4}[report]
    assert all(len(handles) == 1 for handles in by_report.values())
    assert all(run.index.group_of(c.handle) is None for c in run.index.canaries)


def test_version_one_indexes_are_unchanged_and_ungrouped() -> None:
    data = (VECTORS / "pdq-256.bmidx").read_bytes()
    assert struct.unpack_from("<H", data, 8) == (1,)
    index = Index.from_bytes(data)
    assert not index.grouped
    assert index.header.group_count is None
    with pytest.raises(errors.InvalidParameter):
        index.group_of(index.canaries[0].handle)


def test_the_vpdq_golden_is_version_two() -> None:
    data = (VECTORS / "vpdq-grouped.bmidx").read_bytes()
    assert struct.unpack_from("<HBBIQQIHHBBBBIHI", data, 8)[0] == 2
    index = Index.from_bytes(data)
    assert index.grouped
    assert index.header.group_count == 2
    assert signal_banding(SIGNAL) == GENERATE.VPDQ_BANDING == index.header.banding


def test_grouped_indexes_have_no_deltas(run: Run) -> None:
    with pytest.raises(errors.InvalidParameter):
        add_references(KEY, run.index.header, [Reference("x", "vpdq", bytes(32))], processes=1)
    with pytest.raises(errors.IndexFormatError):
        merge_indexes(run.index, [])


def _grouped_golden() -> tuple[bytearray, Index]:
    data = (VECTORS / "vpdq-grouped.bmidx").read_bytes()
    return bytearray(data), Index.from_bytes(data)


def test_reader_refuses_bad_groups() -> None:
    data, index = _grouped_golden()
    layout, count = index.layout, index.header.handle_count
    start = layout.handle_groups_offset
    groups = list(struct.unpack_from(f"<{count}I", data, start))
    cases: list[tuple[list[int], str]] = [
        ([2 if g != NO_GROUP else g for g in groups], "names a group"),
        ([0 if g != NO_GROUP else g for g in groups], "at least one handle"),
    ]
    for changed, message in cases:
        forged = bytearray(data)
        struct.pack_into(f"<{count}I", forged, start, *changed)
        with pytest.raises(errors.IndexFormatError, match=message):
            Index.from_bytes(reseal(forged))
    swapped = bytearray(data)
    first = bytes(data[layout.groups_offset : layout.groups_offset + 16])
    swapped[layout.groups_offset : layout.groups_offset + 16] = data[
        layout.groups_offset + 16 : layout.groups_offset + 32
    ]
    swapped[layout.groups_offset + 16 : layout.groups_offset + 32] = first
    with pytest.raises(errors.IndexFormatError, match="ascending"):
        Index.from_bytes(reseal(swapped))
    padded = bytearray(data)
    padded[start - 1] = 1  # the padding after the handles
    with pytest.raises(errors.IndexFormatError, match="padding"):
        Index.from_bytes(reseal(padded))
    for cut in (layout.groups_offset, len(data) - 1, layout.handle_groups_offset):
        with pytest.raises(errors.IndexFormatError):
            Index.from_bytes(bytes(data[:cut]), verify=False)


def test_reader_refuses_a_group_count_in_version_one() -> None:
    data = bytearray((VECTORS / "pdq-256.bmidx").read_bytes())
    data[50] = 1
    with pytest.raises(errors.IndexFormatError, match="reserved"):
        Index.from_bytes(reseal(data))


def test_every_byte_of_the_groups_sections_is_covered_by_the_digest() -> None:
    data, index = _grouped_golden()
    for offset in (index.layout.handle_groups_offset, index.layout.groups_offset, len(data) - 1):
        flipped = bytearray(data)
        flipped[offset] ^= 1
        with pytest.raises(errors.IndexFormatError):
            Index.from_bytes(bytes(flipped))


# --------------------------------------------------------------------------- signal type


def test_the_vpdq_signal_is_grouped_and_banded_like_pdq() -> None:
    assert SIGNAL.grouped
    assert SIGNAL.banding == BandingSpec(256, 32, 384, 2, b"blindmatch/v1/vpdq-bands/seed-0")
    assert SIGNAL.query_threshold == vpdq.DEFAULT_QUERY_THRESHOLD
    assert SIGNAL.frame_distance_threshold == vpdq.DEFAULT_DISTANCE_THRESHOLD
    assert "vpdq" in SIGNALS
    with pytest.raises(TypeError):
        SIGNAL.match_bytes(_long_video(1, 4))
    with pytest.raises(TypeError):
        SIGNAL.match_items(b"not a fingerprint")  # type: ignore[arg-type]


def test_the_registry_refuses_a_grouped_signal_without_a_fuzzy_banding() -> None:
    class Broken(VpdqSignal):
        banding = None

    with pytest.raises(errors.RegistryError, match="grouped"):
        SignalRegistry([Broken()])
    registered: SignalType[Any] = VpdqSignal()
    assert SignalRegistry([registered]).get("vpdq").grouped


# --------------------------------------------------------------------------- simulate


@pytest.fixture(scope="module")
def folders(media: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("simulate-videos")
    refs, ups = root / "refs", root / "ups"
    refs.mkdir()
    ups.mkdir()
    (refs / "reported.mp4").write_bytes(media["original"].read_bytes())
    for name in ("trimmed", "unrelated"):
        (ups / f"{name}.mp4").write_bytes(media[name].read_bytes())
    Image.fromarray(_scenes(14, 1)[0]).save(ups / "photo.png")
    return refs, ups


def test_simulate_matches_videos_privately(folders: tuple[Path, Path]) -> None:
    refs, ups = folders
    result = simulate(refs, ups, signals=["md5", "vpdq"], processes=1)
    assert [(m.upload, m.report, m.signal) for m in result.matches] == [
        (str(ups / "trimmed.mp4"), "reported.mp4", "vpdq")
    ]
    summary = result.summary()
    videos = summary["videos"]
    assert isinstance(videos, dict)
    assert videos["reported_videos"] == 1
    assert videos["reference_frames"] == 5
    assert videos["frames_queried"] == 3 + 5
    [match] = videos["video_matches"]
    assert match["query_pct"] == 100.0
    assert match["compared_pct"] == 60.0
    assert summary["skipped"] == {"vpdq": 1}  # the photo
    platform = summary["platform"]
    assert isinstance(platform, dict)
    assert platform["unmatched_uploads_with_tag_hits"] == {}


def test_cli_simulate_with_every_signal(folders: tuple[Path, Path]) -> None:
    refs, ups = folders
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "blindmatch",
            "simulate",
            "--references",
            str(refs),
            "--uploads",
            str(ups),
            "--signals",
            "md5,sha256,pdq,vpdq",
            "--processes",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["upload"], r["signal"]) for r in lines[:-1]] == [(str(ups / "trimmed.mp4"), "vpdq")]
    summary = lines[-1]["summary"]
    assert summary["videos"]["video_matches"][0]["upload"] == str(ups / "trimmed.mp4")
    assert summary["uploads"] == {"md5": 3, "pdq": 1, "sha256": 3, "vpdq": 2}


def test_mutated_groups_sections_open_or_raise_typed_errors() -> None:
    """Seeded mutations of the groups sections and the group count (re-sealed, so the
    structural checks are reached): an index that opens, or a typed error."""
    data, index = _grouped_golden()
    rng = random.Random(10)
    spots = [50, 51, 8, *range(index.layout.handle_groups_offset - 4, len(data))]
    opened = 0
    for _ in range(400):
        forged = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            forged[rng.choice(spots)] = rng.randrange(256)
        try:
            mutated = Index.from_bytes(reseal(forged), verify=rng.random() < 0.5)
        except errors.BlindmatchError:
            continue
        opened += 1
        assert mutated.grouped  # a version-1 reading of these bytes never passes
        for canary in mutated.canaries:
            group = mutated.group_of(canary.handle)
            assert group is None or group.size >= 1
    assert opened > 0
