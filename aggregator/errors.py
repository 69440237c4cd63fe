"""Exceptions of the aggregator.

Everything the aggregator raises on purpose derives from :class:`AggregatorError`.
Errors become HTTP statuses or counters only at the edges (the scrape loop counts a
failed target, the API maps an error to a status); the code in between raises these
typed errors and never swallows them.
"""

from __future__ import annotations

__all__ = ["AggregatorError", "ParseError"]


class AggregatorError(Exception):
    """Base of every error the aggregator raises on purpose.

    Errors become HTTP statuses or counters only at the edges: the scrape loop turns
    them into per-target failure counters, the API into statuses.
    """


class ParseError(AggregatorError):
    """An exposition payload does not follow the text format (0.0.4 or OpenMetrics 1.0).

    ``line`` is the 1-based line of the payload where the problem is; the message says
    what was expected there and quotes an excerpt of the offending text, so an operator
    can find the exporter bug without the payload at hand.
    """

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only ``line`` breaks the default pickling used by process pools.
        return (_rebuild_parse_error, (self.message, self.line))


def _rebuild_parse_error(message: str, line: int) -> ParseError:
    return ParseError(message, line=line)
