"""Simulated nodes that drive the exporter through its real seams (files, HTTP, pynvml)."""

__all__: list[str] = []
