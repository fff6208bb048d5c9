"""``minimise``: L-BFGS for a batch of independent problems (one per person), one energy evaluation a step.

torch.optim.LBFGS treats the batch as one problem: one step length and one curvature history for all
persons, so a person's fit depends on who else is in the frame, and its strong-Wolfe line search spends
extra evaluations. Here each row of ``x`` has its own history, step and acceptance (Armijo's condition;
a rejected step shrinks that row's next one and leaves its state alone), every iteration costs exactly
one batched energy-and-gradient evaluation, and a row's result does not depend on the other rows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["minimise"]

ARMIJO_C1 = 1e-4
SHRINK = 0.3  # step factor after a rejected step
FIRST_STEP = 0.1  # length of the first step (no curvature known yet), in units of x


def minimise(
    fun: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, iterations: int, history: int = 6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Minimise each row's energy ``fun(x) -> (m,)`` over ``x`` (m,P), rows independent.

    Returns (x, energy at x0, energy at x, iterations run). ``fun`` must build its energies from ``x`` with
    autograd (it is called under ``torch.enable_grad``); rows with a non-finite energy never move.
    """
    x = x0.detach().clone()
    e, g = _eval(fun, x)
    e_start = e
    m = x.shape[0]
    s_hist: list[torch.Tensor] = []
    y_hist: list[torch.Tensor] = []
    rho_hist: list[torch.Tensor] = []
    gamma = FIRST_STEP / g.norm(dim=1).clamp_min(1e-12)  # H0 = gamma I, until curvature is known
    step = torch.ones(m, dtype=x.dtype)
    done = 0
    for _ in range(iterations):
        d = -_two_loop(g, s_hist, y_hist, rho_hist, gamma)
        gd = (g * d).sum(1)
        bad = ~(gd < 0)  # not a descent direction (or NaN): fall back to scaled steepest descent
        if bad.any():
            d = torch.where(bad[:, None], -gamma[:, None] * g, d)
            gd = (g * d).sum(1)
        x_new = x + step[:, None] * d
        e_new, g_new = _eval(fun, x_new)
        done += 1
        ok = torch.isfinite(e_new) & torch.isfinite(g_new).all(1) & (e_new <= e + ARMIJO_C1 * step * gd)
        s = torch.where(ok[:, None], x_new - x, torch.zeros_like(x))
        y = torch.where(ok[:, None], g_new - g, torch.zeros_like(x))
        sy = (s * y).sum(1)
        curved = ok & (sy > 1e-10)
        # Rows without a usable pair this step store zeros (rho 0): they add nothing to the recursion.
        rho = torch.where(curved, 1.0 / torch.where(curved, sy, torch.ones_like(sy)), torch.zeros_like(sy))
        s_hist.append(s)
        y_hist.append(y)
        rho_hist.append(rho)
        if len(s_hist) > history:
            del s_hist[0], y_hist[0], rho_hist[0]
        yy = (y * y).sum(1)
        gamma = torch.where(curved, sy / torch.where(curved, yy, torch.ones_like(yy)), gamma)
        x = torch.where(ok[:, None], x_new, x)
        e = torch.where(ok, e_new, e)
        g = torch.where(ok[:, None], g_new, g)
        step = torch.where(ok, torch.ones_like(step), step * SHRINK)
        if float((step[:, None] * d).abs().max()) < 1e-7:
            break
    return x, e_start, e, done


def _eval(fun: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xr = x.detach().requires_grad_(True)
    with torch.enable_grad():
        e = fun(xr)
        (g,) = torch.autograd.grad(e.sum(), xr)
    return e.detach(), g


def _two_loop(
    g: torch.Tensor,
    s_hist: list[torch.Tensor],
    y_hist: list[torch.Tensor],
    rho_hist: list[torch.Tensor],
    gamma: torch.Tensor,
) -> torch.Tensor:
    """H g by the L-BFGS two-loop recursion, row by row (batched)."""
    q = g.clone()
    alphas = []
    for s, y, rho in zip(reversed(s_hist), reversed(y_hist), reversed(rho_hist), strict=True):
        a = rho * (s * q).sum(1)
        q = q - a[:, None] * y
        alphas.append(a)
    r = gamma[:, None] * q
    for s, y, rho, a in zip(s_hist, y_hist, rho_hist, reversed(alphas), strict=True):
        b = rho * (y * r).sum(1)
        r = r + (a - b)[:, None] * s
    return r
