"""4D-Humans (HMR 2.0) webdataset shards: ``dataset_tars/aic-train/000000.tar``, ``ava-train-midframes/...``,
``insta-train/...``, ``coco-train-2014/...``, ... Each sample is ``<key>.jpg`` and ``<key>.data.pyd``: a
pickled list with one dict per person. The tars are indexed in place (member offsets; nothing is unpacked)
and each image is read from its tar when its sample is drawn; the pickles are read with ``safe_pickle``.

| key of a person's dict | shape | whmr |
|---|---|---|
| center | (2,) | ``center`` |
| scale | (2,) or () | ``scale``: the larger side (box side / 200) |
| keypoints_2d | (44,3) | ``part``, layout hmr2_44 (SPIN-49 without the face points) |
| keypoints_3d | (44,4) | ``S``, the same layout |
| body_pose | (72,) | ``pose`` (root first, camera frame) |
| betas | (10,) | ``shape`` |
| has_body_pose, has_betas | () | ``has_smpl`` (both) |
| extra_info, and any other key | | ignored |
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whmr_core.data.annotations import AnnotationError, Annotations, annotations_from_columns
from whmr_core.data.safe_pickle import UnsafePickleError, safe_loads

__all__ = ["FILES", "KEYS", "TarImages", "read"]

FILES = "4D-Humans webdataset shards (*.tar of <key>.jpg + <key>.data.pyd)"
KEYS = {
    "<key>.jpg": "the image, read from the tar when drawn",
    "<key>.data.pyd": "people (pickled list of dicts, read safely):",
    "  center": "center",
    "  scale": "scale (larger side)",
    "  keypoints_2d": "part (hmr2_44)",
    "  keypoints_3d": "S (hmr2_44)",
    "  body_pose": "pose",
    "  betas": "shape",
    "  has_body_pose, has_betas": "has_smpl",
    "  extra_info": "ignored",
}


@dataclass(frozen=True)
class TarImages:
    """Image bytes of each row: (tar path, data offset, size), read with one seek."""

    tars: tuple[str, ...]
    where: np.ndarray  # (N,3) int64: tar index, offset, size

    def read(self, index: int) -> bytes:
        t, offset, size = (int(x) for x in self.where[index])
        with open(self.tars[t], "rb") as f:
            f.seek(offset)
            return f.read(size)


def _shards(path: Path) -> list[Path]:
    shards = [path] if path.is_file() else sorted(path.glob("*.tar"))
    if not shards:
        raise AnnotationError(path, None, None, "no .tar shards found")
    return shards


def read(path: str | Path) -> Annotations:
    """The people of one shard, or of every ``*.tar`` in a folder."""
    path = Path(path)
    rows: dict[str, list] = {
        k: [] for k in ("imgname", "center", "scale", "part", "S", "pose", "shape", "has_smpl")
    }
    where: list[tuple[int, int, int]] = []
    tars = _shards(path)
    for t, shard in enumerate(tars):
        try:
            with tarfile.open(shard, "r:") as tar:  # uncompressed: members are addressable by offset
                images: dict[str, tarfile.TarInfo] = {}
                people: dict[str, tarfile.TarInfo] = {}
                for m in tar:
                    key, _, ext = m.name.partition(".")
                    if ext in ("jpg", "jpeg", "png"):
                        images[key] = m
                    elif ext == "data.pyd":
                        people[key] = m
                for key in sorted(people.keys() & images.keys()):
                    f = tar.extractfile(people[key])
                    assert f is not None
                    try:
                        persons = safe_loads(f.read())
                    except (UnsafePickleError, ValueError, EOFError) as e:
                        raise AnnotationError(shard, None, f"{key}.data.pyd", f"unreadable ({e})") from e
                    if isinstance(persons, dict):
                        persons = [persons]
                    img = images[key]
                    for person in persons:
                        _add(rows, person, f"{shard.name}/{img.name}", shard, key)
                        where.append((t, img.offset_data, img.size))
        except tarfile.TarError as e:
            raise AnnotationError(shard, None, None, f"not a readable uncompressed tar ({e})") from e
    if not where:
        raise AnnotationError(path, None, None, "no sample with both an image and a .data.pyd")
    columns = {k: np.asarray(v) for k, v in rows.items()}
    source = TarImages(tuple(str(s) for s in tars), np.asarray(where, dtype=np.int64))
    return annotations_from_columns(
        columns, path=path, joints_layout="hmr2_44", format="hmr2-tars", image_source=source
    )


def _add(rows: dict[str, list], person: dict, imgname: str, shard: Path, key: str) -> None:
    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in person:
            raise AnnotationError(shard, None, f"{key}.data.pyd:{name}", "missing")
        a = np.asarray(person[name], dtype=np.float64)
        if shape and a.size != int(np.prod(shape)):
            raise AnnotationError(shard, None, f"{key}.data.pyd:{name}", f"expected {shape}, got {a.shape}")
        return a.reshape(shape)

    rows["imgname"].append(imgname)
    rows["center"].append(get("center", (2,)))
    scale = np.asarray(person.get("scale", np.nan), dtype=np.float64).reshape(-1)
    rows["scale"].append(float(scale.max()))
    rows["part"].append(get("keypoints_2d", (44, 3)))
    rows["S"].append(get("keypoints_3d", (44, 4)))
    has_pose = float(np.asarray(person.get("has_body_pose", 0)).reshape(-1)[0])
    has_betas = float(np.asarray(person.get("has_betas", 0)).reshape(-1)[0])
    rows["pose"].append(get("body_pose", (72,)) if "body_pose" in person else np.zeros(72))
    rows["shape"].append(get("betas", (10,)) if "betas" in person else np.zeros(10))
    rows["has_smpl"].append(float(has_pose > 0 and has_betas > 0))
