"""The client side of the clearinghouse over HTTP: the reporting tools
(:mod:`blindmatch.client.reporting`) and the platform SDK."""

from __future__ import annotations

__all__: list[str] = []
