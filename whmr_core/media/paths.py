"""File names users hand whmr: printable, globbed without following links, safe to give OpenCV, unique.

A POSIX file name is bytes; Python carries those that are not UTF-8 as lone surrogates (``caf\\udce9.jpg``),
which print() refuses and OpenCV's C++ API crashes on. Nothing here needs a name to be UTF-8:
``shown`` is the printable form, ``opencv_path`` gives OpenCV an ASCII link to the file, ``expand_glob``
walks ``**`` without following symbolic links (a link to a parent folder would loop forever) and
``output_stems`` gives each input its own output name.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["expand_glob", "has_magic", "opencv_path", "output_stems", "shown"]


def shown(path: str | os.PathLike[str]) -> str:
    """The path as text that can always be printed: bytes that are not UTF-8 appear as ``\\xe9``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def has_magic(text: str) -> bool:
    return glob.has_magic(text)


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _matches(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Whether path components ``parts`` match glob components ``pattern`` (``**``: any number of folders;
    hidden names only where the pattern component starts with a dot, as glob does)."""

    @functools.cache
    def match(i: int, j: int) -> bool:
        if j == len(pattern):
            return i == len(parts)
        if pattern[j] == "**":
            if match(i, j + 1):
                return True
            return i < len(parts) and not _hidden(parts[i]) and match(i + 1, j)
        if i == len(parts) or (_hidden(parts[i]) and not _hidden(pattern[j])):
            return False
        return fnmatch.fnmatchcase(parts[i], pattern[j]) and match(i + 1, j + 1)

    return match(0, 0)


def expand_glob(pattern: str) -> list[Path]:
    """Sorted files matching ``pattern``; ``**`` spans folders but never enters a symbolic link to a
    folder (``glob.glob`` does, and two self-links give 2^40 paths). Unreadable folders are passed over."""
    if "**" not in pattern:  # one folder level per component: finite even through links
        return sorted(Path(m) for m in glob.glob(pattern) if os.path.isfile(m))
    parts = Path(pattern).parts
    first_magic = next(i for i, p in enumerate(parts) if has_magic(p))
    base = Path(*parts[:first_magic]) if first_magic else Path(".")
    rest = tuple(parts[first_magic:])
    found = []
    for folder, dirs, files in os.walk(base, followlinks=False):
        rel = Path(folder).relative_to(base).parts
        dirs[:] = sorted(d for d in dirs if not _hidden(d) or any(_hidden(p) for p in rest))
        for name in files:
            path = Path(folder, name)
            if _matches((*rel, name), rest) and path.is_file():  # a link to a file is a file
                found.append(path if first_magic else Path(*rel, name))
    return sorted(found)


@contextmanager
def opencv_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """A name of ``path`` that OpenCV can take: itself when it is UTF-8, else an ASCII symbolic link to it
    in a temporary folder (removed on exit; a file written through it lands at ``path``)."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield text
        return
    suffix = Path(text).suffix
    suffix = suffix if suffix.isascii() and suffix.isprintable() else ""
    with tempfile.TemporaryDirectory(prefix="whmr-") as tmp:
        link = os.path.join(tmp, "file" + suffix)
        os.symlink(os.path.abspath(text), link)
        yield link


def output_stems(files: Sequence[Path]) -> list[str]:
    """One output stem per input, never two alike (nor alike but for case: some file systems fold it).

    An input keeps its own stem when it is the first with it; a repeat gets ``_2``, ``_3``... skipping
    every stem some other input has, so ``a.jpg``, ``a.png``, ``a_2.jpg`` give ``a``, ``a_3``, ``a_2``."""
    taken = {f.stem.casefold() for f in files}
    first: set[str] = set()
    out = []
    for f in files:
        key = f.stem.casefold()
        if key not in first:
            first.add(key)
            out.append(f.stem)
            continue
        n = 2
        while f"{f.stem}_{n}".casefold() in taken:
            n += 1
        taken.add(f"{f.stem}_{n}".casefold())
        out.append(f"{f.stem}_{n}")
    return out
