"""Exceptions of the exporter.

Everything the exporter raises on purpose derives from :class:`ExporterError`.
They turn into error counters (``kubetally_exporter_collector_errors_total``)
or a clear start-up message only at the edges: the scrape-time collector
wrapper and the command line.
"""

from __future__ import annotations

__all__ = [
    "CgroupError",
    "CgroupGone",
    "ConfigError",
    "ExporterError",
    "GPUError",
    "KubeError",
]


class ExporterError(Exception):
    """Base of every error the exporter raises on purpose."""


class ConfigError(ExporterError):
    """A configuration value is missing or malformed."""


class CgroupError(ExporterError):
    """A cgroup file exists but cannot be read or parsed."""


class CgroupGone(CgroupError):
    """A container's cgroup vanished between discovery and reading (it exited)."""


class KubeError(ExporterError):
    """The Kubernetes API answered with something the exporter cannot use."""


class GPUError(ExporterError):
    """NVML failed in a way that loses this scrape's GPU data."""
