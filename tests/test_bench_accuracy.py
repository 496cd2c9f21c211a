"""Smoke test of the accuracy benchmark (benchmarks/bench_accuracy.py) on tiny inputs.

It checks that the evaluation is consistent with itself and with the real protocol (the
figures themselves are the benchmark's, not the test's): the private protocol decides
exactly as the plaintext band rule, counts add up, an unedited copy always matches, the
analytic curve gives the figures of docs/design.md, and the report and plots are written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from benchmarks import accuracy_data as data
from benchmarks import accuracy_report
from benchmarks.bench_accuracy import Config, run, write

from blindmatch.psi.bands import pdq_banding

TINY = Config(
    generated=2,
    photographs=1,
    unrelated_extra=3,
    flips_per_distance=1,
    protocol_uploads=12,
    leak_references=6,
    leak_uploads=4,
    cost_rounds=1,
    cost_uploads=1,
    build_references=2,
)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("accuracy")
    config = Config(**{**vars(TINY), "out": out})
    found = run(config)
    write(found, config)
    return found, out


def test_the_protocol_decides_as_the_plaintext_rule(
    results: tuple[dict[str, Any], Path],
) -> None:
    check = results[0]["protocol_check"]
    assert check["uploads"] == 12
    assert check["uploads_matched_protocol"] > 0  # the sample holds real matches
    assert check["decisions_equal"] == check["uploads"]
    assert check["all_equal"] is True
    leak = results[0]["leakage"]
    assert leak["protocol_matches"] == leak["plaintext_matches"]


def test_dihedral_queries_decide_as_any_variant(results: tuple[dict[str, Any], Path]) -> None:
    check = results[0]["protocol_check"]["dihedral"]
    assert check["mirrored_or_rotated"] > 0
    assert check["uploads_matched_protocol"] > 0
    # One match per (upload, report), however many of the 8 variants release it.
    assert check["matches"] == check["uploads_matched_protocol"]
    assert check["all_equal"] is True


def test_counts_add_up(results: tuple[dict[str, Any], Path]) -> None:
    found = results[0]
    recall = found["recall"]
    pictures = found["meta"]["pictures"]
    originals = pictures["generated"] + len(pictures["photographs"])
    assert recall["pairs"] == originals * len(data.EDITS) == len(recall["distances"])
    distances = np.array(recall["distances"])
    edited = np.array(recall["groups"]) != "dihedral"
    for row in recall["by_count"].values():
        binned = sum(v["pairs"] for v in row["curve_natural"].values())
        assert binned == int((edited & (distances < 132)).sum())
        assert row["pairs_d_le_31"] == int((edited & (distances <= 31)).sum())
        assert row["curve_flips"]["0"]["rate"] == 1.0  # an unedited copy always matches
        for value in row["per_edit"].values():
            assert 0.0 <= value["recall"] <= value["recall_dihedral"] <= 1.0
    fa = found["false_accepts"]
    assert sum(fa["histogram"]) == fa["pairs"] == math.comb(fa["pictures"], 2)
    for row in fa["by_count"].values():
        assert row["pairs"] == fa["pairs"]
        assert row["accepted"] <= row["accepted_dihedral"]  # variant 0 is the upload itself
        growth = [row["per_upload"][str(n)] for n in (10**4, 10**5, 10**6, 10**7)]
        assert growth == sorted(growth)


def test_report_and_plots_are_written(results: tuple[dict[str, Any], Path]) -> None:
    out = results[1]
    report = (out / "accuracy.md").read_text("utf-8")
    for target in ("d <= 31", "d = 31", "N = 10^6", "tag hits", "1.2x"):
        assert target in report
    assert (out / "accuracy.json").stat().st_size > 1000
    for name in accuracy_report.PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_analytic_curve_gives_the_design_figures() -> None:
    accept = data.analytic_accept([20, 28, 31, 45, 60], 384)
    assert accept[0] > 0.9999
    assert round(float(accept[1]), 3) == 0.995
    assert round(float(accept[2]), 3) == 0.945
    assert round(float(accept[3]), 2) == 0.09
    assert 6e-4 < accept[4] < 8e-4
    # Far from the threshold the tail is its first term, C(L, 2) p^2 (1 - p)^(L - 2), which
    # the log-space sum keeps and 1 - P(0) - P(1) would lose to cancellation.
    p = math.comb(128, 32) / math.comb(256, 32)
    first_term = math.comb(384, 2) * p**2 * (1 - p) ** 382
    assert math.isclose(float(data.analytic_accept([128], 384)[0]), first_term, rel_tol=1e-6)


def test_plaintext_rule_counts_agreeing_bands() -> None:
    banding = pdq_banding(256)
    rng = np.random.default_rng(1)
    reference = rng.bytes(32)
    same = data.band_matrix(banding, [reference])
    assert data.agreeing_bands(same, same)[0] == 256
    flipped = data.flip_bits(reference, 40, rng)
    assert data.distances([reference], [flipped])[0] == 40
    agreeing = data.agreeing_bands(data.band_matrix(banding, [flipped]), same)[0]
    positions = banding.positions()
    bits = np.unpackbits(np.frombuffer(reference, dtype=np.uint8)) != np.unpackbits(
        np.frombuffer(flipped, dtype=np.uint8)
    )
    # bit p of the big-endian integer is unpacked bit 255 - p
    untouched = sum(not any(bits[255 - p] for p in band) for band in positions)
    assert agreeing == untouched
