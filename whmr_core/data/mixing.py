"""Several data sets sampled at fixed ratios (SPIN's and the W-HMR release's ``MixedDataset``, 4D-Humans'
weighted mix): each epoch draws ``ratio * epoch_size`` samples from each set, a fresh permutation of it
repeated as often as needed, and shuffles the draws together. The order depends only on (seed, epoch), so
a resumed run draws the same samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["MixedDataset", "mix_counts"]


def mix_counts(ratios: Sequence[float], epoch_size: int) -> list[int]:
    """Samples per set in an epoch of ``epoch_size``: largest remainders, so they sum exactly."""
    r = np.asarray(ratios, dtype=np.float64)
    if (r <= 0).any() or not np.isfinite(r).all():
        raise ValueError(f"ratios: must be positive, got {list(ratios)}")
    share = r / r.sum() * epoch_size
    counts = np.floor(share).astype(int)
    for k in np.argsort(-(share - counts))[: epoch_size - int(counts.sum())]:
        counts[k] += 1
    return counts.tolist()


@dataclass
class MixedDataset(torch.utils.data.Dataset):
    """``datasets`` (each a ``HumanDataset``) under one index space; items carry ``source`` (the set's
    index). ``epoch_order`` gives the mix an epoch draws."""

    datasets: list
    names: list[str]
    ratios: list[float]
    epoch_size: int

    def __post_init__(self) -> None:
        if not (len(self.datasets) == len(self.names) == len(self.ratios)) or not self.datasets:
            raise ValueError("mix: one name and one ratio per data set, at least one set")
        self.counts = mix_counts(self.ratios, self.epoch_size)
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> tuple[int, int]:
        k = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return k, index - self.offsets[k]

    def __getitem__(self, index: int) -> dict:
        k, i = self.locate(index)
        item = self.datasets[k][i]
        item["source"] = torch.tensor(k, dtype=torch.int64)
        return item

    def set_epoch(self, epoch: int) -> None:
        for d in self.datasets:
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)

    def epoch_order(self, seed: int, epoch: int) -> list[int]:
        """The ``epoch_size`` global indices epoch ``epoch`` draws, shuffled."""
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        parts = []
        for k, (d, n) in enumerate(zip(self.datasets, self.counts, strict=True)):
            reps = -(-n // len(d))  # ceil: a small set is cycled, each pass a fresh permutation
            idx = torch.cat([torch.randperm(len(d), generator=g) for _ in range(reps)])[:n]
            parts.append(idx + self.offsets[k])
        order = torch.cat(parts)
        return order[torch.randperm(len(order), generator=g)].tolist()

    def describe(self) -> str:
        total = sum(self.counts)
        return ", ".join(
            f"{name} {n / total:.1%} ({n} of {total} per epoch, {len(d)} people)"
            for name, n, d in zip(self.names, self.counts, self.datasets, strict=True)
        )
