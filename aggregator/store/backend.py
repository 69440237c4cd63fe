"""Where partitions live and how one is committed: a local directory or any fsspec URL.

Both backends give the same guarantee, that a partition is either wholly visible or not
at all, by different means:

* local filesystem: write the Zarr group into ``<tier>/.tmp-<period>-<token>/``, fsync
  every file and folder, ``rename`` it to ``<tier>/<period>/`` (atomic), fsync the parent.
  Deleting renames to ``.trash-…`` first, so a partition never appears half-deleted.
* object stores (fsspec): a rename is a copy there, so the group is written under a fresh
  ``<tier>/<period>.<token>/`` prefix and committed by writing the small object
  ``<tier>/<period>.<token>.committed`` last; readers list only committed prefixes.
  Deleting removes the commit marker first.

Leftovers of a crash (temporary folders, uncommitted prefixes, trash) are invisible to
readers and removed by the writer's :meth:`Backend.cleanup` when it opens.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from zarr.abc.store import Store as ZarrStore
from zarr.storage import LocalStore

from aggregator.store.errors import StoreError
from aggregator.store.layout import (
    COMMITTED_SUFFIX,
    TIERS,
    TMP_PREFIX,
    TRASH_PREFIX,
    Tier,
    shard_of_dirname,
)

__all__ = ["Backend", "FsspecBackend", "LocalBackend", "fsync_dir", "open_backend"]

Build = Callable[[], Mapping[str, bytes]]


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a new file, a rename, a removal) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Backend(ABC):
    """The storage of a store's partitions (not its WAL, which is always on local disk)."""

    url: str

    @property
    def local_root(self) -> Path | None:
        """The store's folder when it is on the local filesystem, else None."""
        return None

    @abstractmethod
    def list_shards(self) -> list[str]:
        """Folder names of the shards present (``shard-i-of-n``)."""

    @abstractmethod
    def list_sealed(self, shard: str, tier: Tier) -> dict[str, str]:
        """Committed partitions of one shard and tier: period name → location."""

    @abstractmethod
    def commit(self, shard: str, tier: Tier, period: str, build: Build) -> bool:
        """Write the objects ``build()`` returns (key → bytes) as one partition, visible at
        once; False (and nothing built) when the partition exists."""

    @abstractmethod
    def delete(self, shard: str, tier: Tier, period: str, location: str) -> None:
        """Make a partition invisible at once, then remove its data."""

    @abstractmethod
    def cleanup(self, shard: str) -> None:
        """Remove what a crash left behind (never a committed partition)."""

    @abstractmethod
    def open_store(self, location: str) -> ZarrStore:
        """A read-only Zarr store rooted at a partition."""

    @abstractmethod
    def still_there(self, location: str) -> bool:
        """True while a partition is committed (checked after reading it: see reader)."""

    def fingerprint(self, location: str) -> str | None:
        """A name for the partition committed at ``location`` that no later commit there
        shares (a reader's cache keys on it, since a location can be deleted by retention
        and written again); None when the backend cannot tell, which disables caching.
        FileNotFoundError when no partition is there."""
        return None


