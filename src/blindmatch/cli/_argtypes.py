"""argparse ``type=`` converters shared by the subcommands: each turns bad text into an
``argparse.ArgumentTypeError``, which argparse reports as a usage error (exit code 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["int_up_to", "non_negative_int", "non_negative_seconds", "positive_int"]


def _integer(text: str, minimum: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(expected) from None
    if value < minimum:
        raise argparse.ArgumentTypeError(expected)
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _integer(text, 1, "expected a positive integer")


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return _integer(text, 0, "expected an integer >= 0")


def int_up_to(maximum: int) -> Callable[[str], int]:
    """A converter of integers from 0 to ``maximum`` (a bound where a larger value can only
    be a slip of the keyboard, e.g. a demo that would generate media until the disk fills)."""

    def convert(text: str) -> int:
        value = _integer(text, 0, f"expected an integer from 0 to {maximum}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"expected an integer from 0 to {maximum}")
        return value

    return convert


def non_negative_seconds(text: str) -> float:
    """A finite number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of seconds >= 0") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("expected a number of seconds >= 0")
    return value
