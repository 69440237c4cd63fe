"""kubetally's REST API over the store (see issue 4)."""

__all__: list[str] = []
