"""The vectorised box decomposition is exact."""

from __future__ import annotations

import torch
from botorch.utils.multi_objective.box_decompositions.non_dominated import FastNondominatedPartitioning

from engine.optimizer.boxes import hypervolume_from_cells, nondominated_cells_3d


def _front(seed: int, batch: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    Y = torch.rand(batch, n, 3, generator=g, dtype=torch.double)
    Y = (
        Y
        / Y.norm(dim=-1, keepdim=True)
        * (0.8 + 0.4 * torch.rand(batch, n, 1, generator=g, dtype=torch.double))
    )
    return Y - 0.1, torch.rand(batch, n, generator=g) > 0.2


def test_cells_cover_exactly_the_non_dominated_region() -> None:
    Y, feas = _front(0, 6, 25)
    ref = torch.zeros(3, dtype=torch.double)
    cells = nondominated_cells_3d(Y, ref, feas)
    points = torch.rand(4000, 3, generator=torch.Generator().manual_seed(1), dtype=torch.double) * 1.5
    for b in range(Y.shape[0]):
        inside = ((points[:, None] >= cells[0, b]) & (points[:, None] < cells[1, b])).all(-1).sum(-1)
        dominated = (Y[b][feas[b]][None] >= points[:, None]).all(-1).any(-1)
        assert (inside <= 1).all()  # disjoint
        assert torch.equal(inside == 1, ~dominated)  # exactly the non-dominated region
        botorch_cells = FastNondominatedPartitioning(ref, Y[b][feas[b]]).get_hypercell_bounds()
        hv = hypervolume_from_cells(Y[b : b + 1], ref, cells[:, b : b + 1], feas[b : b + 1])
        botorch_hv = FastNondominatedPartitioning(ref, Y[b][feas[b]]).compute_hypervolume()
        assert torch.allclose(hv, botorch_hv.reshape(1))
        assert botorch_cells.shape[-2] > 0
