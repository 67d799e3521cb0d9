"""`tokenize` stage: encode every frame of every episode -> ``data/latents.h5``.

python -m stages.tokenize       # as dvc.yaml runs it
wm tokenize
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from stages.common import PARAMS_OPTION, err_console, progress_bar, stage_main
from worldmodel.config import Params

STAGE = "tokenize"
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def run(
    params: Params,
    episodes: Path = Path("data/episodes.h5"),
    tokenizer: Path = Path("data/tokenizer/model.pt"),
    out: Path = Path("data/latents.h5"),
    metrics: Path = Path("metrics/tokenize.json"),
    track: bool = True,
) -> dict[str, Any]:
    """Encode all episodes (no masking) with the trained tokenizer, batched."""
    import numpy as np

    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.data.latents import create_latent_file
    from worldmodel.tokenizer_training import encode_episode, load_tokenizer
    from worldmodel.train import resolve_device
    from worldmodel.utils import atomic_path, file_fingerprint, write_json

    device = resolve_device(params.base.device)
    model, meta = load_tokenizer(tokenizer, device)
    context = int(meta["params"]["tokenizer"]["clip_frames"])
    store = EpisodeStore(episodes)
    if store.image_size != model.cfg.image_size:
        raise ValueError(
            f"{episodes} has {store.image_size}px frames, the tokenizer was trained on "
            f"{model.cfg.image_size}px; rerun train_tokenizer"
        )
    err_console.print(
        f"tokenize: {store.num_episodes} episodes, {store.num_frames} frames -> {out} "
        f"(context {context} frames, batch {params.tokenize.batch_size}, {device})"
    )
    t0 = time.perf_counter()
    shape = (model.cfg.latent_tokens, model.cfg.latent_dim)
    attrs = {
        "context_frames": context,
        "tokenizer": meta,
        "tokenizer_file": file_fingerprint(tokenizer),
        "episodes_fingerprint": file_fingerprint(episodes),
    }
    total, sq = 0.0, 0.0
    with (
        store,
        atomic_path(out) as tmp,
        progress_bar("tokenize", store.num_episodes, "frames/s") as update,
    ):
        f = create_latent_file(tmp, store.f, shape, attrs)
        try:
            done = 0
            for e in range(store.num_episodes):
                z = encode_episode(
                    model, store.read(e).frames, context, device, params.tokenize.batch_size
                )
                s = int(store.starts[e])
                f["latents"][s : s + len(z)] = z
                total += float(z.sum())
                sq += float((z.astype(np.float64) ** 2).sum())
                done += len(z)
                update(e + 1, done / (time.perf_counter() - t0))
            f.attrs["complete"] = True
        finally:
            f.close()
    seconds = time.perf_counter() - t0
    count = store.num_frames * shape[0] * shape[1]
    mean = total / count
    result = {
        "episodes": store.num_episodes,
        "frames": store.num_frames,
        "latent_shape": list(shape),
        "latent_mean": round(mean, 5),
        "latent_std": round(float(np.sqrt(max(sq / count - mean**2, 0.0))), 5),
        "seconds": round(seconds, 2),
        "frames_per_s": round(store.num_frames / seconds, 1),
    }
    write_json(metrics, result)
    if track:
        from worldmodel.tracking import stage_run

        with stage_run(STAGE, params, ("base", "tokenize")) as tracker:
            tracker.log_metrics(result)
    err_console.print(
        f"tokenize: {result['frames']} frames in {seconds:.1f} s ({result['frames_per_s']} frames/s)"
    )
    return result


@app.command()
def main(params_file: Path = PARAMS_OPTION) -> None:
    """Encode every frame of every episode with the trained tokenizer."""
    stage_main(run, params_file)


if __name__ == "__main__":
    app()
