"""``resolve(spec)``: which body model a name means, decided in one place.

A spec is what configs, checkpoints and exported models record: a shipped variant ("full", "lowres"), a
path to a SMPL-format file, or nothing ("" / None: ``DEFAULT_BODY``, the body a network is built on when
none is named). A model artifact records the body it was trained with, so hosts take the topology from
the artifact (``whmr_core.runtime.factory.load_topology``) and only check a body the user names against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whmr_core.body.model import VARIANTS, load_body_model, shipped_model_path
from whmr_core.body.topology import BodyTopology

__all__ = ["DEFAULT_BODY", "BodyMismatchError", "ResolvedBody", "check_same_body", "resolve"]

DEFAULT_BODY = "full"


class BodyMismatchError(ValueError):
    """A body model does not fit the network it is used with."""


@dataclass(frozen=True)
class ResolvedBody:
    spec: str  # as recorded in artifacts: a variant name or the file path
    path: Path
    name: str  # for messages and the topology: whmr-free-<variant> or the file's stem

    @property
    def variant(self) -> str | None:
        return self.spec if self.spec in VARIANTS else None

    def load(self, **smplx_kwargs: Any):
        """The ``smplx.SMPL`` module (``load_body_model``)."""
        if self.variant:
            return load_body_model(variant=self.variant, **smplx_kwargs)  # type: ignore[arg-type]
        return load_body_model(self.path, **smplx_kwargs)

    def topology(self) -> BodyTopology:
        return BodyTopology.from_body_model(self.load(), self.name)


def resolve(spec: str | Path | None) -> ResolvedBody:
    """The body a spec names; FileNotFoundError naming the file when a path does not exist."""
    s = str(spec) if spec else DEFAULT_BODY
    if s in VARIANTS:
        return ResolvedBody(s, shipped_model_path(s), f"whmr-free-{s}")
    path = Path(s).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"body model {s!r}: no such file (or use one of {list(VARIANTS)})")
    return ResolvedBody(str(path), path, path.stem)


def check_same_body(given: BodyTopology, trained: BodyTopology, where: str) -> None:
    """BodyMismatchError when ``given`` cannot stand for ``trained`` (other vertex or joint counts)."""
    if (given.num_vertices, given.num_joints) != (trained.num_vertices, trained.num_joints):
        raise BodyMismatchError(
            f"{where}: body model {given.model_name} ({given.num_vertices} vertices, {given.num_joints} "
            f"joints) does not match the body the model was trained with, {trained.model_name} "
            f"({trained.num_vertices} vertices, {trained.num_joints} joints); leave the body model unset "
            "to use the model's own"
        )
