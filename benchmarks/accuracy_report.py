"""The markdown report and the PNG plots of ``bench_accuracy`` (from its JSON results)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.accuracy_data import analytic_accept

__all__ = ["PLOTS", "markdown", "plots"]

PLOTS = (
    "accuracy_recall.png",
    "accuracy_false_accepts.png",
    "accuracy_leakage.png",
    "accuracy_distances.png",
)


def _f(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def markdown(results: dict[str, Any]) -> str:
    """The generated report (results/accuracy.md)."""
    meta, recall, check = results["meta"], results["recall"], results["protocol_check"]
    fa, leak, cost = results["false_accepts"], results["leakage"], results["cost"]
    r384 = recall["by_count"]["384"]
    lines = [
        "# Fuzzy PDQ matching: recall, false accepts, leakage, cost (measured)",
        "",
        f"One run of `python -m benchmarks accuracy` on {meta['machine']}, "
        f"{meta['seconds']:.0f} s. Pictures: {meta['pictures']['generated']} generated "
        f"(`blindmatch.samples.photo_like`) and {len(meta['pictures']['photographs'])} "
        "photographs shipped by scikit-image and matplotlib "
        f"({', '.join(meta['pictures']['photographs'])}); below the quality floor and left "
        f"out: {', '.join(meta['pictures']['below_quality_floor']) or 'none'}. "
        f"{recall['pairs']} (original, edited) pairs. Hand-written summary: docs/accuracy.md.",
        "",
        "## Targets",
        "",
        "| target | measured (L = 384 unless said) | verdict |",
        "|---|---|---|",
    ]
    flips31 = r384["recall_flips_at_31"]
    # 95% lower bound of the binomial proportion (normal approximation)
    at31_low = (
        flips31["rate"] - 1.96 * (flips31["rate"] * (1 - flips31["rate"]) / flips31["pairs"]) ** 0.5
    )
    ok_mean = r384["recall_d_le_31"] is not None and r384["recall_d_le_31"] >= 0.99
    at31 = r384["recall_flips_at_31"]["rate"]
    fa6 = fa["by_count"]["384"]["per_upload"]["1000000"]
    fa6d = fa["by_count"]["384"]["per_upload_dihedral"]["1000000"]
    leak6 = leak["projected_per_upload"]["1000000"]
    lines += [
        f"| mean recall >= 0.99 over edited pairs with d <= 31 | {_f(r384['recall_d_le_31'], 4)} "
        f"({r384['pairs_d_le_31']} pairs) | {_verdict(ok_mean)} |",
        f"| recall >= 0.94 at d = 31 | {_f(at31, 4)} on {r384['recall_flips_at_31']['pairs']} "
        f"pairs with 31 random bits flipped, 95% lower bound {_f(at31_low, 4)} (analytic "
        f"{_f(r384['analytic_at_31'], 4)}); "
        "natural pairs have even distances only (PDQ sets exactly 128 bits): "
        f"d = 30-32: {_f(r384['recall_d_30_32_natural']['rate'])} on "
        f"{r384['recall_d_30_32_natural']['pairs']} "
        f"| {_verdict(at31 is not None and at31 >= 0.94)} |",
        f"| false accepts <= 1e-3 per upload at N = 10^6 | {_f(fa6)} (projected from the "
        f"measured distance distribution; {_f(fa6d)} with dihedral queries) | "
        f"{_verdict(fa6 <= 1e-3 and fa6d <= 1e-3)} |",
        f"| single-band tag hits <= 0.5 per non-matching upload at N = 10^6 | {_f(leak6)} "
        f"projected (measured {leak['protocol_tag_hits']} hits over {leak['uploads']} uploads "
        f"at N = {leak['references']}) | {_verdict(leak6 <= 0.5)} |",
        f"| the real protocol decides as the plaintext rule | {check['decisions_equal']}/"
        f"{check['uploads']} uploads identical ({check['uploads_with_d_20_50']} of them at "
        f"d 20-50; {check['uploads_matched_protocol']} matched) | {_verdict(check['all_equal'])} |",
        f"| dihedral queries (`Upload.dihedral`) decide as 'any of the 8 variants' | "
        f"{check['dihedral']['decisions_equal']}/{check['dihedral']['uploads']} uploads identical "
        f"({check['dihedral']['mirrored_or_rotated']} mirrored or rotated; "
        f"{check['dihedral']['uploads_matched_protocol']} matched, "
        f"{check['dihedral']['matches']} matches) | {_verdict(check['dihedral']['all_equal'])} |",
    ]
    for count in ("256", "384", "512"):
        c = cost[count]["workers_1"]
        lines.append(
            f"| cost within 1.2x of the libsodium floor, L = {count}, 1 process | clearinghouse "
            f"{_f(c['clearinghouse_ratio'], 2)}x, platform {_f(c['platform_ratio'], 2)}x | "
            f"{_verdict(c['clearinghouse_ratio'] <= 1.2 and c['platform_ratio'] <= 1.2)} |"
        )
    lines += ["", "## Recall by band count", ""]
    lines += [
        "| L | recall d <= 31 (edited) | pairs | recall at d = 31 (bit flips) | analytic at 31 "
        "| recall d <= 31 (bit flips) |",
        "|---|---|---|---|---|---|",
    ]
    for count, row in recall["by_count"].items():
        lines.append(
            f"| {count} | {_f(row['recall_d_le_31'], 4)} | {row['pairs_d_le_31']} "
            f"| {_f(row['recall_flips_at_31']['rate'], 4)} | {_f(row['analytic_at_31'], 4)} "
            f"| {_f(row['recall_flips_le_31'], 4)} |"
        )
    lines += [
        "",
        "Per edit (L = 384): mean distance and recall, without and with dihedral queries (an "
        "upload matches if any of its 8 dihedral variants does).",
        "",
        "| edit | group | mean d | recall | mean d (dihedral) | recall (dihedral) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in r384["per_edit"].items():
        lines.append(
            f"| {name} | {row['group']} | {row['mean_d']:.1f} | {row['recall']:.3f} "
            f"| {row['mean_d_dihedral']:.1f} | {row['recall_dihedral']:.3f} |"
        )
    lines += [
        "",
        "![recall](accuracy_recall.png)",
        "",
        "## False accepts",
        "",
        f"Unrelated pictures: {fa['pictures']} ({fa['pairs']} pairs), distance mean "
        f"{fa['distance_mean']:.1f}, sd {fa['distance_sd']:.1f}, minimum {fa['distance_min']} "
        f"(dihedral: {fa['distance_min_dihedral']}), 0.1th percentile "
        f"{fa['distance_percentile_0.1']:.0f}.",
        "",
        "| L | accepted unrelated pairs | dihedral | single-band agreement rate | accept per "
        "pair (model) | per upload N=10^4 | 10^5 | 10^6 | 10^7 | 10^6 dihedral | 10^6 bound "
        "from band rate |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for count, row in fa["by_count"].items():
        pu = row["per_upload"]
        lines.append(
            f"| {count} | {row['accepted']}/{row['pairs']} | {row['accepted_dihedral']} "
            f"| {_f(row['band_agreement_rate'])} | {_f(row['per_pair_model'])} "
            f"| {_f(pu['10000'])} | {_f(pu['100000'])} | {_f(pu['1000000'])} "
            f"| {_f(pu['10000000'])} | {_f(row['per_upload_dihedral']['1000000'])} "
            f"| {_f(row['per_upload_bound']['1000000'])} |"
        )
    lines += [
        "",
        "The model: per upload, N times the mean over the measured distances of unrelated "
        "pairs of the analytic accept probability at that distance (x 8 with dihedral "
        "queries, with the distance of the closest variant). The bound: N C(L,2) p1^2 with "
        "p1 the measured single-band agreement rate (or its 95% Poisson bound when none was "
        "seen) -- as loose as the sample is small. Growth in N is linear in both.",
        "",
        "Accept rate of edited pairs by distance band (a copy edited that far is not meant to "
        "match; these are the near-duplicate false accepts):",
        "",
        "| L | band | edited pairs | accept rate | bit flips accept rate | analytic mean |",
        "|---|---|---|---|---|---|",
    ]
    for count, row in fa["by_count"].items():
        for band, value in row["edited_accept_by_band"].items():
            lines.append(
                f"| {count} | {band} | {value['natural']['pairs']} | "
                f"{_f(value['natural']['rate'])} | {_f(value['flips']['rate'])} | "
                f"{_f(value['analytic_mean'])} |"
            )
    lines += [
        "",
        "![false accepts](accuracy_false_accepts.png) ![distances](accuracy_distances.png)",
        "",
        "## Leakage (L = 384)",
        "",
        f"Index of N = {leak['references']} references ({leak['index_entries']} entries, "
        f"built in {leak['build_s']:.1f} s on 2 processes), {leak['uploads']} non-matching "
        f"uploads through the protocol: {leak['protocol_tag_hits']} single-band tag hits "
        f"({_f(leak['protocol_tag_hits_per_upload'])} per upload; expected "
        f"{_f(leak['expected_tag_hits_per_upload'])}); matches {leak['protocol_matches']} "
        f"(plaintext rule: {leak['plaintext_matches']}). Tag collisions among all "
        f"{leak['index_tags']} index tags: {leak['tag_collisions']}, rate "
        f"{_f(leak['tag_collision_rate'])} per pair (2^-32 = "
        f"{_f(leak['tag_collision_rate_expected'])}). True band agreements between unrelated "
        f"pictures: {fa['by_count']['384']['band_agreements']} in "
        f"{fa['by_count']['384']['pairs']} pairs x 384 bands; the projection uses "
        f"{_f(leak['band_agreement_rate_unrelated_pictures'])} per (pair, band), the larger "
        "of that rate and the analytic band agreement over their measured distances.",
        "",
        "| N | projected tag hits per upload | of which tag collisions |",
        "|---|---|---|",
    ]
    for n, value in leak["projected_per_upload"].items():
        lines.append(
            f"| {int(n):.0e} | {_f(value)} "
            f"| {_f(leak['projected_per_upload_collisions_only'][n])} |"
        )
    lines += [
        "",
        "![leakage](accuracy_leakage.png)",
        "",
        "## Cost per upload",
        "",
        "Floors are timed in the same round: clearinghouse 1 scalar multiplication per "
        "element, platform hash-to-group + 2 scalar multiplications per element; the floor "
        "columns are L elements' worth, the ratios are per element sent (pads and canaries "
        "included, as in `benchmarks/results/protocol.md`), the ms columns per upload with "
        "its share of pads and canaries. 1 process: process CPU time; 2 "
        "workers (`ThreadedEvaluator(2)` in both sessions): wall time, against the same "
        "one-core floor. Per upload includes its share of canaries and pads. The 60-second "
        "video row is **60 per-frame PDQ uploads** (vPDQ samples 1 frame per second), "
        "computed, not yet run through the video layer.",
        "",
        "| L | workers | CH ms | CH floor ms | CH ratio | platform ms | platform floor ms "
        "| platform ratio | bytes up | bytes down | 60 s video CH / platform ms | index B/ref "
        "| build us/(ref, band) 1 / 2 processes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for count, row in cost.items():
        for workers in ("1", "2"):
            c = row[f"workers_{workers}"]
            lines.append(
                f"| {count} | {workers} | {c['clearinghouse_ms_per_upload']:.1f} "
                f"| {c['clearinghouse_floor_ms']:.1f} | {c['clearinghouse_ratio']:.2f} "
                f"| {c['platform_ms_per_upload']:.1f} | {c['platform_floor_ms']:.1f} "
                f"| {c['platform_ratio']:.2f} | {c['bytes_up_per_upload']:.0f} "
                f"| {c['bytes_down_per_upload']:.0f} | {c['video_60s']['clearinghouse_ms']:.0f} / "
                f"{c['video_60s']['platform_ms']:.0f} | {row['index_bytes_per_reference']:.0f} "
                f"| {row['build_us_per_reference_band']['1']:.1f} / "
                f"{row['build_us_per_reference_band']['2']:.1f} |"
            )
    lines.append("")
    return "\n".join(lines)


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    """Draw the PNG plots (matplotlib, Agg) into ``out``; their paths."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    recall = results["recall"]
    grid = np.arange(0, 70)

    fig, ax = plt.subplots(figsize=(8, 5))
    for count, colour in (("256", "tab:blue"), ("384", "tab:orange"), ("512", "tab:green")):
        ax.plot(grid, analytic_accept(grid, int(count)), color=colour, label=f"analytic L={count}")
        row = recall["by_count"][count]
        flips = row["curve_flips"]
        ks = [int(k) for k in flips]
        ax.plot(
            ks,
            [flips[str(k)]["rate"] for k in ks],
            ".",
            color=colour,
            ms=4,
            label=f"bit flips L={count}",
        )
        natural = row["curve_natural"]
        xs = [int(k) + 1.5 for k in natural if int(k) < 70]
        ys = [natural[str(int(x - 1.5))]["rate"] for x in xs]
        sizes = [8 + 2 * natural[str(int(x - 1.5))]["pairs"] ** 0.5 for x in xs]
        ax.scatter(
            xs,
            ys,
            s=sizes,
            facecolors="none",
            edgecolors=colour,
            label=f"edited pictures L={count} (area ~ pairs)",
        )
    ax.axvline(31, color="grey", ls="--", lw=1)
    ax.axhline(0.94, color="grey", ls=":", lw=1)
    ax.set_xlabel("PDQ distance d (bits of 256)")
    ax.set_ylabel("recall (report released)")
    ax.set_title("Recall vs PDQ distance: measured and analytic (t = 2, k = 32)")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    written.append(out / PLOTS[0])
    fig.savefig(written[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fa = results["false_accepts"]
    fig, ax = plt.subplots(figsize=(8, 5))
    ns = np.logspace(4, 7, 31)
    for count, colour in (("256", "tab:blue"), ("384", "tab:orange"), ("512", "tab:green")):
        row = fa["by_count"][count]
        ax.loglog(ns, ns * row["per_pair_model"], color=colour, label=f"model L={count}")
        ax.loglog(
            ns,
            ns * row["per_pair_model_dihedral"],
            color=colour,
            ls="--",
            label=f"model, dihedral L={count}",
        )
        ax.loglog(
            ns,
            ns * row["per_pair_bound_from_band_rate"],
            color=colour,
            ls=":",
            label=f"bound from band rate L={count}",
        )
    ax.axhline(1e-3, color="red", lw=1, label="target 1e-3 per upload")
    ax.axvline(1e6, color="grey", lw=1, ls="--")
    ax.set_xlabel("references N")
    ax.set_ylabel("false accepts per upload (unrelated pictures)")
    ax.set_title("False accepts per upload vs database size")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    written.append(out / PLOTS[1])
    fig.savefig(written[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    leak = results["leakage"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rate = leak["projected_per_upload"]["10000"] / 1e4
    ax.loglog(ns, ns * rate, label="projected (tag collisions + band agreements)")
    ax.loglog(ns, ns * 384 * leak["tag_collision_rate"], ls="--", label="tag collisions only")
    hits, uploads = leak["protocol_tag_hits"], leak["uploads"]
    upper = max(hits, 3) / uploads  # 95% Poisson upper bound (3 when none was seen)
    if hits:
        ax.plot([leak["references"]], [hits / uploads], "o", label="measured through the protocol")
    ax.plot(
        [leak["references"]],
        [upper],
        "v",
        ms=9,
        label=f"measured through the protocol: {hits} hits in {uploads} uploads, 95% upper bound",
    )
    ax.axhline(0.5, color="red", lw=1, label="target 0.5 at N = 10^6")
    ax.set_xlabel("references N")
    ax.set_ylabel("single-band tag hits per non-matching upload")
    ax.set_title("Leakage: single-band tag hits (L = 384)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    written.append(out / PLOTS[2])
    fig.savefig(written[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    d = np.array(recall["distances"])
    groups = np.array(recall["groups"])
    bins = list(range(0, 258, 4))
    for group in ("common", "severe", "dihedral"):
        ax.hist(d[groups == group], bins=bins, alpha=0.5, density=True, label=f"edited: {group}")
    hist = np.array(fa["histogram"], dtype=float)
    ax.step(np.arange(257), hist / hist.sum(), where="mid", color="black", label="unrelated pairs")
    ax.axvline(31, color="grey", ls="--", lw=1)
    ax.set_xlabel("PDQ distance")
    ax.set_ylabel("density")
    ax.set_title("Distances: edited copies vs unrelated pictures")
    ax.legend(fontsize=8)
    written.append(out / PLOTS[3])
    fig.savefig(written[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return written
