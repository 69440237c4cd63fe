"""kubetally's store: a write-ahead-logged head sealed into Zarr v3 partitions in tiers.

The aggregator writes with :class:`Store`; the API reads with :class:`StoreReader`. The
on-disk layout is defined in :mod:`aggregator.store.layout` alone.
"""

from aggregator.store.errors import (
    CorruptStoreError,
    LateIntervalError,
    QueryError,
    StoreError,
    StoreInputError,
    StoreIOError,
)
from aggregator.store.layout import TIERS, Retention, Tier
from aggregator.store.model import Block
from aggregator.store.reader import PartitionInfo, QueryResult, StoreReader
from aggregator.store.writer import MaintainReport, Store

__all__ = ["TIERS", "Block", "CorruptStoreError", "LateIntervalError", "MaintainReport",
           "PartitionInfo", "QueryError", "QueryResult", "Retention", "Store", "StoreError",
           "StoreIOError", "StoreInputError", "StoreReader", "Tier"]
