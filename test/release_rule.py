"""A deterministic weight for every entry of the W-HMR release's state_dict, from its name and a seed.

Shared by ``scripts/make_release_fixture.py`` (which loads these weights into the official code and records
its outputs) and ``test_release_parity.py`` (which regenerates them, imports them through whmr's converter
and compares). Entries whose values are data, not weights (mean parameters, the first grid, mesh
downsampling, SMPL buffers, counters) are not generated: the fixture stores the few the converter reads.
"""

from __future__ import annotations

import math
import re
import zlib

import torch

DATA_ENTRY = re.compile(
    r"(^points_grid$|\.init_(pose|shape|cam)$|Dmap|\.smpl\.|vertex_joint_selector|num_batches_tracked)"
)
# Output layers move Theta by a fraction of a unit, so the meshes stay body-like and Gram-Schmidt well posed.
_OUTPUT_LAYER = re.compile(r"\.(decpose|decshape|deccam|decrot)\.weight$")


def is_rule_entry(name: str) -> bool:
    return DATA_ENTRY.search(name) is None


def rule_weight(name: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """float32 tensor of ``shape`` for entry ``name``: scaled so activations stay O(1) through the network."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))
    base = torch.randn(shape, generator=g, dtype=torch.float32)
    if name.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=g, dtype=torch.float32)
    if name.endswith("running_mean"):
        return 0.1 * base
    if name.endswith("pos_embed"):
        return 0.02 * base
    if len(shape) == 1:
        return 1.0 + 0.1 * base if name.endswith(".weight") else 0.05 * base
    fan_in = math.prod(shape[1:])
    scale = 0.1 if _OUTPUT_LAYER.search(name) else 1.0
    return scale * base / math.sqrt(fan_in)


def release_state(
    spec: list[tuple[str, tuple[int, ...], str]], seed: int, data: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The whole state_dict: rule weights, the stored data entries, zeros for the other data entries."""
    out = {}
    for name, shape, dtype in spec:
        if name in data:
            out[name] = data[name]
        elif is_rule_entry(name):
            out[name] = rule_weight(name, tuple(shape), seed)
        else:
            out[name] = torch.zeros(shape, dtype=getattr(torch, dtype))
    return out
