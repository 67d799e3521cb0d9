"""Pictures of data and predictions: frame grids, labelled contact sheets, GIFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def frame_grid(rows: list[np.ndarray], pad: int = 1, value: int = 255) -> np.ndarray:
    """Tile rows of frames ``(n, H, W, 3)`` into one ``uint8`` image with ``pad`` px gaps."""
    n = max(r.shape[0] for r in rows)
    h, w = rows[0].shape[1:3]
    out = np.full((len(rows) * (h + pad) - pad, n * (w + pad) - pad, 3), value, np.uint8)
    for i, row in enumerate(rows):
        for j, frame in enumerate(row):
            out[i * (h + pad) : i * (h + pad) + h, j * (w + pad) : j * (w + pad) + w] = frame
    return out


def contact_sheet(samples: dict[str, np.ndarray], path: str | Path, scale: int = 2) -> Path:
    """Write a PNG with one labelled row of frames per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(samples)
    grid = frame_grid([samples[k] for k in names])
    h = samples[names[0]].shape[1]
    fig_h = grid.shape[0] * scale / 100 + 0.3 * len(names)
    fig, ax = plt.subplots(figsize=(grid.shape[1] * scale / 100 + 1.6, fig_h), dpi=100)
    ax.imshow(grid, interpolation="nearest")
    ax.set_yticks([(h + 1) * i + h / 2 for i in range(len(names))], names)
    ax.set_xticks([])
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
