"""Benchmark the dynamics model's rollouts by batch size on this machine.

    python scripts/bench_rollout.py [--dynamics data/dynamics/model.pt]
                                    [--latents data/latents.h5] [--batches 1 16 32 64 128]
                                    [--horizon 16] [--steps 4] [--repeats 2]

Rolls out ``--horizon`` frames at ``--steps`` sampler steps (the KV-cached sampler that
``evaluate`` and ``plan`` use) from the first frames of test-episode windows, for each
batch size, and prints a TSV: ``batch``, ``frames_per_s`` (generated frames per second,
the best of ``--repeats`` timed runs after one untimed warm-up) and ``speedup`` over the
first batch size. ``evaluate.batch_size`` is the number of windows rolled out together.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from worldmodel.checkpoints import load_model
from worldmodel.config import load_params
from worldmodel.data.latents import LatentStore
from worldmodel.models.dynamics import Dynamics
from worldmodel.runtime import setup_process
from worldmodel.sampler import rollout


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--dynamics", type=Path, default=Path("data/dynamics/model.pt"))
    ap.add_argument("--latents", type=Path, default=Path("data/latents.h5"))
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 32, 64, 128])
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4, help="sampler steps per frame (K)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per batch size")
    return ap.parse_args()


def context_windows(store: LatentStore, n: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Latents and actions of ``n`` windows of ``frames`` frames from the test episodes
    (all episodes when there are none), non-overlapping, cycled to ``n``."""
    episodes = store.episode_ids("test")
    episodes = episodes if len(episodes) else store.episode_ids()
    z, a = [], []
    for ep in episodes:
        start, length = int(store.starts[ep]), int(store.lengths[ep])
        for s in range(start, start + length - frames + 1, frames):
            z.append(store.latents[s : s + frames])
            a.append(store.actions[s : s + frames])
    if not z:
        raise SystemExit(f"{store.path}: no episode holds {frames} frames")
    idx = np.arange(n) % len(z)
    return np.stack(z)[idx], np.stack(a)[idx]


def main() -> None:
    args = parse_args()
    params = load_params(args.params)
    device, _, _ = setup_process(params.base.device, params.base.torch_threads, params.base.seed)
    dyn, meta = load_model(args.dynamics, Dynamics, device)
    tau_ctx, window = meta.params.dynamics.tau_ctx, meta.params.dynamics.long_seq_len
    context = params.evaluate.context
    store = LatentStore(args.latents)
    z_all, a_all = context_windows(store, max(args.batches), context + args.horizon)
    print(
        f"# {args.dynamics}: {dyn.cfg.dim} wide, {dyn.cfg.depth} deep; {context} context "
        f"frames, {args.horizon} ahead, K = {args.steps}, on {device.type} with "
        f"{torch.get_num_threads()} threads"
    )
    print("batch\tframes_per_s\tspeedup")
    first = None
    for b in args.batches:
        z = torch.from_numpy(z_all[:b]).float().to(device)
        a = torch.from_numpy(a_all[:b]).float().to(device)
        best = 0.0
        for r in range(args.repeats + 1):
            g = torch.Generator().manual_seed(r)
            t0 = time.perf_counter()
            with torch.no_grad():
                rollout(
                    dyn,
                    context=z[:, :context],
                    actions=a,
                    horizon=args.horizon,
                    steps=args.steps,
                    tau_ctx=tau_ctx,
                    window=window,
                    generator=g,
                    context_d=1.0 / dyn.cfg.k_max,
                )
            if r:  # the first run warms up
                best = max(best, b * args.horizon / (time.perf_counter() - t0))
        first = first or best
        print(f"{b}\t{best:.1f}\t{best / first:.2f}")


if __name__ == "__main__":
    main()
