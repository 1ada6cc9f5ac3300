"""Score heatmap (layers × states), the equivalent of the paper's Fig. 3, as a PNG.

Each layer's row is divided by its maximum: top-k works per layer, so only the ranking within a row
matters, and raw scores differ by orders of magnitude between layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def save_heatmap(scores: torch.Tensor, path: str | Path, title: str) -> Path:
    """Write scores (layers, groups, N) as an image with groups side by side along the state axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L, G, N = scores.shape
    flat = scores.reshape(L, G * N).float()
    peak = flat.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
    rel = (flat / peak).numpy()
    fig, ax = plt.subplots(figsize=(min(16, 4 + 0.08 * G * N), min(12, 2 + 0.3 * L)), dpi=110)
    im = ax.imshow(rel, aspect="auto", cmap="viridis", interpolation="nearest", vmin=0, vmax=1)
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("state" + (f" (group-major, {G} groups × {N})" if G > 1 else ""))
    ax.set_ylabel("layer")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="score / layer max")
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p)
    plt.close(fig)
    return p
