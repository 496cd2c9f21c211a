"""What start-up imports: ``blindmatch --help`` none of the subcommands, hashing only what
hashing needs. (How long it takes is a benchmark, ``benchmarks/bench_startup.py``.)"""

from __future__ import annotations

import json
import subprocess
import sys

from blindmatch.cli import _parser, build_parser
from blindmatch.cli.commands import COMMANDS

_IMPORTS_AFTER = """\
import json, sys
from blindmatch.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""

HEAVY = ("imagehash", "numba", "scipy", "av", "pysodium")


def _imported_by(*argv: str) -> set[str]:
    """The modules loaded by running ``blindmatch ARGV`` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS_AFTER, *argv], capture_output=True, check=True
    )
    return set(json.loads(done.stderr.decode().splitlines()[-1]))


def test_help_imports_no_subcommand() -> None:
    loaded = _imported_by("--help")
    assert not {command.module for command in COMMANDS} & loaded
    assert not {"numpy", "PIL", "blindmatch.fingerprint", "blindmatch.psi"} & loaded


def test_hash_imports_neither_crypto_nor_secondary_signals() -> None:
    loaded = _imported_by("hash", "--help")
    assert "blindmatch.cli.hash" in loaded
    assert not {"blindmatch.cli.demo", "blindmatch.psi", "blindmatch.fingerprint.signals"} & loaded
    assert not set(HEAVY) & {name.split(".")[0] for name in loaded}


def test_placeholders_show_the_modules_help() -> None:
    # The lazy parser (placeholders from COMMANDS) prints what the modules register.
    assert _parser(()).format_help() == build_parser().format_help()
    for command in COMMANDS:
        assert _parser((command.name,)).format_help() == build_parser().format_help()
