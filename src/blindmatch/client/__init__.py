"""The platform's client side: local state around the sans-IO protocol sessions."""

__all__: list[str] = []
