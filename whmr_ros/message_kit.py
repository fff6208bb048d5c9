"""Building ROS 2 messages by type name with either rclpy's classes or rosbags' classes.

The output builders (``whmr_ros.outputs``) are written once against ``MessageKit``; the node passes an
``RclpyKit`` (real ROS types, imported lazily), the bag runner and the tests a ``RosbagsKit`` (pure Python,
same field names and CDR bytes). The two differ where the builders must not care:
- rosbags dataclasses need every field; ``RosbagsKit.new`` fills the ones not given with zero values,
  so a field added in a later distro (Marker.texture on Jazzy) needs no special case;
- numeric arrays are numpy arrays in rosbags but ``array.array`` in rclpy (its setters reject numpy);
- a ``byte`` field is an int in rosbags but a length-1 ``bytes`` in rclpy.
"""

from __future__ import annotations

import array
import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

__all__ = ["MessageKit", "RclpyKit", "RosbagsKit"]

# rosbags base type -> numpy dtype (for defaults of fixed arrays and sequences).
_DTYPES = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}


class MessageKit(ABC):
    """``new(type name, **fields)`` plus converters for array and byte fields."""

    @abstractmethod
    def new(self, msgtype: str, /, **fields: Any) -> Any: ...

    @abstractmethod
    def float32s(self, values: np.ndarray) -> Any: ...

    @abstractmethod
    def uint32s(self, values: np.ndarray) -> Any: ...

    @abstractmethod
    def int32s(self, values: np.ndarray) -> Any: ...

    @abstractmethod
    def uint8s(self, data: bytes) -> Any: ...

    @abstractmethod
    def byte(self, value: int) -> Any: ...

    @abstractmethod
    def serialize(self, msg: Any, msgtype: str) -> bytes:
        """The message as CDR bytes with their encapsulation header (what DDS and bags carry)."""

    @property
    def types(self) -> Mapping[str, Any]:
        """Type name -> class, for ``whmr_ros.conversions`` builders."""
        return _KitTypes(self)


class _KitTypes(Mapping[str, Any]):
    def __init__(self, kit: MessageKit) -> None:
        self._kit = kit

    def __getitem__(self, msgtype: str) -> Any:
        return lambda **fields: self._kit.new(msgtype, **fields)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class RosbagsKit(MessageKit):
    """Messages of a rosbags typestore (``whmr_ros.message_types.typestore()``)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def new(self, msgtype: str, /, **fields: Any) -> Any:
        try:
            cls = self.store.types[msgtype]
            _, defs = self.store.fielddefs[msgtype]
        except KeyError:
            raise KeyError(f"{msgtype}: not in the rosbags typestore") from None
        unknown = set(fields) - {f for f, _ in defs}
        if unknown:
            raise TypeError(f"{msgtype}: unknown fields {sorted(unknown)}")
        values = {f: fields[f] if f in fields else self._default(desc) for f, desc in defs}
        return cls(**values)

    def _default(self, desc: tuple) -> Any:
        kind, spec = desc
        kind = int(kind)
        if kind == 1:  # BASE: (type, max string length)
            base = spec[0]
            return "" if base == "string" else (False if base == "bool" else _DTYPES[base](0).item())
        if kind == 2:  # NAME: a nested message
            return self.new(spec)
        sub, size = spec  # ARRAY (3, fixed size) or SEQUENCE (4)
        sub_kind, sub_spec = sub
        if int(sub_kind) == 1 and sub_spec[0] in _DTYPES:
            return np.zeros(size if kind == 3 else 0, dtype=_DTYPES[sub_spec[0]])
        return [self._default(sub) for _ in range(size if kind == 3 else 0)]

    def float32s(self, values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(values, dtype=np.float32).reshape(-1)

    def uint32s(self, values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(values, dtype=np.uint32).reshape(-1)

    def int32s(self, values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(values, dtype=np.int32).reshape(-1)

    def uint8s(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=np.uint8).copy()

    def byte(self, value: int) -> int:
        return int(value)

    def serialize(self, msg: Any, msgtype: str) -> bytes:
        return bytes(self.store.serialize_cdr(msg, msgtype))


class RclpyKit(MessageKit):
    """Messages of the installed ROS 2 Python packages (``visualization_msgs.msg.Marker`` ...)."""

    def __init__(self) -> None:
        self._classes: dict[str, Any] = {}

    def cls(self, name: str) -> Any:
        c = self._classes.get(name)
        if c is None:
            pkg, _, msg = name.split("/")
            c = self._classes[name] = getattr(importlib.import_module(f"{pkg}.msg"), msg)
        return c

    def new(self, msgtype: str, /, **fields: Any) -> Any:
        return self.cls(msgtype)(**fields)

    @staticmethod
    def _array(code: str, values: np.ndarray, dtype: Any) -> array.array:
        a = array.array(code)
        a.frombytes(np.ascontiguousarray(values, dtype=dtype).tobytes())
        return a

    def float32s(self, values: np.ndarray) -> array.array:
        return self._array("f", values, np.float32)

    def uint32s(self, values: np.ndarray) -> array.array:
        return self._array("I", values, np.uint32)

    def int32s(self, values: np.ndarray) -> array.array:
        return self._array("i", values, np.int32)

    def uint8s(self, data: bytes) -> array.array:
        return array.array("B", data)

    def byte(self, value: int) -> bytes:
        return bytes([int(value)])

    def serialize(self, msg: Any, msgtype: str) -> bytes:
        from rclpy.serialization import serialize_message

        return serialize_message(msg)
