"""Run every benchmark: ``python -m benchmarks [NAME ...]`` (``make bench``).

Each benchmark module has ``main(argv) -> int`` and writes ``benchmarks/results/NAME.json``
and ``NAME.md``. With no names, all run in the order below; give names to run a subset,
e.g. ``python -m benchmarks oprf psi``.
"""

from __future__ import annotations

import importlib
import sys

# name -> module; a benchmark is listed once its module exists.
BENCHMARKS: dict[str, str] = {
    "pdq_core": "benchmarks.bench_pdq_core",
    "fingerprint_pipeline": "benchmarks.bench_fingerprint_pipeline",
    "video": "benchmarks.bench_video",
    "oprf": "benchmarks.bench_oprf",
    "psi": "benchmarks.bench_psi",
    "build": "benchmarks.bench_build",
    "protocol": "benchmarks.bench_protocol",
    "accuracy": "benchmarks.bench_accuracy",
    "startup": "benchmarks.bench_startup",
    "install_size": "benchmarks.bench_install_size",
    "service": "benchmarks.bench_service",
    "web_decode": "benchmarks.bench_web_decode",
    "client": "benchmarks.bench_client",
    "retro": "benchmarks.bench_retro",
    "scale": "benchmarks.bench_scale",
    "build_memory": "benchmarks.bench_build_memory",
    "quota": "benchmarks.bench_quota",
    "rebuild": "benchmarks.bench_rebuild",
}


def main(argv: list[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv) or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    status = 0
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(BENCHMARKS[name])
        status |= module.main([])
    return status


if __name__ == "__main__":
    sys.exit(main())
