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


def labelled_grid(
    rows: list[np.ndarray],
    row_labels: list[str],
    col_labels: list[str] | None = None,
    mark_after: int | None = None,
    title: str | None = None,
    scale: int = 2,
) -> np.ndarray:
    """Tile rows of frames ``(n, H, W, 3)`` with a label left of each row.

    Args:
        col_labels: a label above each column (e.g. ``c1 .. c4, h1 .. h16``).
        mark_after: draw a red rule after this many columns (where the context ends).
        title: one line above everything.
        scale: frames are enlarged this many times (nearest neighbour) so 64 px stay legible.
    """
    from PIL import Image, ImageDraw, ImageFont

    grid = frame_grid(rows)
    h, w = rows[0].shape[1:3]
    img = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), 0)
    font = ImageFont.load_default(size=12)
    left = 12 + max(int(font.getlength(s)) for s in row_labels)
    top = (16 if col_labels else 0) + (18 if title else 0)
    canvas = Image.new("RGB", (img.width + left, img.height + top), "white")
    canvas.paste(img, (left, top))
    draw = ImageDraw.Draw(canvas)
    cell_h, cell_w = (h + 1) * scale, (w + 1) * scale
    for i, label in enumerate(row_labels):
        draw.text(
            (4, top + i * cell_h + h * scale // 2), label, fill="black", font=font, anchor="lm"
        )
    if title:
        draw.text((4, 2), title, fill="black", font=font)
    if col_labels:
        for j, label in enumerate(col_labels):
            x = left + j * cell_w + w * scale // 2
            draw.text((x, top - 2), label, fill="black", font=font, anchor="mb")
    if mark_after:
        x = left + mark_after * cell_w - scale
        draw.line([(x, top - 14 if col_labels else top), (x, canvas.height)], fill="red", width=2)
    return np.asarray(canvas)


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
    steps: int,
) -> None:
    """PSNR-vs-horizon and sampler-sweep PNGs, and per task a few GIFs and strips.

    ``rows``: per-horizon rows with ``psnr/<method>`` and ``psnr_ci95_{low,high}/<method>``
    columns (95% intervals, shaded). ``steps``: the sampler's K for the rollouts (marked
    on the sweep).
    Strips: labelled rows truth | model | repeat-last, ``context`` frames (c1..) then
    ``horizon`` more (h1..), a red rule where the context ends.
    GIFs: truth | model | repeat-last side by side over the whole window, labelled.
    """
    import imageio.v3 as iio
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = [r["horizon"] for r in rows]
    methods = [k.split("/", 1)[1] for k in rows[0] if k.startswith("psnr/")]
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for m in methods:
        y = np.array([r[f"psnr/{m}"] for r in rows])
        lo = np.array([r[f"psnr_ci95_low/{m}"] for r in rows])
        hi = np.array([r[f"psnr_ci95_high/{m}"] for r in rows])
        ax.plot(h, y, label=m.replace("_", " "))
        ax.fill_between(h, lo, hi, alpha=0.2)
    ax.set(
        xlabel="horizon (frames after the context)",
        ylabel="PSNR (dB)",
        title=f"Test-episode rollouts, K = {steps} (shaded: 95% CI)",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside, hides nothing
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "psnr_vs_horizon.png", dpi=100)
    plt.close(fig)

    ks = [r["k"] for r in sweep]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key in [k for k in sweep[0] if k.startswith("psnr_h")]:
        a1.plot(ks, [r[key] for r in sweep], marker="o", label=key.replace("psnr_h", "h = "))
    a2.plot(ks, [r["fps_batched"] for r in sweep], marker="o", label="batched")
    a2.plot(ks, [r["fps_batch1"] for r in sweep], marker="o", label="batch 1")
    a2.set_yscale("log")
    for a, ylabel, title in (
        (a1, "PSNR (dB)", "quality per horizon"),
        (a2, "generated frames / s", "speed"),
    ):
        a.set_xscale("log", base=2)
        a.set_xticks(ks, [str(k) for k in ks])
        a.minorticks_off()
        a.axvline(steps, color="grey", ls="--", lw=1)
        a.annotate(
            f"K = {steps} (evaluate.steps)",
            (steps, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
            color="grey",
        )
        a.set(xlabel="sampler steps K", ylabel=ylabel, title=f"Sampler sweep: {title}")
        a.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "sampler_sweep.png", dpi=100)
    plt.close(fig)

    labels = ["truth", "model", "repeat-last"]
    for task, w, pix in windows:
        for i in range(min(n_media, len(w.frames))):
            truth = w.frames[i]
            model = _to_uint8(pix["model"][i])
            model[:context] = truth[:context]
            repeat = truth.copy()
            repeat[context:] = truth[context - 1]
            name = f"{task}_window{i}"
            shown = context + horizon
            cols = [f"c{j + 1}" for j in range(context)] + [f"h{j + 1}" for j in range(horizon)]
            strip = labelled_grid(
                [truth[:shown], model[:shown], repeat[:shown]],
                row_labels=labels,
                col_labels=cols,
                mark_after=context,
                title=f"{task}, test window {i}: {context} context frames, then a rollout of "
                f"{horizon} (K = {steps})",
            )
            iio.imwrite(out / f"{name}_strip.png", strip)
            write_gif(
                out / f"{name}.gif",
                _gif_frames(truth, model=model, repeat=repeat, context=context, labels=labels),
            )


def _gif_frames(
    truth: np.ndarray, model: np.ndarray, repeat: np.ndarray, context: int, labels: list[str]
) -> np.ndarray:
    """Side-by-side GIF frames with the method names and "context c" / "rollout h" on top."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=11)
    scale, gap = 2, 4
    h, w = truth.shape[1:3]
    frames = []
    for t in range(len(truth)):
        canvas = Image.new("RGB", (3 * w * scale + 2 * gap, h * scale + 36), "white")
        draw = ImageDraw.Draw(canvas)
        for j, (label, seq) in enumerate(zip(labels, (truth, model, repeat), strict=True)):
            x = j * (w * scale + gap)
            canvas.paste(Image.fromarray(seq[t]).resize((w * scale, h * scale), 0), (x, 36))
            draw.text((x + w * scale // 2, 27), label, fill="black", font=font, anchor="mm")
        step = f"context {t + 1}" if t < context else f"rollout h = {t + 1 - context}"
        draw.text((2, 2), step, fill="black" if t < context else "red", font=font)
        frames.append(np.asarray(canvas))
    return np.stack(frames)


def sweep_frames_figure(path: Path, frames: dict[str, Any], horizon: int, task: str) -> None:
    """One labelled row per sampler K (after the truth and the tokenizer ceiling): the
    frame at h = ``horizon`` of the same few windows, to see what few-step sampling
    loses (blur) and what many steps buy (detail)."""
    import imageio.v3 as iio

    names = list(frames)
    n = len(frames[names[0]])
    grid = labelled_grid(
        [_to_uint8(frames[k]) for k in names],
        names,
        [f"window {i + 1}" for i in range(n)],
        title=f"{task}: the frame at h = {horizon} per sampler K, {n} test windows",
    )
    iio.imwrite(path, grid)
