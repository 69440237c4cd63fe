"""Data files bundled with the aggregator (see README.md here): the instance price table."""
