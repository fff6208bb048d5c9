"""Strict YAML <-> dataclass conversion for every whmr config (DESIGN.md section 10).

An unknown or misspelt key is an error naming it and the allowed keys; values are checked against the
dataclass field types (numbers, strings, bools, Literal choices, tuples, Optional, nested dataclasses).

Fields declared with ``setting(default, description, low=..., high=...)`` carry their description and
valid range beside them (dataclass field metadata ``"description"`` and ``"range"``, a ``Range`` that
unpacks as ``low, high``); ``check_settings`` (called from
the config's ``__post_init__``) enforces the ranges and rejects NaN and infinity in every float, so a
config built in code, from YAML or from ROS parameters is checked the same way. The ROS parameter table
reads the same metadata.
"""

from __future__ import annotations

import array
import dataclasses
import math
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

__all__ = [
    "ConfigError",
    "Range",
    "check_settings",
    "dataclass_from_dict",
    "dataclass_to_dict",
    "read_yaml",
    "setting",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or dictionary does not describe a valid config."""


@dataclasses.dataclass(frozen=True)
class Range:
    """Valid values of a numeric setting: ``low``/``high`` bounds (None: unbounded), each inclusive
    unless ``low_open``/``high_open``. Applies to every element of a tuple setting. Unpacks as
    ``low, high`` (what a ROS parameter range can express: inclusive bounds)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __iter__(self):
        return iter((self.low, self.high))

    def contains(self, value: float) -> bool:
        if self.low is not None and not (value > self.low if self.low_open else value >= self.low):
            return False
        return self.high is None or bool(value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            lo, hi = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {lo}{self.low:g}, {self.high:g}{hi}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "any finite value"


def setting(
    default: Any = dataclasses.MISSING,
    description: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with its description and range (``low_open``: low itself is not allowed)."""
    meta: dict[str, Any] = {"description": description}
    if low is not None or high is not None:  # unbounded settings carry no range (ROS: none declared)
        meta["range"] = Range(low, high, low_open, high_open)
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, tuple | list):
        return [x for v in value for x in _numbers(v)]
    return []


def check_settings(obj: Any, where: str = "") -> None:
    """Raise ConfigError naming the first field of ``obj`` outside its declared range, or holding a NaN or
    infinite float (every float field, declared range or not)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        name = f"{where}.{f.name}" if where else f.name
        rng = f.metadata.get("range")
        if rng is not None and not isinstance(rng, Range):
            rng = Range(*rng)  # a plain (low, high) pair
        for v in _numbers(value):
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{name}: must be a finite number, got {value!r}")
            if rng is not None and not rng.contains(v):
                raise ConfigError(f"{name}: must be {rng.describe()}, got {value!r}")


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin = get_origin(hint)
    args = get_args(hint)
    if is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dataclass_from_dict(hint, value, where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple | array.array):  # array: rclpy's double arrays
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        pairs = enumerate(zip(value, args, strict=True))
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in pairs)
    if args and type(None) in args:  # Optional[X] / X | None
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _convert(value, a, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {'; '.join(errors)}")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint in (int, bool, str):
        if type(value) is not hint:
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    if hint is Any:
        return value
    raise ConfigError(f"{where}: unsupported type {hint}")


def dataclass_from_dict(cls: type[T], data: dict[str, Any], where: str = "", base: T | None = None) -> T:
    """Build ``cls`` from ``data`` strictly; with ``base``, fields not in ``data`` keep base's values
    (nested dataclasses are overridden field by field)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        hint = hints[name]
        if is_dataclass(hint) and base is not None and isinstance(value, dict):
            kwargs[name] = dataclass_from_dict(hint, value, key, getattr(base, name))
        else:
            kwargs[name] = _convert(value, hint, key)
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except ConfigError as err:  # a range check in __post_init__: say which config it was
        raise ConfigError(f"{where}: {err}" if where else str(err)) from err
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where or 'config'}: {err}") from err


def dataclass_to_dict(obj: Any) -> dict[str, Any]:
    """Plain dict (lists for tuples) that ``dataclass_from_dict`` reads back to an equal object."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(obj))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping; ConfigError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data
