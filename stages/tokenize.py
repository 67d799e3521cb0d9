"""`tokenize` stage: encode every frame of every episode -> ``data/latents.h5``.

python -m stages.tokenize       # as dvc.yaml runs it
wm tokenize
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from stages.common import PARAMS_OPTION, stage_main, tracked_run
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
    from worldmodel.checkpoints import load_model
    from worldmodel.codec import encode_store
    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.models.tokenizer import Tokenizer
    from worldmodel.progress import console, progress_bar
    from worldmodel.results import write_stage_metrics
    from worldmodel.runtime import resolve_device, set_threads
    from worldmodel.utils import file_fingerprint

    with tracked_run(track, STAGE, params, ("base", "tokenize")) as tracker:
        set_threads(params.base.torch_threads)
        device = resolve_device(params.base.device)
        model, meta = load_model(tokenizer, Tokenizer, device)
        clip_frames = meta.params.tokenizer.clip_frames
        store = EpisodeStore(episodes)
        if store.image_size != model.cfg.image_size:
            raise ValueError(
                f"{episodes} has {store.image_size}px frames, the tokenizer was trained on "
                f"{model.cfg.image_size}px; rerun train_tokenizer"
            )
        console.print(
            f"tokenize: {store.num_episodes} episodes, {store.num_frames} frames -> {out} "
            f"(clips of {clip_frames} frames, batch {params.tokenize.batch_size}, {device})"
        )
        attrs = {
            "clip_frames": clip_frames,
            "tokenizer": meta.to_dict(),
            "tokenizer_file": file_fingerprint(tokenizer),
            "episodes_fingerprint": file_fingerprint(episodes),
        }
        t0 = time.perf_counter()
        with store, progress_bar(STAGE, store.num_episodes, "frames/s") as bar:
            result = encode_store(
                model,
                store=store,
                out=out,
                clip_frames=clip_frames,
                attrs=attrs,
                device=device,
                batch=params.tokenize.batch_size,
                on_episode=lambda e, n: bar(e, n / (time.perf_counter() - t0)),
            )
        seconds = time.perf_counter() - t0
        result.update(seconds=round(seconds, 2), frames_per_s=round(result["frames"] / seconds, 1))
        write_stage_metrics(metrics, STAGE, result)
        if tracker is not None:
            tracker.log_metrics(result)
    console.print(
        f"tokenize: {result['frames']} frames in {seconds:.1f} s ({result['frames_per_s']} frames/s)"
    )
    return result


@app.command()
def main(params_file: Path = PARAMS_OPTION) -> None:
    """Encode every frame of every episode with the trained tokenizer."""
    stage_main(run, params_file)


if __name__ == "__main__":
    app()
