"""kubetally's per-node exporter: cgroups, the Kubernetes API and NVML on /metrics."""

__all__: list[str] = []
