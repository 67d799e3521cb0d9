"""Where a moving part is lost: R² of the simulator's positions from latents.

    python scripts/probe_positions.py                      # the DAG's store and models
    python scripts/probe_positions.py --task reacher-easy --windows 200

A ridge probe (``worldmodel/probe.py``) is fitted on the tokenizer's latents of *train*
episodes (``data/latents.h5``) to the task's success positions (``data/episodes.h5``),
then scored on *test* episodes: on the tokenizer's own latents, and on the latents the
dynamics model predicts at horizons 1, 4 and 16 of rollouts from ``--context`` true
frames with the recorded actions (the sampler of the evaluate stage, K = ``--steps``).
Prints one row per source, one R² column per position (1: all of it, 0: none).
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", default="data/episodes.h5")
    ap.add_argument("--latents", default="data/latents.h5")
    ap.add_argument("--dynamics", default="data/dynamics/model.pt")
    ap.add_argument("--task", default=None, help="default: the store's first task")
    ap.add_argument("--windows", type=int, default=120, help="test windows rolled out")
    ap.add_argument("--context", type=int, default=4)
    ap.add_argument("--horizons", default="1,4,16")
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()

    import torch

    from worldmodel.checkpoints import load_model
    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.data.latents import LatentStore
    from worldmodel.models.dynamics import Dynamics
    from worldmodel.probe import Probe
    from worldmodel.sampler import rollout
    from worldmodel.tasks import success_spec

    store, latents = EpisodeStore(args.episodes), LatentStore(args.latents)
    task = args.task or store.tasks[0]
    spec = success_spec(task)
    p_dim = len(spec.names)

    def rows(split: str) -> np.ndarray:
        eps = store.episode_ids(split, task)
        return np.concatenate(
            [np.arange(store.starts[e], store.starts[e] + store.lengths[e]) for e in eps]
        )

    positions = store.f["positions"][:, :p_dim]
    train, test = rows("train"), rows("test")
    probe = Probe.fit(latents.latents[train], positions[train], spec)
    table = {"tokenizer latents (test frames)": probe.r2(latents.latents[test], positions[test])}

    dyn, meta = load_model(args.dynamics, Dynamics)
    dp = meta.params.dynamics
    horizons = [int(h) for h in args.horizons.split(",")]
    length = args.context + max(horizons)
    starts = []
    for e in store.episode_ids("test", task):
        n = int(store.lengths[e])
        starts += [int(store.starts[e]) + s for s in range(0, n - length + 1, length)]
    starts = np.asarray(starts)[
        np.linspace(0, len(starts) - 1, min(args.windows, len(starts))).astype(int)
    ]
    idx = starts[:, None] + np.arange(length)
    z, a = torch.from_numpy(latents.latents[idx]), torch.from_numpy(latents.actions[idx])
    with torch.no_grad():
        pred = rollout(
            dyn,
            context=z[:, : args.context],
            actions=a,
            horizon=max(horizons),
            steps=args.steps,
            tau_ctx=dp.tau_ctx,
            window=dp.long_seq_len,
            generator=torch.Generator().manual_seed(0),
            context_d=1.0 / dyn.cfg.k_max,
        ).numpy()
    for h in horizons:
        truth = positions[idx[:, args.context + h - 1]]
        table[f"model prediction, h{h}"] = probe.r2(pred[:, h - 1], truth)
        table[f"repeat-last frame, h{h}"] = probe.r2(
            latents.latents[idx[:, args.context - 1]], truth
        )
    print(f"{task}: R² of positions from latents (probe fitted on train frames)")
    print("source\t" + "\t".join(spec.names))
    for name, r2 in table.items():
        print(name + "\t" + "\t".join(f"{r2[n]:.3f}" for n in spec.names))


if __name__ == "__main__":
    main()
