"""kubetally's aggregator: scrape, price, cost and store (see issue 3)."""

__all__: list[str] = []
