"""Input bags for the bag runner: everything readable is read, and what was not is said.

A complete bag (mcap or sqlite3, with its ``metadata.yaml``) is read with rosbags' AnyReader. A recording
that was cut short (a killed ``ros2 bag record``, a full disk) has an mcap file without its summary and
footer, often without ``metadata.yaml``: AnyReader refuses it, so its records are read one by one with
mcap's streaming reader up to the cut. A reader error in the middle of a bag ends the reading there too.
Either way ``truncated`` says why reading stopped early, and the bag runner processes what was read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BagInput", "BagInputError", "open_bag"]

log = logging.getLogger(__name__)


class BagInputError(ValueError):
    """An input bag that cannot be read at all; the message names the path and the reason."""


@dataclass
class BagInput:
    """An opened input bag. ``connections`` carry topic, msgtype, msgdef, digest and msgcount (rosbags'
    ``Connection``); ``truncated`` is "" or why messages past some point could not be read."""

    path: Path
    connections: list[Any]
    truncated: str = ""
    _reader: Any = None  # AnyReader, or None when streaming
    _store: Any = None  # the typestore deserializing streamed records
    _files: Sequence[Path] = ()
    _by_channel: dict[tuple[int, int], Any] = field(default_factory=dict)  # (file, channel id) -> conn

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        if self._reader is not None:
            return self._reader.deserialize(raw, msgtype)
        return self._store.deserialize_cdr(raw, msgtype)

    def messages(self, connections: Sequence[Any]) -> Iterator[tuple[Any, int, bytes]]:
        """(connection, log time ns, raw CDR) in log-time order (streamed: file order); stops early, with
        ``truncated`` set, where the bag stops being readable."""
        wanted = {id(c) for c in connections}
        count = 0
        try:
            if self._reader is not None:
                for c, t, raw in self._reader.messages(connections=connections):
                    count += 1
                    yield c, t, raw
                return
            for k, f in enumerate(self._files):
                for channel_id, t, raw in _stream_messages(f):
                    c = self._by_channel.get((k, channel_id))
                    if c is not None and id(c) in wanted:
                        count += 1
                        yield c, t, raw
        except _READ_ERRORS as e:
            self.truncated = self.truncated or f"unreadable after {count} messages ({_why(e)})"
            log.warning("%s: %s; processing what was read", self.path, self.truncated)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def __enter__(self) -> BagInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    from mcap.exceptions import McapError
    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag2 import ReaderError

    return (AnyReaderError, ReaderError, McapError, sqlite3.DatabaseError, EOFError, OSError, ValueError)


_READ_ERRORS = _read_errors()


def _why(e: BaseException) -> str:
    return str(e) or type(e).__name__


def open_bag(path: str | Path, default_typestore: Any) -> BagInput:
    """Open a bag directory, ``.mcap`` or ``.db3``; a cut-short mcap is recovered record by record."""
    from rosbags.highlevel import AnyReader

    path = Path(path)
    if not path.exists():
        raise BagInputError(f"{path}: input bag not found")
    try:
        reader = AnyReader([path], default_typestore=default_typestore)  # it reads metadata.yaml here
        reader.open()
    except (*_READ_ERRORS, KeyError) as e:
        files = [path] if path.suffix == ".mcap" else sorted(path.glob("*.mcap")) if path.is_dir() else []
        if not files:
            hint = ""
            if path.is_dir() and any(path.glob("*.db3")) and not (path / "metadata.yaml").is_file():
                hint = "; a sqlite3 recording cut short: `ros2 bag reindex` rebuilds its metadata.yaml"
            raise BagInputError(f"{path}: not a readable ROS 2 bag ({_why(e)}{hint})") from None
        log.warning("%s: %s; reading its mcap records one by one (a recording cut short?)", path, _why(e))
        return _recover(path, files, default_typestore, _why(e))
    return BagInput(path, list(reader.connections), _reader=reader)


def _stream_records(file: Path) -> Iterator[Any]:
    from mcap.stream_reader import StreamReader

    with file.open("rb") as fh:
        yield from StreamReader(fh, skip_magic=False, validate_crcs=True).records


def _stream_messages(file: Path) -> Iterator[tuple[int, int, bytes]]:
    from mcap.records import Message

    for r in _stream_records(file):
        if isinstance(r, Message):
            yield r.channel_id, r.log_time, r.data


def _recover(path: Path, files: list[Path], default_typestore: Any, why_not_indexed: str) -> BagInput:
    """Scan the mcap files once for schemas, channels and message counts, up to where they stop."""
    from mcap.records import Channel, Footer, Message, Schema
    from rosbags.interfaces import (
        Connection,
        ConnectionExtRosbag2,
        MessageDefinition,
        MessageDefinitionFormat,
    )

    schemas: dict[tuple[int, int], Any] = {}
    channels: dict[tuple[int, int], Any] = {}
    counts: dict[tuple[int, int], int] = {}
    truncated = ""
    for k, f in enumerate(files):
        complete = False
        try:
            for r in _stream_records(f):
                if isinstance(r, Schema):
                    schemas[k, r.id] = r
                elif isinstance(r, Channel):
                    channels[k, r.id] = r
                elif isinstance(r, Message):
                    counts[k, r.channel_id] = counts.get((k, r.channel_id), 0) + 1
                elif isinstance(r, Footer):
                    complete = True
        except _READ_ERRORS as e:
            truncated = f"{f.name} ends after {sum(counts.values())} messages ({_why(e) or 'cut short'})"
        if not complete and not truncated:
            truncated = f"{f.name} has no footer"
        if truncated:
            break  # later files of a split bag cannot be trusted to follow on
    if not channels:
        raise BagInputError(f"{path}: not a readable ROS 2 bag ({why_not_indexed}; no mcap channels found)")
    typs: dict[str, Any] = dict(default_typestore.fielddefs)
    connections, by_channel = [], {}
    for key, ch in channels.items():
        schema = schemas.get((key[0], ch.schema_id))
        msgtype = schema.name if schema is not None else ""
        fmt, text = MessageDefinitionFormat.NONE, ""
        if schema is not None and schema.encoding in ("ros2msg", "ros2idl"):
            text = schema.data.decode("utf-8", "replace")
            fmt = MessageDefinitionFormat.MSG if schema.encoding == "ros2msg" else MessageDefinitionFormat.IDL
            typs.update(_types_of(msgtype, text, fmt))
        conn = Connection(
            len(connections) + 1, ch.topic, msgtype, MessageDefinition(fmt, text), "",
            counts.get(key, 0), ConnectionExtRosbag2(ch.message_encoding, []), None,
        )  # fmt: skip
        connections.append(conn)
        by_channel[key] = conn
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.EMPTY)
    store.register(typs)
    return BagInput(path, connections, truncated, None, store, files[: k + 1], by_channel)


def _types_of(msgtype: str, text: str, fmt: Any) -> dict[str, Any]:
    """Message types defined by a schema (the type and the definitions it embeds); {} when unparsable,
    so that the default typestore's definition is used."""
    from rosbags.interfaces import MessageDefinitionFormat
    from rosbags.typesys import TypesysError, get_types_from_idl, get_types_from_msg

    try:
        if fmt == MessageDefinitionFormat.MSG:
            return dict(get_types_from_msg(text, msgtype))
        return dict(get_types_from_idl(text))
    except (TypesysError, ValueError, IndexError):
        return {}
