"""``levenberg_marquardt``: a batch of independent least-squares problems (one per person), solved together.

Each row of ``x`` is one problem with its own damping and acceptance: a step is kept only where it lowers
that row's energy (the damping then shrinks, towards Gauss-Newton), else the row stays and its damping
grows (towards a short gradient step). Damping is Marquardt's: proportional to the diagonal of J^T J, so
unknowns of different units (radians, shape coefficients, metres) need no hand-made scaling. Every
iteration costs one batched linearisation, and a row's result does not depend on the other rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["Linearisation", "levenberg_marquardt"]

# (energy (m,), J^T r (m,P), J^T J (m,P,P)) at x, for E = sum r^2 (robust terms by their IRLS weights).
Linearisation = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

FIRST_DAMPING = 1e-2  # trust the Gauss-Newton step, a little, from the start
SHRINK = 0.3  # damping factor after an accepted step
GROW = 10.0  # ... after a rejected one
MIN_DAMPING, MAX_DAMPING = 1e-7, 1e7
RIDGE = 1e-9  # keeps an unknown that nothing constrains from making the system singular


def levenberg_marquardt(
    linearise: Callable[[torch.Tensor], Linearisation], x0: torch.Tensor, iterations: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Minimise each row's energy over ``x`` (m,P), rows independent.

    Returns (x, energy at x0, energy at x, iterations run). Rows whose energy is not finite never move.
    """
    x = x0.clone()
    e, g, h = linearise(x)
    e_start = e
    m, p = x.shape
    damping = torch.full((m,), FIRST_DAMPING, dtype=x.dtype, device=x.device)
    eye = torch.eye(p, dtype=x.dtype, device=x.device)
    for _ in range(iterations):
        diag = torch.diagonal(h, dim1=-2, dim2=-1).clamp_min(0.0)
        system = h + (damping[:, None] * diag + RIDGE).unsqueeze(-1) * eye
        step = _solve(system, -g)
        e_new, g_new, h_new = linearise(x + step)
        ok = torch.isfinite(e_new) & (e_new < e)
        x = torch.where(ok[:, None], x + step, x)
        e = torch.where(ok, e_new, e)
        g = torch.where(ok[:, None], g_new, g)
        h = torch.where(ok[:, None, None], h_new, h)
        damping = torch.where(ok, damping * SHRINK, damping * GROW).clamp(MIN_DAMPING, MAX_DAMPING)
    return x, e_start, e, iterations


def _solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row a x = b; zero where a row's system is singular or not finite. numpy's LAPACK: systems this
    small stay on the calling thread (torch's MKL wakes its OpenMP pool: milliseconds on a busy machine)."""
    a_np, b_np = a.numpy(), b.numpy()
    x = np.zeros_like(b_np)
    finite = np.isfinite(a_np).all((1, 2)) & np.isfinite(b_np).all(1)
    for i in np.flatnonzero(finite):
        try:
            x[i] = np.linalg.solve(a_np[i], b_np[i])
        except np.linalg.LinAlgError:
            pass  # singular: this row stays
    return torch.from_numpy(x)
