"""Box decompositions of the non-dominated region for three objectives, vectorised.

BoTorch's ``FastNondominatedPartitioning`` (Lacour et al. 2017) runs a Python
loop per point and is called once per MC sample: for 64 samples of ~40
baseline points that is ~30 ms a sample. :func:`nondominated_cells_3d`
computes the cells of all samples at once with tensor operations (a slab
decomposition along the third objective, merged along it): exact, disjoint,
and about as many cells as BoTorch's, 25-75x faster here.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["hypervolume_from_cells", "nondominated_cells_3d"]


def nondominated_cells_3d(Y: Tensor, ref_point: Tensor, feasible: Tensor | None = None) -> Tensor:
    """Disjoint boxes covering the region above ``ref_point`` not dominated by ``Y``.

    Maximisation. Points that are infeasible or not strictly above the
    reference point in every objective dominate nothing there and are ignored.
    Slabs between consecutive third-objective values are split into columns
    by the two-dimensional staircase of the points above the slab; a column
    that continues unchanged into the next slab is merged with it.

    Args:
        Y: ``batch x n x 3`` outcomes (e.g. one batch element per MC sample).
        ref_point: ``3`` reference point.
        feasible: optional ``batch x n`` boolean mask.

    Returns:
        ``2 x batch x cells x 3`` lower and upper corners (upper may be ``inf``);
        batch elements with fewer cells are padded with empty (zero) cells,
        as ``BoxDecompositionList`` does.
    """
    B, n, m = Y.shape
    if m != 3:
        raise ValueError(f"nondominated_cells_3d needs 3 objectives, got Y with {m}")
    dtype, device = Y.dtype, Y.device
    inf = torch.tensor(float("inf"), dtype=dtype, device=device)
    ref = ref_point.to(dtype=dtype, device=device)
    valid = (ref < Y).all(-1)
    if feasible is not None:
        valid = valid & feasible
    Y = torch.where(valid.unsqueeze(-1), Y, ref.expand_as(Y))
    # z order (descending): slab j spans [z_(j+1), z_(j)]; points 0..j lie above it.
    z, order = Y[..., 2].sort(dim=-1, descending=True)  # batch x n
    Ys = Y.gather(1, order.unsqueeze(-1).expand(B, n, m))
    valid = valid.gather(1, order)
    x, y = Ys[..., 0], Ys[..., 1]
    idx = torch.arange(n, device=Y.device)
    death = _first_dominator(x, y, valid, idx)  # batch x n: first slab where point k is dominated in 2D
    slab = idx.view(1, n, 1)
    alive = (slab >= idx.view(1, 1, n)) & (slab < death.unsqueeze(1))  # batch x slab x k
    left_x = _left_neighbour_x(x, alive, ref[0])  # batch x slab x k
    z_lo = torch.cat([z[:, 1:], ref[2].expand(B, 1)], dim=-1)  # batch x slab
    # Column of point k: x in [left, x_k], y >= y_k; merged over slabs with the same left neighbour.
    nan_row = torch.full((B, 1, n), float("nan"), dtype=dtype, device=device)
    same = torch.cat([nan_row, left_x[:, :-1]], dim=1) == left_x
    start = alive & ~(torch.cat([torch.zeros_like(alive[:, :1]), alive[:, :-1]], dim=1) & same)
    cell_z_lo = _run_min(start, alive, z_lo.unsqueeze(-1).expand(B, n, n))
    lo1 = torch.stack([left_x, y.unsqueeze(1).expand(B, n, n), cell_z_lo], -1)
    up1 = torch.stack(
        [x.unsqueeze(1).expand(B, n, n), inf.expand(B, n, n), z.unsqueeze(-1).expand(B, n, n)], -1
    )
    keep1 = start & (up1[..., 0] > lo1[..., 0]) & (up1[..., 2] > lo1[..., 2])
    # Right-most column of each slab: x >= the largest x above it.
    max_x = torch.where(alive, x.unsqueeze(1).expand(B, n, n), ref[0]).amax(dim=-1)  # batch x slab
    start2 = (
        torch.cat([torch.full((B, 1), float("nan"), dtype=dtype, device=device), max_x[:, :-1]], dim=1)
        != max_x
    )
    z_lo2 = _run_min(start2.unsqueeze(-1), torch.ones_like(start2).unsqueeze(-1), z_lo.unsqueeze(-1)).squeeze(
        -1
    )
    lo2 = torch.stack([max_x, ref[1].expand(B, n), z_lo2], -1)
    up2 = torch.stack([inf.expand(B, n), inf.expand(B, n), z], -1)
    keep2 = start2 & (up2[..., 2] > lo2[..., 2])
    # Above the highest point nothing dominates.
    lo3 = torch.stack([ref[0].expand(B), ref[1].expand(B), z[:, 0]], -1).unsqueeze(1)
    up3 = inf.expand(B, 1, 3)
    lo = torch.cat([lo1.reshape(B, n * n, 3), lo2, lo3], 1)
    up = torch.cat([up1.reshape(B, n * n, 3), up2, up3], 1)
    keep = torch.cat([keep1.reshape(B, n * n), keep2, torch.ones(B, 1, dtype=torch.bool, device=Y.device)], 1)
    return _compact(lo, up, keep)


def _first_dominator(x: Tensor, y: Tensor, valid: Tensor, idx: Tensor) -> Tensor:
    """``batch x n``: first slab (z rank) at which point k is dominated in (x, y).

    Invalid points are "dominated" from their own slab on, so never produce cells.
    Of two identical points the later one counts as dominated.
    """
    n = x.shape[-1]
    xi, xk = x.unsqueeze(-1), x.unsqueeze(-2)
    yi, yk = y.unsqueeze(-1), y.unsqueeze(-2)
    strict = (xi > xk) | (yi > yk)
    tie = ~strict & (idx.view(1, n, 1) < idx.view(1, 1, n))
    dom = (xi >= xk) & (yi >= yk) & (strict | tie) & valid.unsqueeze(-1)  # batch x i x k: i dominates k
    when = torch.maximum(idx.view(1, n, 1), idx.view(1, 1, n)).expand_as(dom)
    death = torch.where(dom, when, torch.full_like(when, n)).amin(dim=1)
    return torch.where(valid, death, idx.expand_as(death))


def _left_neighbour_x(x: Tensor, alive: Tensor, ref_x: Tensor) -> Tensor:
    """``batch x slab x k``: x of the nearest alive point left of k (``ref_x`` if none)."""
    B, n = x.shape
    x_sorted, x_order = x.sort(dim=-1)
    alive_x = alive.gather(2, x_order.unsqueeze(1).expand(B, n, n))
    pos = torch.arange(n, device=x.device).view(1, 1, n).expand(B, n, n)
    pos = torch.where(alive_x, pos, torch.full_like(pos, -1))
    prev = torch.cummax(pos, dim=-1).values
    prev = torch.cat([torch.full_like(prev[..., :1], -1), prev[..., :-1]], dim=-1)
    left = x_sorted.unsqueeze(1).expand(B, n, n).gather(2, prev.clamp_min(0))
    left = torch.where(prev >= 0, left, ref_x)
    return left.gather(2, x_order.argsort(dim=-1).unsqueeze(1).expand(B, n, n))


def _run_min(start: Tensor, alive: Tensor, values: Tensor) -> Tensor:
    """Minimum of ``values`` over each run along dim 1 that begins where ``start``."""
    run = torch.cumsum(start.long(), dim=1)
    key = torch.where(alive, run, torch.zeros_like(run))
    vals = torch.where(alive, values, torch.full_like(values, float("inf")))
    out = torch.full(
        (values.shape[0], values.shape[1] + 1, values.shape[2]), float("inf"), dtype=values.dtype
    )
    out = out.to(values.device).scatter_reduce(1, key, vals, reduce="amin", include_self=True)
    return out.gather(1, key)


def _compact(lo: Tensor, up: Tensor, keep: Tensor) -> Tensor:
    """Move kept cells first, cut to the largest count, zero the padding."""
    B = lo.shape[0]
    C = max(int(keep.sum(-1).max()), 1)
    perm = torch.argsort((~keep).to(torch.int8), dim=-1, stable=True)[:, :C]
    k = keep.gather(1, perm).unsqueeze(-1)
    lo = torch.where(k, lo.gather(1, perm.unsqueeze(-1).expand(B, C, 3)), 0.0)
    up = torch.where(k, up.gather(1, perm.unsqueeze(-1).expand(B, C, 3)), 0.0)
    return torch.stack([lo, up])


def hypervolume_from_cells(
    Y: Tensor, ref_point: Tensor, cells: Tensor, feasible: Tensor | None = None
) -> Tensor:
    """``batch`` hypervolumes dominated by ``Y`` (``batch x n x m``) given its cells.

    The box from ``ref_point`` to the per-batch ideal point minus the
    non-dominated cells clipped to it.
    """
    valid = (ref_point < Y).all(-1)
    if feasible is not None:
        valid = valid & feasible
    ideal = torch.where(valid.unsqueeze(-1), Y, ref_point).amax(dim=-2)  # batch x m
    total = (ideal - ref_point).clamp_min(0.0).prod(-1)
    lo = torch.maximum(cells[0], ref_point)
    up = torch.minimum(cells[1], ideal.unsqueeze(-2))
    return total - (up - lo).clamp_min(0.0).prod(-1).sum(-1)
