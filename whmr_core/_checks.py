"""Argument validation shared by the pure tensor functions.

Shape checks always run; value checks (finite, positive) are skipped while tracing for export,
where they would be frozen into constants and only produce warnings.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()


def check_tensor(
    name: str,
    value: object,
    tail: Sequence[int | None],
    *,
    batch_dims: int | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """Raise ValueError naming ``name`` unless ``value`` is a floating tensor ending in ``tail``.

    ``None`` in ``tail`` accepts any size there. ``batch_dims`` fixes the number of leading dims.
    """
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
    shape = tuple(value.shape)
    n = len(tail)
    got_tail = shape[len(shape) - n :]
    ok = len(shape) >= n and all(t is None or s == t for s, t in zip(got_tail, tail, strict=True))
    if batch_dims is not None and len(shape) != batch_dims + n:
        ok = False
    if not ok:
        want = ", ".join("*" if t is None else str(t) for t in tail)
        lead = "N" if batch_dims == 1 else "..."
        raise ValueError(f"{name}: expected shape ({lead}, {want}), got {shape}")
    if finite and not _tracing() and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name}: contains non-finite values (NaN or inf)")
    return value


def check_positive(name: str, value: torch.Tensor) -> torch.Tensor:
    """Raise ValueError naming ``name`` if any entry is <= 0."""
    if not _tracing() and bool((value <= 0).any()):
        raise ValueError(f"{name}: must be > 0 everywhere, got min {float(value.min()):.6g}")
    return value


def check_batch(names: Sequence[str], *tensors: torch.Tensor) -> int:
    """All tensors share the leading batch size; returns it.

    Skipped while tracing for export: sizes are then traced tensors, which a set cannot compare.
    """
    if _tracing():
        return tensors[0].shape[0]
    sizes = {t.shape[0] for t in tensors}
    if len(sizes) > 1:
        got = ", ".join(f"{n}={t.shape[0]}" for n, t in zip(names, tensors, strict=True))
        raise ValueError(f"batch sizes differ: {got}")
    return tensors[0].shape[0]
