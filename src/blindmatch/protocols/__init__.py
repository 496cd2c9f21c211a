"""Wire messages and sans-IO sessions of the private matching protocol: bytes in, bytes
out; sockets, files and clocks live in thin adapters around them."""

from __future__ import annotations

__all__: list[str] = []
