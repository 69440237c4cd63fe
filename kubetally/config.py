"""Configuration layering shared by every kubetally command.

Each part declares its options once, as a frozen dataclass whose fields carry
a help text. From that one declaration come the command-line flags, the
``KUBETALLY_<SECTION>_<FIELD>`` environment variables, the YAML file section
and the README's configuration table, so the four cannot drift apart.

Layers apply in order: defaults → file → environment → explicit overrides
(command-line flags or a test). The result is passed explicitly to whoever
needs it; nothing reads a global.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = ["ConfigValueError", "add_arguments", "env_name", "load", "option", "table_rows"]

T = TypeVar("T")
ENV_PREFIX = "KUBETALLY_"


class ConfigValueError(ValueError):
    """A configuration value cannot be converted to its option's type."""


def option(default: Any, help: str, *, env_aliases: tuple[str, ...] = (), flag: str = "") -> Any:
    """Declare one option of a config dataclass."""
    meta = {"help": help, "env_aliases": env_aliases, "flag": flag}
    if isinstance(default, list | dict):
        raise TypeError("use tuples for sequence defaults")
    return dataclasses.field(default=default, metadata=meta)


def env_name(section: str, field: str) -> str:
    """``KUBETALLY_EXPORTER_PORT`` for section ``exporter``, field ``port``."""
    return f"{ENV_PREFIX}{section}_{field}".upper()


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _field_type(cls: type, f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(cls)
    return hints[f.name]


def _convert(value: Any, typ: Any, where: str) -> Any:
    """Turn a file or environment value into the field's declared type."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None or value == "":
            return None
        return _convert(value, args[0], where)
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"not a boolean: {value!r}")
        if typ in (int, float, str):
            if typ is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(f"not an integer: {value!r}")
            return typ(value)
        if typ is Path:
            return Path(value)
        if origin is tuple:
            items = value if isinstance(value, list | tuple) else str(value).split(",")
            return tuple(str(i).strip() for i in items if str(i).strip())
    except (TypeError, ValueError) as exc:
        raise ConfigValueError(f"{where}: {exc}") from None
    raise TypeError(f"unsupported option type {typ!r}")


def load(
    cls: type[T],
    section: str,
    *,
    file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Build ``cls`` from defaults, then the file's ``section``, the environment, the overrides."""
    values: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if file is not None:
        data = yaml.safe_load(Path(file).read_text()) or {}
        part = data.get(section, {}) if isinstance(data, dict) else None
        if not isinstance(part, dict):
            raise ConfigValueError(f"{file}: section {section!r} must be a mapping")
        for key, raw in part.items():
            name = str(key).replace("-", "_")
            if name not in fields:
                raise ConfigValueError(f"{file}: unknown option {section}.{key}")
            values[name] = _convert(raw, _field_type(cls, fields[name]), f"{file}: {key}")
    for name, f in fields.items():
        for var in (*f.metadata.get("env_aliases", ()), env_name(section, name)):
            if environ is not None and var in environ:
                values[name] = _convert(environ[var], _field_type(cls, f), var)
    for name, raw in (overrides or {}).items():
        if raw is None:
            continue
        if name not in fields:
            raise ConfigValueError(f"unknown option {name}")
        values[name] = _convert(raw, _field_type(cls, fields[name]), _flag(fields[name]))
    return cls(**values)


def add_arguments(parser: argparse.ArgumentParser, cls: type, section: str) -> None:
    """Add one flag per option; unset flags stay None so lower layers show through."""
    for f in dataclasses.fields(cls):
        typ = _field_type(cls, f)
        env = env_name(section, f.name)
        help_ = f"{f.metadata.get('help', '')} (env {env}; default {f.default!r})"
        if typ is bool:
            parser.add_argument(_flag(f), dest=f.name, default=None,
                                action=argparse.BooleanOptionalAction, help=help_)
        else:
            parser.add_argument(_flag(f), dest=f.name, default=None, metavar=f.name.upper(),
                                help=help_)


def table_rows(cls: type, section: str) -> list[tuple[str, str, str, str]]:
    """(flag, environment variable, default, help) for each option: the README's table."""
    rows = []
    for f in dataclasses.fields(cls):
        env = env_name(section, f.name)
        aliases = f.metadata.get("env_aliases", ())
        env_text = " / ".join([env, *aliases])
        default = f.default
        default_text = ",".join(default) if isinstance(default, tuple) else str(default)
        rows.append((_flag(f), env_text, default_text, f.metadata.get("help", "")))
    return rows
