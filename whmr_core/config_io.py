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
import re
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
    "load_yaml_text",
    "read_yaml",
    "ros_scalar",
    "setting",
    "some_names",
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


def some_names(names: list[Any], most: int = 10, width: int = 60) -> str:
    """The first ``most`` of ``names`` for an error line, each cut to ``width`` characters (a file with
    200,000 unknown keys, or a key a megabyte long, still gives one short line)."""
    shown = [repr(n) if len(repr(n)) <= width else repr(n)[: width - 3] + "..." for n in names[:most]]
    more = f", and {len(names) - most:,} more" if len(names) > most else ""
    return f"[{', '.join(shown)}{more}]"


def dataclass_from_dict(cls: type[T], data: dict[str, Any], where: str = "", base: T | None = None) -> T:
    """Build ``cls`` from ``data`` strictly; with ``base``, fields not in ``data`` keep base's values
    (nested dataclasses are overridden field by field)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names, key=str)
    if unknown:
        raise ConfigError(
            f"{where or 'config'}: unknown key(s) {some_names(unknown)}; allowed: {sorted(names)}"
        )
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


# Limits of a config file (real ones are a few KB, a dozen levels deep, a few hundred values).
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 32
MAX_YAML_NODES = 10_000  # values and keys (an alias: all it repeats); pure-Python parsing: ~1 s at most

_ROS_SCALAR_TAG = "tag:whmr,2026:ros-scalar"
_ROS_TRUE = frozenset("y Y yes Yes YES true True TRUE on On ON".split())
_ROS_FALSE = frozenset("n N no No NO false False FALSE off Off OFF".split())
_NULL = frozenset(("", "~", "null", "Null", "NULL"))
_ROS_INT = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")  # strtol(value, &end, 0)
_ROS_FLOAT = re.compile(r"\s*[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf(inity)?|nan)", re.IGNORECASE)
_ROS_SPECIAL = {".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan, ".inf": math.inf, ".Inf": math.inf,
                ".INF": math.inf, "-.inf": -math.inf, "-.Inf": -math.inf, "-.INF": -math.inf}  # fmt: skip


def ros_scalar(text: str) -> Any:
    """An unquoted YAML scalar as ROS 2 reads a params file (rcl_yaml_param_parser): its bool words
    (y, yes, on, true... any of three cases), else a whole 64-bit ``strtol`` number (0x.. hex, 0.. octal),
    else a ``strtod`` number (``3e-2``, which YAML 1.1 reads as a string), else text. Empty, ``~`` and
    ``null`` are None (ROS has no null parameter; the setting's type check then names it)."""
    if text in _ROS_TRUE:
        return True
    if text in _ROS_FALSE:
        return False
    if text in _NULL:
        return None
    if m := _ROS_INT.fullmatch(text):
        digits = m[2]
        base = 16 if digits[:2] in ("0x", "0X") else 8 if len(digits) > 1 and digits[0] == "0" else 10
        value = int(digits, base) * (-1 if m[1] == "-" else 1)
        if -(2**63) <= value < 2**63:  # out of range: strtol fails, strtod reads it
            return value
    if text in _ROS_SPECIAL:
        return _ROS_SPECIAL[text]
    if _ROS_FLOAT.fullmatch(text):
        return float(text)
    return text


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader with limits on nesting and on the values an alias can multiply (an 891-byte "billion
    laughs" file expands to 10^9 values), and ROS's reading of unquoted scalars (``ros_scalar``)."""

    def __init__(self, stream: str, name: str) -> None:
        super().__init__(stream)
        self.name = name
        self.depth = 0
        self.composed = 0
        self.sizes: dict[int, int] = {}  # id(node) -> values it stands for, aliases expanded

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0] and value != "<<":  # plain (unquoted), untagged
            return _ROS_SCALAR_TAG
        return super().resolve(kind, value, implicit)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        for key, _ in node.value:  # keys are names, as ROS reads them: `n:` is "n", not False
            if key.tag == _ROS_SCALAR_TAG:
                key.tag = "tag:yaml.org,2002:str"
        return super().construct_mapping(node, deep)

    def _refuse(self, what: str) -> ConfigError:
        return ConfigError(f"{self.name}: {what}")

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            target = self.anchors.get(self.peek_event().anchor)
            if target is not None and id(target) not in self.sizes:
                raise self._refuse("an alias inside its own anchor (a structure that contains itself)")
            node = super().compose_node(parent, index)
            size = self.sizes[id(node)]
        else:
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                raise self._refuse(f"nested deeper than {MAX_YAML_DEPTH} levels")
            self.composed += 1
            try:
                node = super().compose_node(parent, index)
            finally:
                self.depth -= 1
            children = node.value if isinstance(node, yaml.SequenceNode) else []
            if isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            size = 1 + sum(self.sizes[id(c)] for c in children)
            self.sizes[id(node)] = size
        if size > MAX_YAML_NODES or self.composed > MAX_YAML_NODES:
            raise self._refuse(f"more than {MAX_YAML_NODES:,} values (aliases expanded)")
        return node


_ConfigLoader.add_constructor(_ROS_SCALAR_TAG, lambda loader, node: ros_scalar(node.value))


def load_yaml_text(text: str, name: str = "config") -> Any:
    """YAML text -> Python data within the limits above; ConfigError naming ``name`` otherwise."""
    loader = _ConfigLoader(text, name)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise ConfigError(f"{name}: not valid YAML ({' '.join(str(err).split())})") from err
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file's top-level mapping (size, nesting and alias limits; numbers read as ROS reads
    them, ``ros_scalar``); ConfigError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():  # a folder, or a FIFO that would block the read
        raise ConfigError(f"{path}: config file not found" if not path.exists() else f"{path}: not a file")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_YAML_BYTES >> 10} KB, not a config file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    data = load_yaml_text(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data
