"""The kubetally command line and the configuration layering shared by its parts."""

__all__: list[str] = []
