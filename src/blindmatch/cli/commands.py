"""The list of subcommand modules, in the order ``--help`` shows them.

Each module has ``register(subparsers)``; add a new subcommand by adding its module here.
"""

from __future__ import annotations

from types import ModuleType

from blindmatch.cli import admin, demo, serve, simulate
from blindmatch.cli import hash as hash_command

__all__ = ["MODULES"]

MODULES: list[ModuleType] = [hash_command, demo, simulate, serve, admin]