def _check_key(key: str) -> None:
    """Object keys come from zarr, but a key must never climb out of its partition."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad object key {key!r}")


def _write_objects(root: Path, objects: Mapping[str, bytes]) -> None:
    """Write each object as a file under a new ``root`` and fsync files, then folders."""
    made: set[Path] = set()
    root.mkdir()
    for key, data in objects.items():
        _check_key(key)
        path = root / key
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        fsync_dir(Path(dirpath))


class LocalBackend(Backend):
    """Partitions as folders; commit by rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    @property
    def local_root(self) -> Path:
        return self.root

    def list_shards(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if shard_of_dirname(n) and (self.root / n).is_dir())

    def list_sealed(self, shard: str, tier: Tier) -> dict[str, str]:
        folder = self.root / shard / tier.name
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return {}
        return {n: str(folder / n) for n in sorted(names) if tier.is_period(n)}

    def commit(self, shard: str, tier: Tier, period: str, build: Build) -> bool:
        folder = self.root / shard / tier.name
        final = folder / period
        if final.exists():
            return False
        objects = build()
        _mkdirs(folder)
        tmp = folder / f"{TMP_PREFIX}{period}-{uuid.uuid4().hex[:12]}"
        try:
            _write_objects(tmp, objects)
            try:
                os.rename(tmp, final)
            except OSError:
                if final.exists():  # another writer of this shard won: same content
                    return False
                raise
            fsync_dir(folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return True

    def delete(self, shard: str, tier: Tier, period: str, location: str) -> None:
        folder = self.root / shard / tier.name
        trash = folder / f"{TRASH_PREFIX}{period}-{uuid.uuid4().hex[:12]}"
        os.rename(folder / period, trash)
        fsync_dir(folder)
        shutil.rmtree(trash, ignore_errors=True)

    def cleanup(self, shard: str) -> None:
        for tier in TIERS:
            folder = self.root / shard / tier.name
            if not folder.is_dir():
                continue
            for name in os.listdir(folder):
                if name.startswith((TMP_PREFIX, TRASH_PREFIX)):
                    shutil.rmtree(folder / name, ignore_errors=True)

    def open_store(self, location: str) -> ZarrStore:
        return LocalStore(location, read_only=True)

    def still_there(self, location: str) -> bool:
        return os.path.isdir(location)

    def fingerprint(self, location: str) -> str | None:
        # A commit renames a fresh folder into place: a new inode, with the mtime of its
        # last file, so a partition written again at the same path gets a new name.
        st = os.stat(location)
        return f"{location}@{st.st_ino}:{st.st_mtime_ns}"


def _mkdirs(folder: Path) -> None:
    """Create ``folder`` and its parents, fsyncing each new entry into its parent."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        fsync_dir(d.parent)


class FsspecBackend(Backend):
    """Partitions under an fsspec URL (s3://, gs://, memory://…); commit by marker object."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        try:
            from fsspec.core import url_to_fs
        except ImportError as exc:  # an optional dependency: say what to install
            raise StoreError(f"{url}: fsspec URLs need the 'fsspec' package") from exc
        self.url = url
        self._options = dict(storage_options or {})
        self.fs, self.root = url_to_fs(url, **self._options)
        self.root = self.root.rstrip("/")

    def _names(self, path: str) -> list[str]:
        try:
            entries = self.fs.ls(path, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def list_shards(self) -> list[str]:
        return [n for n in self._names(self.root) if shard_of_dirname(n)]

    def list_sealed(self, shard: str, tier: Tier) -> dict[str, str]:
        folder = f"{self.root}/{shard}/{tier.name}"
        out: dict[str, str] = {}
        for name in self._names(folder):
            if not name.endswith(COMMITTED_SUFFIX):
                continue
            period, _, token = name[:-len(COMMITTED_SUFFIX)].rpartition(".")
            if tier.is_period(period) and token.isalnum() and period not in out:
                out[period] = f"{folder}/{period}.{token}"
        return out

    def commit(self, shard: str, tier: Tier, period: str, build: Build) -> bool:
        if period in self.list_sealed(shard, tier):
            return False
        objects = build()
        token = uuid.uuid4().hex[:12]
        data = f"{self.root}/{shard}/{tier.name}/{period}.{token}"
        for key in objects:
            _check_key(key)
        self.fs.pipe({f"{data}/{key}": value for key, value in objects.items()})
        marker = json.dumps({"partition": f"{period}.{token}", "tier": tier.name}).encode()
        self.fs.pipe_file(data + COMMITTED_SUFFIX, marker)
        return True

    def delete(self, shard: str, tier: Tier, period: str, location: str) -> None:
        self.fs.rm_file(location + COMMITTED_SUFFIX)
        self.fs.rm(location, recursive=True)

    def cleanup(self, shard: str) -> None:
        for tier in TIERS:
            folder = f"{self.root}/{shard}/{tier.name}"
            names = self._names(folder)
            committed = {n[:-len(COMMITTED_SUFFIX)] for n in names
                         if n.endswith(COMMITTED_SUFFIX)}
            for name in names:
                if not name.endswith(COMMITTED_SUFFIX) and name not in committed:
                    self.fs.rm(f"{folder}/{name}", recursive=True)

    def open_store(self, location: str) -> ZarrStore:
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(self.fs.unstrip_protocol(location),
                                    storage_options=self._options or None, read_only=True)

    def still_there(self, location: str) -> bool:
        return bool(self.fs.exists(location + COMMITTED_SUFFIX))

    def fingerprint(self, location: str) -> str | None:
        # Each commit writes under a fresh ``<period>.<token>`` prefix: the location is
        # already unique to it.
        return location


def open_backend(url: str | os.PathLike[str],
                 storage_options: dict[str, Any] | None = None) -> Backend:
    """The backend for ``url``: a path or ``file://`` URL is local, any other URL fsspec."""
    text = os.fspath(url)
    if "://" not in text:
        return LocalBackend(Path(text).absolute())
    if text.startswith("file://"):
        return LocalBackend(Path(text[len("file://"):]).absolute())
    return FsspecBackend(text, storage_options)
