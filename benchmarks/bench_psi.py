"""Benchmark (b): exact private matching against OpenMined PSI, one run, ratios.

What is measured
----------------
Exact PSI on SHA-256 digests (one band of all 256 bits, t = 1) against ``openmined-psi``
(``private_set_intersection.python``, ECDH-PSI on P-256 with a GCS setup message, its C++
core) at server sets of N = 10^4, 10^5, 10^6 (``--sizes``), in the same process, timed back
to back:

- **server setup, us per item**: ours is :func:`blindmatch.psi.index.build_index` end to
  end (band inputs, RFC 9497 VOPRF ``Evaluate`` of every reference, tag/pad KDF, random
  lines, per-band sort, handles, header, SHA-256 digest); theirs is
  ``server.CreateSetupMessage(fpr, Q, items, GCS)``. One process: process CPU time
  (``time.process_time``: descheduling by other load does not count; both run on this
  thread). Two processes: wall clock of ``build_index(processes=2)`` against the wall
  clock of OpenMined's single-threaded setup timed right before it (OpenMined has no
  multi-process setup), so load from other programs hits both.
- **client, us per queried item** on Q queried items (``--queries``, half members): client
  only = ours band inputs + ``blind_batch_shared`` + ``finalize_batch_shared`` (one shared
  blind per batch) + ``Index.match_many`` (KDF, ``searchsorted``, unmask, handle check) / theirs
  ``CreateRequest`` + ``GetIntersection``. Round trip adds the server's evaluation (ours
  ``blind_evaluate_batch``, theirs ``ProcessRequest``). Process CPU time, one process.
- **bytes per item the platform downloads**: ours the index file / N, theirs the serialized
  setup message / N, at an equal (or lower, for ours) false-positive rate: OpenMined is
  given ``fpr`` (``--fpr``) for a query of Q items; ours is chosen as the narrowest stored
  handle (8..16 bytes) whose per-query false-positive bound ``Q * (N/2^32) * (N/2^(8h))``
  is <= ``fpr`` (a non-member needs a tag hit, then its unmasked share must give a handle
  whose stored prefix is in the set).

- **compact exact index, bytes per item** (issue 13): our compact index
  (:mod:`blindmatch.psi.compact`, format version 3: a sharded Ribbon filter over the OPRF
  outputs, the handle derived from the output) built from the same references and the same
  OPRF outputs, against OpenMined's GCS setup message at the SAME bound, for Q queried items
  (``--queries``) and for Q = 10^4 (``--queries-large``): per-item rate
  ``eps = fpr / Q``. The floor of any approximate membership structure is
  ``log2(1/eps) / 8`` bytes per item (4.98 B at 1e-9 / 10^3, 5.40 B at 1e-9 / 10^4), also
  reported. Timed: the filter half of the build (CPU us per item, after the OPRF, which is
  the setup column's) and a lookup of the Q queries (KDF + vectorised query). Both
  lookups are checked: members hit with their handles, strangers miss.

- **the cap**: OpenMined against our RFC 9497 work alone in the same rounds (setup:
  ``evaluate_batch`` of every reference; client: blind + finalize, no lookup), i.e. the
  best ratio any implementation on this group backend could reach on this machine.

Every query is checked: both sides must return exactly the members.

Targets (issue 3): setup >= 1.3x OpenMined per core and >= 2.5x on both cores; client per
item >= 1.3x. Ratios are theirs / ours (higher is better for us).

Run: ``python -m benchmarks psi`` or ``python -m benchmarks.bench_psi --sizes 10000``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from blindmatch.psi import _sodium, oprf
from blindmatch.psi.bands import exact_banding
from blindmatch.psi.compact import (
    SHARD_KEYS,
    CompactIndex,
    assemble_compact,
    compact_handle,
    per_item_rate,
)
from blindmatch.psi.group import Scalar
from blindmatch.psi.index import Index, Reference, build_index
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.parallel import ThreadedEvaluator

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"
SETUP_TARGET_ONE = 1.3
SETUP_TARGET_TWO = 2.5
CLIENT_TARGET = 1.3
BANDING = exact_banding("sha256", 256)
LARGE_QUERIES = 10_000


def _psi() -> Any:
    import private_set_intersection.python as psi  # benchmark peer only

    return psi


def _cpu(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.process_time()
    result = call()
    return time.process_time() - start, result


def handle_bytes_for(size: int, queries: int, fpr: float) -> int:
    """The narrowest stored handle whose per-query false-positive bound is <= ``fpr``."""
    for width in range(8, 17):
        bound = queries * (size / 2**32) * (size / 2 ** (8 * width))
        if bound <= fpr:
            return width
    return 16


def _items(size: int, seed: int) -> list[bytes]:
    prefix = seed.to_bytes(4, "big")
    return [hashlib.sha256(prefix + i.to_bytes(8, "big")).digest() for i in range(size)]


class _Case:
    """One server-set size: items, queries, both parties' objects."""

    def __init__(self, size: int, queries: int, fpr: float) -> None:
        self.size = size
        self.fpr = fpr
        self.items = _items(size, 1)
        members = self.items[: queries // 2]
        strangers = _items(queries - len(members), 2)
        self.queries = members + strangers
        self.members = len(members)
        self.key = SecretKey.generate()
        self.references = [Reference(f"r{i}", "sha256", h) for i, h in enumerate(self.items)]
        self.handle_bytes = handle_bytes_for(size, queries, fpr)

    # -- ours
    def build(self, processes: int) -> bytes:
        built = build_index(
            self.key,
            BANDING,
            self.references,
            handle_bytes=self.handle_bytes,
            processes=processes,
        )
        return built.to_bytes()

    def client_ours(self, index: Index) -> dict[str, float]:
        mode = oprf.Mode.VOPRF
        inputs: list[bytes] = []

        def start() -> tuple[Any, Any]:
            inputs.extend(row[0] for row in BANDING.band_inputs_many(self.queries))
            return oprf.blind_batch_shared(inputs, mode)

        blind_time, (blind, blinded) = _cpu(start)
        server_time, evaluated = _cpu(
            lambda: oprf.blind_evaluate_batch(self.key.scalar, blinded, mode)
        )

        finalize_time, outputs = _cpu(
            lambda: oprf.finalize_batch_shared(inputs, blind, evaluated, mode)
        )
        lookup_time, matches = _cpu(lambda: index.match_many([[o] for o in outputs]))
        found = [i for i, m in enumerate(matches) if m]
        if found != list(range(self.members)):
            raise AssertionError("our lookup did not return exactly the members")
        return {
            "client": blind_time + finalize_time + lookup_time,
            "client_oprf": blind_time + finalize_time,
            "server": server_time,
        }

    def evaluate_only(self) -> float:
        """CPU seconds of the RFC 9497 evaluation of every reference and nothing else: the
        floor of any setup on this group backend (hash-to-group, multiplication, SHA-512)."""
        inputs = [row[0] for row in BANDING.band_inputs_many(self.items)]
        seconds, _ = _cpu(lambda: oprf.evaluate_batch(self.key.scalar, inputs, oprf.Mode.VOPRF))
        return seconds

    def client_ours_threaded(self, index: Index, evaluator: ThreadedEvaluator) -> float:
        """Wall seconds of the client's steps with blinding and finalizing on threads."""
        mode = oprf.Mode.VOPRF
        server = self.key.scalar
        inputs = [row[0] for row in BANDING.band_inputs_many(self.queries)]
        blinds = [Scalar.random()] * len(inputs)
        start = time.perf_counter()
        blinded = evaluator.blind_batch(inputs, mode, blinds=blinds)
        pause = time.perf_counter()
        evaluated = oprf.blind_evaluate_batch(server, blinded, mode)  # the server: not timed
        resume = time.perf_counter()
        outputs = evaluator.finalize_batch(inputs, blinds, evaluated, mode)
        matches = index.match_many([[o] for o in outputs])
        end = time.perf_counter()
        if [i for i, m in enumerate(matches) if m] != list(range(self.members)):
            raise AssertionError("our threaded lookup did not return exactly the members")
        return (pause - start) + (end - resume)

    def compact(self, queries: int) -> dict[str, Any]:
        """Our compact index at OpenMined's bound for ``queries`` queried items: file bytes,
        CPU us per item of the filter half of the build and of a lookup, checked."""
        mode = oprf.Mode.VOPRF
        inputs = [row[0] for row in BANDING.band_inputs_many(self.items)]
        outputs = oprf.evaluate_batch(self.key.scalar, inputs, mode)
        rate = per_item_rate(self.fpr, queries)
        seconds, built = _cpu(
            lambda: assemble_compact(
                self.key,
                BANDING,
                self.references,
                [],
                outputs,
                false_positive_rate=rate,
                seed=0,
                base_digest=None,
                shard_keys=SHARD_KEYS,
            )
        )
        index = CompactIndex.from_bytes(built.data)
        query_inputs = [row[0] for row in BANDING.band_inputs_many(self.queries)]
        query_outputs = oprf.evaluate_batch(self.key.scalar, query_inputs, mode)
        lookup_seconds, found = _cpu(lambda: index.match_outputs(query_outputs))
        expected = [compact_handle(o) for o in query_outputs[: self.members]]
        if found[: self.members] != expected or any(found[self.members :]):
            raise AssertionError("the compact lookup did not return exactly the members")
        shards = built.header.shards
        return {
            "queries": queries,
            "per_item_rate": rate,
            "rate_of_file": built.header.false_positive_rate,
            "floor_bytes_per_item": math.log2(1 / rate) / 8,
            "bytes_per_item": len(built.data) / self.size,
            "result_bits": sorted({s.result_bits for s in shards}),
            "shards": len(shards),
            "rows_per_key": sum(s.slots for s in shards) / self.size,
            "filter_build_us_per_item": seconds / self.size * 1e6,
            "lookup_us_per_query": lookup_seconds / len(query_outputs) * 1e6,
        }

    # -- theirs
    def setup_theirs(self, psi: Any, server: Any) -> Any:
        return server.CreateSetupMessage(
            self.fpr, len(self.queries), self.items, psi.DataStructure.GCS
        )

    def client_theirs(self, psi: Any, server: Any, setup: Any) -> dict[str, float]:
        client = psi.client.CreateWithNewKey(True)
        request_time, request_wall, request = _both(lambda: client.CreateRequest(self.queries))
        server_time, response = _cpu(lambda: server.ProcessRequest(request))
        finish_time, finish_wall, found = _both(lambda: client.GetIntersection(setup, response))
        if sorted(found) != list(range(self.members)):
            raise AssertionError("OpenMined did not return exactly the members")
        return {
            "client": request_time + finish_time,
            "client_wall": request_wall + finish_wall,
            "server": server_time,
        }


def _both(call: Callable[[], Any]) -> tuple[float, float, Any]:
    """(process CPU seconds, wall seconds, result) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = call()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def group_costs(operations: int = 2000, rounds: int = 3) -> dict[str, float]:
    """CPU us per variable-base scalar multiplication of each side's group, best of rounds.

    Context for the ratios: OpenMined's cost is dominated by P-256 multiplications
    (OpenSSL; timed here as an ECDH exchange through ``cryptography``), ours by ristretto255
    multiplications (libsodium ``crypto_scalarmult_ristretto255``).
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    peer = ec.generate_private_key(ec.SECP256R1()).public_key()
    scalar = bytes(Scalar.random())
    point = bytes(Scalar.random().multiply_base())
    best = {"p256_ecdh_openssl": math.inf, "ristretto255_scalarmult_libsodium": math.inf}
    for _ in range(rounds):
        p256, _ = _cpu(lambda: [private.exchange(ec.ECDH(), peer) for _ in range(operations)])
        ristretto, _ = _cpu(lambda: [_sodium.scalarmult(scalar, point) for _ in range(operations)])
        best["p256_ecdh_openssl"] = min(best["p256_ecdh_openssl"], p256 / operations * 1e6)
        best["ristretto255_scalarmult_libsodium"] = min(
            best["ristretto255_scalarmult_libsodium"], ristretto / operations * 1e6
        )
    return best


def _run_size(
    size: int, queries: int, fpr: float, repeats: int, client_rounds: int
) -> dict[str, Any]:
    psi = _psi()
    case = _Case(size, queries, fpr)
    server = psi.server.CreateWithNewKey(True)
    rows: dict[str, list[float]] = {
        name: []
        for name in (
            "setup_ours_1p_cpu",
            "setup_floor_cpu",
            "setup_theirs_cpu",
            "setup_ours_2p_wall",
            "setup_theirs_wall",
            "client_ours",
            "client_theirs",
            "client_oprf_cpu",
            "client_ours_2t_wall",
            "client_theirs_wall",
            "server_eval_ours",
            "server_eval_theirs",
        )
    }
    per_round: dict[str, list[float]] = {
        "setup_1p": [],
        "setup_cap": [],
        "setup_2p": [],
        "client_only": [],
        "client_cap": [],
        "client_2t": [],
        "round_trip": [],
    }
    index_bytes = setup_bytes = 0
    index: Index | None = None
    setup: Any = None
    for _ in range(repeats):
        ours_cpu, _, data = _both(lambda: case.build(1))
        del data
        theirs_cpu, theirs_wall, setup = _both(lambda: case.setup_theirs(psi, server))
        floor_cpu = case.evaluate_only()
        rows["setup_floor_cpu"].append(floor_cpu / size)
        per_round["setup_cap"].append(theirs_cpu / floor_cpu)
        _, ours_wall, data = _both(lambda: case.build(2))
        rows["setup_ours_1p_cpu"].append(ours_cpu / size)
        rows["setup_theirs_cpu"].append(theirs_cpu / size)
        rows["setup_theirs_wall"].append(theirs_wall / size)
        rows["setup_ours_2p_wall"].append(ours_wall / size)
        per_round["setup_1p"].append(theirs_cpu / ours_cpu)
        per_round["setup_2p"].append(theirs_wall / ours_wall)
        index_bytes = len(data)
        setup_bytes = len(setup.SerializeToString())
        index = Index.from_bytes(data)
        del data
    assert index is not None
    evaluator = ThreadedEvaluator(2, min_chunk=64)
    case.client_ours(index)  # warm-up round, untimed: first-call costs of both sides
    case.client_ours_threaded(index, evaluator)
    case.client_theirs(psi, server, setup)
    for _ in range(client_rounds):
        ours = case.client_ours(index)
        theirs = case.client_theirs(psi, server, setup)
        threaded = case.client_ours_threaded(index, evaluator)
        rows["client_ours_2t_wall"].append(threaded / queries)
        rows["client_theirs_wall"].append(theirs["client_wall"] / queries)
        per_round["client_2t"].append(theirs["client_wall"] / threaded)
        rows["client_ours"].append(ours["client"] / queries)
        rows["client_oprf_cpu"].append(ours["client_oprf"] / queries)
        per_round["client_cap"].append(theirs["client"] / ours["client_oprf"])
        rows["client_theirs"].append(theirs["client"] / queries)
        rows["server_eval_ours"].append(ours["server"] / queries)
        rows["server_eval_theirs"].append(theirs["server"] / queries)
        per_round["client_only"].append(theirs["client"] / ours["client"])
        per_round["round_trip"].append(
            (theirs["client"] + theirs["server"]) / (ours["client"] + ours["server"])
        )
    evaluator.close()
    compact = []
    for queried in (queries, LARGE_QUERIES):
        row = case.compact(queried)
        if queried == queries:
            theirs_bytes = setup_bytes
        else:
            message = server.CreateSetupMessage(fpr, queried, case.items, psi.DataStructure.GCS)
            theirs_bytes = len(message.SerializeToString())
        row["bytes_per_item_theirs"] = theirs_bytes / size
        row["ratio"] = row["bytes_per_item_theirs"] / row["bytes_per_item"]
        compact.append(row)
    best = {name: min(values) * 1e6 for name, values in rows.items()}
    median = {name: statistics.median(values) * 1e6 for name, values in rows.items()}
    return {
        "size": size,
        "queries": queries,
        "repeats": repeats,
        "client_rounds": client_rounds,
        "handle_bytes": case.handle_bytes,
        "fp_bound_ours_per_query": queries * (size / 2**32) * (size / 2 ** (8 * case.handle_bytes)),
        "us_per_item_best": best,
        "us_per_item_median": median,
        "bytes_per_item_ours": index_bytes / size,
        "bytes_per_item_theirs": setup_bytes / size,
        "compact": compact,
        "ratios_per_round": per_round,
        "ratios": {
            **{name: statistics.median(values) for name, values in per_round.items()},
            "bytes": index_bytes / setup_bytes,
        },
        "ratios_of_best": {
            "setup_1p": best["setup_theirs_cpu"] / best["setup_ours_1p_cpu"],
            "setup_2p": best["setup_theirs_wall"] / best["setup_ours_2p_wall"],
            "client_only": best["client_theirs"] / best["client_ours"],
            "client_2t": best["client_theirs_wall"] / best["client_ours_2t_wall"],
            "round_trip": (best["client_theirs"] + best["server_eval_theirs"])
            / (best["client_ours"] + best["server_eval_ours"]),
        },
    }


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Exact PSI vs OpenMined PSI (benchmark b)",
        "",
        f"{report['environment']}. SHA-256 items; one band, t = 1; {report['queries']} queried "
        f"items per size (half members); OpenMined fpr {report['fpr']:g} for the whole query "
        "(GCS); ours: 4-byte tags, handle prefix chosen for an equal or lower bound. Best of "
        "the repeats for times; ratios are the median over repeats (setup) or rounds (client) of "
        "OpenMined / ours timed back to back (higher is better for us).",
        "",
        "Setup 1 process and client: process CPU time. Setup 2 processes: wall clock of ours "
        "with 2 worker processes vs OpenMined's (single-threaded) setup timed just before. "
        "Client 2 threads: wall clock of our client steps with blinding and finalizing on a "
        "2-thread ThreadedEvaluator vs OpenMined's single-threaded client wall clock in the "
        "same round (the 1.3x client target is judged per core, on the CPU-time column).",
        "",
        "| N | setup ours 1p us/item | setup OpenMined us/item | ratio 1p (>= 1.3) "
        "| setup ours 2p wall us/item | OpenMined wall us/item | ratio 2p (>= 2.5) "
        "| client ours us/item | client OpenMined us/item | ratio client (>= 1.3) "
        "| client ours 2 threads wall us/item | ratio client 2 threads (wall) "
        "| round trip ratio | bytes/item ours | bytes/item OpenMined | handle bytes "
        "| repeats / client rounds |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["sizes"]:
        best = row["us_per_item_best"]
        ratios = row["ratios"]
        verdict = {
            name: f"{ratios[name]:.2f} {'yes' if ratios[name] >= target else 'NO'}"
            for name, target in (
                ("setup_1p", SETUP_TARGET_ONE),
                ("setup_2p", SETUP_TARGET_TWO),
                ("client_only", CLIENT_TARGET),
            )
        }
        lines.append(
            f"| {row['size']:,} | {best['setup_ours_1p_cpu']:.1f} | {best['setup_theirs_cpu']:.1f}"
            f" | {verdict['setup_1p']}"
            f" | {best['setup_ours_2p_wall']:.1f} | {best['setup_theirs_wall']:.1f}"
            f" | {verdict['setup_2p']}"
            f" | {best['client_ours']:.1f} | {best['client_theirs']:.1f}"
            f" | {verdict['client_only']}"
            f" | {best['client_ours_2t_wall']:.1f} | {ratios['client_2t']:.2f}"
            f" | {ratios['round_trip']:.2f}"
            f" | {row['bytes_per_item_ours']:.2f} | {row['bytes_per_item_theirs']:.2f}"
            f" | {row['handle_bytes']} | {row['repeats']} / {row['client_rounds']} |"
        )
    lines += [
        "",
        "Cap (what any implementation on libsodium's ristretto255 could reach here): "
        "OpenMined / our RFC 9497 work alone, timed in the same rounds (setup: "
        "`evaluate_batch` of every reference, no KDF, sort or file; client: blind + "
        "finalize, no lookup): "
        + ", ".join(
            f"N={row['size']:,}: setup {row['ratios']['setup_cap']:.2f}x "
            f"({row['us_per_item_best']['setup_floor_cpu']:.1f} us/item), client "
            f"{row['ratios']['client_cap']:.2f}x "
            f"({row['us_per_item_best']['client_oprf_cpu']:.1f} us/item)"
            for row in report["sizes"]
        )
        + ". The targets ask 1.3x per core.",
        "",
        "Server evaluation per queried item (ours blind_evaluate_batch, theirs ProcessRequest), "
        "us: "
        + ", ".join(
            f"N={row['size']:,}: {row['us_per_item_best']['server_eval_ours']:.1f} vs "
            f"{row['us_per_item_best']['server_eval_theirs']:.1f}"
            for row in report["sizes"]
        ),
        "",
        "Group operation costs in this run (CPU us per variable-base scalar multiplication, "
        "best of 3 x 2000): "
        + ", ".join(f"{name} {value:.1f}" for name, value in report["group_costs_us"].items())
        + ". Both protocols do one multiplication per item at setup and two per queried item "
        "on the client; the per-core ratios cannot exceed what these costs allow.",
        "",
        "## Compact exact index (format version 3) vs OpenMined, bytes per item, same run",
        "",
        "Our compact index (a sharded Ribbon filter over the OPRF outputs, w = 128, the "
        "handle derived from the output, docs/index-format.md section 11) and OpenMined's GCS "
        f"setup message at the same bound: fpr {report['fpr']:g} for a query of Q items, so "
        "per item eps = fpr / Q. Floor = log2(1/eps) / 8, the least any approximate membership "
        "structure can store per item at that eps. Filter build: CPU us per item of the "
        "filter half of the build (the OPRF is the setup column above); lookup: CPU us per "
        "queried OPRF output (KDF + vectorised query). Ratio: OpenMined / ours.",
        "",
        "| N | Q | eps per item | floor B/item | compact B/item | OpenMined B/item "
        "| ratio (> 1 = we win) | result bits | shards | rows per key "
        "| filter build us/item | lookup us/query |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {row['size']:,} | {c['queries']:,} | {c['per_item_rate']:.0e}"
            f" | {c['floor_bytes_per_item']:.3f} | {c['bytes_per_item']:.3f}"
            f" | {c['bytes_per_item_theirs']:.3f} | {c['ratio']:.3f}"
            f" | {'/'.join(str(b) for b in c['result_bits'])} | {c['shards']}"
            f" | {c['rows_per_key']:.4f} | {c['filter_build_us_per_item']:.1f}"
            f" | {c['lookup_us_per_query']:.1f} |"
            for row in report["sizes"]
            for c in row["compact"]
        ),
        "",
        "Issue 13 asked for at most 5.0 bytes per reference at a bound of 1e-9 for 10^4 "
        "queries. That bound is eps = 1e-13 per item, whose floor is log2(1e13) = 43.19 bits "
        "= 5.40 bytes: no structure can meet 5.0 B there (5.0 B = 40 bits reaches eps = "
        "2^-40 = 9.1e-13 at best, i.e. 1e-9 for 1,100 queries). What the compact index can "
        "do is beat OpenMined's bytes at the same bound: in this run it is smaller at "
        f"{sum(c['ratio'] > 1 for r in report['sizes'] for c in r['compact'])} of "
        f"{sum(len(r['compact']) for r in report['sizes'])} (N, Q) points.",
        "",
        "Bytes: our index stores per reference a 4-byte tag, an 8-byte masked share and a "
        "handle prefix (the fuzzy PDQ bands need the shares; an exact-only format could drop "
        "them); OpenMined's GCS stores about log2(Q/fpr) + 2 bits per item.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write benchmarks/results/psi.{json,md}."""
    parser = argparse.ArgumentParser(prog="bench_psi", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--fpr", type=float, default=1e-9)
    parser.add_argument(
        "--output", default="psi", help="results file stem under benchmarks/results/"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="repeats per size (at most 2 for sizes >= 10^6)"
    )
    parser.add_argument("--client-rounds", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    environment = (
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, openmined-psi {_psi_version()}"
    )
    report: dict[str, Any] = {
        "benchmark": "psi",
        "environment": environment,
        "queries": args.queries,
        "fpr": args.fpr,
        "targets": {
            "setup_1p": SETUP_TARGET_ONE,
            "setup_2p": SETUP_TARGET_TWO,
            "client_only": CLIENT_TARGET,
        },
        "sizes": [],
    }
    report["group_costs_us"] = group_costs()
    for size in sizes:
        repeats = min(2, args.repeats) if size >= 1_000_000 else args.repeats
        print(f"-- N = {size:,} ({repeats} repeats)", flush=True)
        row = _run_size(size, args.queries, args.fpr, repeats, args.client_rounds)
        print(json.dumps(row["ratios"]), flush=True)
        report["sizes"].append(row)
    text = _markdown(report)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.output}.json").write_text(json.dumps(report, indent=1) + "\n")
        (RESULTS / f"{args.output}.md").write_text(text)
    return 0


def _psi_version() -> str:
    from importlib.metadata import version

    return version("openmined-psi")


if __name__ == "__main__":
    raise SystemExit(main())
