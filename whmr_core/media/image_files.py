"""Image files from users, read within limits; pictures written without handing OpenCV a file name.

``read_image`` is the one way whmr reads an untrusted image file: the file's size is checked before it is
read and the pixel count in its header before it is decoded (a 1 MB PNG can claim 30000x30000 pixels and
take gigabytes to decode), and every way it can fail (missing, unreadable, not an image, too big) is an
``ImageFileError`` naming the file, so a batch skips that file and goes on.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from pathlib import Path

import cv2
import numpy as np

from whmr_core.media.paths import shown

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "ImageFileError",
    "decode_image",
    "read_image",
    "write_image",
]

MAX_IMAGE_BYTES = 256 * 2**20  # larger than any photo a camera writes
MAX_IMAGE_PIXELS = 100_000_000  # 100 MP (300 MB decoded): above phone cameras, far below a bomb's claims


class ImageFileError(ValueError):
    """An image file that cannot be used; the message names the file and the reason."""


def _header_problem(data: bytes) -> str:
    """Why the image must not be decoded ("" if it may): its header claims more than ``MAX_IMAGE_PIXELS``
    pixels, or holds no format Pillow knows. Pillow reads the header only; it knows every format of
    ``IMAGE_SUFFIXES``, and a format only OpenCV reads (Radiance HDR, OpenEXR...) could not be checked
    before OpenCV decodes up to its own 2^30-pixel limit."""
    from PIL import Image, UnidentifiedImageError

    limit = f"more than the {MAX_IMAGE_PIXELS / 10**6:g} megapixels whmr decodes"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
        try:
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
        except Image.DecompressionBombError as e:  # Pillow's own limit (2 x 89 MP) is above ours
            claimed = re.search(r"\((\d+) pixels\)", str(e))
            return f"{int(claimed[1]):,} pixels, {limit}" if claimed else limit
        except (UnidentifiedImageError, ValueError, OSError, SyntaxError) as e:
            return f"not an image whmr reads ({' '.join(str(e).split()) or type(e).__name__})"
    return f"{w}x{h} pixels, {limit}" if w * h > MAX_IMAGE_PIXELS else ""


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """(H, W, 3) RGB uint8 from an encoded image (EXIF orientation applied, grey and 16-bit converted);
    ImageFileError naming ``name`` if it is not an image or has more than ``MAX_IMAGE_PIXELS`` pixels
    (judged from the header, before decoding)."""
    if problem := _header_problem(data):
        raise ImageFileError(f"{name}: {problem}")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:  # a damaged stream
        raise ImageFileError(f"{name}: not an image OpenCV can decode ({' '.join(str(e).split())})") from None
    if img is None:
        raise ImageFileError(f"{name}: not an image OpenCV can read")
    return np.ascontiguousarray(img[:, :, ::-1])


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """(H, W, 3) RGB uint8 of an image file; ImageFileError (a ValueError) naming it when it cannot be."""
    name = shown(path)
    try:
        # O_NONBLOCK: a FIFO named like a photo must not block the batch until someone writes to it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise ImageFileError(f"{name}: cannot open ({e.strerror or e})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ImageFileError(f"{name}: not a regular file")
        if st.st_size > MAX_IMAGE_BYTES:
            raise ImageFileError(f"{name}: {st.st_size / 2**20:.0f} MB, more than {MAX_IMAGE_BYTES >> 20} MB")
        try:
            data = f.read(MAX_IMAGE_BYTES + 1)
        except OSError as e:
            raise ImageFileError(f"{name}: cannot read ({e.strerror or e})") from None
    if len(data) > MAX_IMAGE_BYTES:  # grew while read
        raise ImageFileError(f"{name}: more than {MAX_IMAGE_BYTES >> 20} MB")
    return decode_image(data, name)


def write_image(path: Path, rgb: np.ndarray) -> None:
    """Encode by the suffix (``.png``, ``.jpg``) and write with Python's file API, so any file name works
    (``cv2.imwrite`` crashes on names that are not UTF-8); OSError/ValueError when it cannot."""
    ok, buf = cv2.imencode(Path(path).suffix.lower() or ".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ValueError(f"{shown(path)}: OpenCV cannot encode this picture")
    Path(path).write_bytes(buf.tobytes())
