"""Pictures of data and predictions: frame grids, labelled contact sheets, GIFs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def write_gif(path: str | Path, frames: np.ndarray, fps: int = 8) -> None:
    """Write uint8 frames ``(T, H, W, 3)`` as a looping GIF."""
    import imageio.v2 as imageio

    imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)


def _to_uint8(x: Any) -> np.ndarray:
    arr = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    return (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)


def rollout_media(
    out: Path,
    rows: list[dict[str, float]],
    sweep: list[dict[str, Any]],
    windows: list[tuple[str, Any, dict[str, Any]]],
    context: int,
    horizon: int,
    n_media: int,
) -> None:
    """PSNR-vs-horizon and sampler-sweep PNGs, and per task a few GIFs and strips.

    ``rows``: per-horizon rows with ``psnr/<method>`` and ``psnr_ci95_{low,high}/<method>``
    columns (95% intervals, shaded).
    Strips: rows truth | model | repeat-last, ``context`` frames then ``horizon`` more.
    GIFs: truth | model | repeat-last side by side over the whole window.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = [r["horizon"] for r in rows]
    methods = [k.split("/", 1)[1] for k in rows[0] if k.startswith("psnr/")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in methods:
        y = np.array([r[f"psnr/{m}"] for r in rows])
        lo = np.array([r[f"psnr_ci95_low/{m}"] for r in rows])
        hi = np.array([r[f"psnr_ci95_high/{m}"] for r in rows])
        ax.plot(h, y, label=m)
        ax.fill_between(h, lo, hi, alpha=0.2)
    ax.set(
        xlabel="horizon (frames after context)", ylabel="PSNR (dB)", title="Test-episode rollouts"
    )
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "psnr_vs_horizon.png", dpi=100)
    plt.close(fig)

    ks = [r["k"] for r in sweep]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key in [k for k in sweep[0] if k.startswith("psnr_h")]:
        a1.plot(ks, [r[key] for r in sweep], marker="o", label=key.replace("psnr_", ""))
    a1.set(xscale="log", xlabel="sampler steps K", ylabel="PSNR (dB)")
    a1.legend()
    a2.plot(ks, [r["fps_batched"] for r in sweep], marker="o", label="batched")
    a2.plot(ks, [r["fps_batch1"] for r in sweep], marker="o", label="batch 1")
    a2.set(xscale="log", yscale="log", xlabel="sampler steps K", ylabel="generated frames / s")
    a2.legend()
    fig.tight_layout()
    fig.savefig(out / "sampler_sweep.png", dpi=100)
    plt.close(fig)

    for task, w, pix in windows:
        for i in range(min(n_media, len(w.frames))):
            truth = w.frames[i]
            model = _to_uint8(pix["model"][i])
            model[:context] = truth[:context]
            repeat = truth.copy()
            repeat[context:] = truth[context - 1]
            name = f"{task}_window{i}"
            shown = context + horizon
            strip = frame_grid([truth[:shown], model[:shown], repeat[:shown]])
            import imageio.v3 as iio

            iio.imwrite(out / f"{name}_strip.png", strip)
            side = np.concatenate(
                [
                    truth,
                    np.full_like(truth[:, :, :2], 255),
                    model,
                    np.full_like(truth[:, :, :2], 255),
                    repeat,
                ],
                axis=2,
            )
            write_gif(out / f"{name}.gif", side)
