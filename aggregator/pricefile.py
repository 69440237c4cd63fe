"""The one prices file the API writes and the aggregator reloads.

Price changes made through ``PUT /api/v1/prices`` must reach the aggregator without a
restart, and the two run as separate processes (often on separate pods sharing the
store's volume), so they meet at a file: by default ``<store dir>/prices.yaml`` for a
local store, with the usual ``prices:`` and ``price_overrides:`` sections.

* :func:`write_prices` replaces the file atomically (temp file beside it, fsync,
  rename, fsync of the folder), under an advisory lock, so a reader sees the old or
  the new file whole and two writers never lose each other's change.
* :class:`PriceBookSource` is what the aggregator calls each interval: it reloads the
  file when its content changed (a hash of a few hundred bytes: unlike mtime, it cannot
  miss two writes within one timestamp tick) and keeps the last good book, with a
  warning, when the new file is broken — a typo must not stop costing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from aggregator.pricebook import OVERRIDES_SECTION, NodeOverride, PriceBook, load_price_book
from aggregator.prices import SECTION, PriceError, UnitPrices

__all__ = ["FILE_NAME", "UNIT_FIELDS", "PriceBookSource", "default_prices_file", "write_prices"]

log = logging.getLogger(__name__)

FILE_NAME = "prices.yaml"
#: Unit prices that may be changed at run time: the numbers (never ``table``, a path).
UNIT_FIELDS = ("cpu", "ram", "gpu", "storage", "spot_cpu", "spot_ram", "spot_gpu")


def default_prices_file(store: str) -> Path | None:
    """``<store dir>/prices.yaml`` for a local store (a path or file:// URL), else None.

    Mirrors :func:`aggregator.store.backend.open_backend`'s rule for what is local.
    """
    if "://" not in store:
        return Path(store).absolute() / FILE_NAME
    if store.startswith("file://"):
        return Path(store[len("file://"):]).absolute() / FILE_NAME
    return None


def _fields(units: UnitPrices) -> dict[str, Any]:
    return {"table": units.table, "region_fallback": units.region_fallback,
            **{f: getattr(units, f) for f in UNIT_FIELDS}}


@contextlib.contextmanager
def _locked(file: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``<file>.lock`` (the file itself is replaced)."""
    fd = os.open(f"{file}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def write_prices(file: Path, units: Mapping[str, float],
                 overrides: Mapping[str, NodeOverride | None]) -> PriceBook:
    """Merge ``units`` and ``overrides`` (None deletes a node's) into ``file``; the new book.

    Other top-level sections of the file are kept (it may be a whole config file);
    comments are not. The merged values are checked by building the book before
    anything is written, so a bad change never reaches the disk: PriceError.
    """
    for name, value in units.items():
        if name not in UNIT_FIELDS:
            raise PriceError(f"unknown unit price {name!r}")
        if not math.isfinite(value) or value < 0:
            raise PriceError(f"{name} must be a finite number >= 0, got {value!r}")
    with _locked(file):
        current = load_price_book(file if file.exists() else None, environ={})
        doc = _read_document(file)
        merged_units = {**_fields(current.units), **units}
        merged = dict(current.overrides)
        for node, override in overrides.items():
            if override is None:
                merged.pop(node, None)
            else:
                merged[node] = override
        book = PriceBook(UnitPrices(**merged_units), current.table, merged)
        doc[SECTION] = {k: v for k, v in merged_units.items() if k != "table" or v}
        doc[OVERRIDES_SECTION] = {
            node: {k: getattr(o, k) for k in ("hourly", "cpu", "ram", "gpu")
                   if getattr(o, k) is not None} for node, o in sorted(merged.items())}
        _replace(file, yaml.safe_dump(doc, sort_keys=False))
    return book


def _read_document(file: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PriceError(f"cannot read the prices file: {exc}", file=str(file)) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise PriceError("the prices file is not a mapping", file=str(file))
    return doc


def _replace(file: Path, text: str) -> None:
    """Write ``text`` to ``file`` atomically and durably."""
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, file)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    folder = os.open(file.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a crash
    finally:
        os.close(folder)


class PriceBookSource:
    """The price book in force, re-read when ``file`` changes; call it each interval.

    ``fallback`` is read while ``file`` does not exist (e.g. the main config file before
    the first price change). A broken file at start raises PriceError, since nothing
    good is known yet; later it is logged and the last good book kept.
    """

    def __init__(self, file: str | os.PathLike[str], *, fallback: str | None = None,
                 environ: Mapping[str, str] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> None:
        self.file, self.fallback = Path(file), fallback
        self._environ, self._overrides = environ, overrides
        self._key: bytes | None = None
        self._book = self._load(self._digest())

    def _digest(self) -> bytes | None:
        """The file's SHA-256, None while it does not exist."""
        try:
            return hashlib.sha256(self.file.read_bytes()).digest()
        except FileNotFoundError:
            return None

    def _load(self, key: bytes | None) -> PriceBook:
        self._key = key
        source = self.file if key is not None else self.fallback
        return load_price_book(source, environ=self._environ, overrides=self._overrides)

    def __call__(self) -> PriceBook:
        """The current book: reloaded if the file changed, else the cached one."""
        try:
            key = self._digest()
        except OSError as exc:
            log.warning("prices file unreadable, keeping the previous prices: %s", exc)
            return self._book
        if key != self._key:
            try:
                self._book = self._load(key)
                log.info("prices reloaded from %s", self.file if key else self.fallback)
            except PriceError as exc:
                log.warning("prices file unusable, keeping the previous prices: %s", exc)
        return self._book
