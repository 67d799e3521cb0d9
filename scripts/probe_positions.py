"""Where a moving part is lost: R² of the simulator's positions from latents.

    python scripts/probe_positions.py                      # the DAG's store and models
    python scripts/probe_positions.py --task reacher-easy --windows 200

Probes (``worldmodel/probe.py``: a ridge, what the latents hold linearly, and a two-layer
MLP, what they hold at all; rows of the MLP end in ``_mlp``) are fitted on the
tokenizer's latents of *train* episodes (``data/latents.h5``) to the task's success
positions (``data/episodes.h5``), then scored on *test* episodes: on the tokenizer's own
latents, and on the latents the dynamics model predicts at horizons 1, 4 and 16 of
rollouts from ``--context`` true frames with the recorded actions (the sampler of the
evaluate stage, K = ``--steps``). Prints one row per source, one R² column per position
(1: all of it, 0: none).

    python scripts/probe_positions.py --reference            # is the next frame knowable?

``--reference`` asks whether the one-step loss is the data's or the model's. On the same
test frames it compares next-frame latents (MSE, and the probe's R² on them) predicted by:
the dynamics model itself (signal level: ``tau = 1`` is clean, ``tau = 0`` pure noise;
one x-prediction from pure noise, ``tau = 0``, ``d = 1/k_max``,
the past at ``tau_ctx``); a reference regressor, a two-layer MLP trained by plain MSE on
train frames to map the last ``--reference-frames`` latents and the action to the next
latents, once from clean past latents and once from past latents noised to ``tau_ctx`` as
the model sees them; repeat-last; the mean train latent (a predictor that reads nothing).
A reference far better than the model says the information is in the latents and the
dynamics fails to use it. The model's row is repeated with the past of another test
episode in place of its own: a model that reads its past gets much worse there, one that
ignores it (that draws every frame from what it learned of all frames) does not.
"""

from __future__ import annotations

import argparse


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
    ap.add_argument(
        "--kinds", default="ridge,mlp", help="probes: ridge (linear), mlp (non-linear), or both"
    )
    ap.add_argument("--reference", action="store_true", help="next-frame reference regressor")
    ap.add_argument("--reference-frames", type=int, default=2, help="past frames it sees")
    ap.add_argument(
        "--reference-steps", type=int, default=3000, help="MLP training steps; 0: no MLP rows"
    )
    ap.add_argument("--reference-batch", type=int, default=256)
    args = ap.parse_args()

    from worldmodel.checkpoints import load_model
    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.data.latents import LatentStore
    from worldmodel.models.dynamics import Dynamics
    from worldmodel.probe import probe_positions

    store = EpisodeStore(args.episodes)
    task = args.task or store.tasks[0]
    dyn, meta = load_model(args.dynamics, Dynamics)
    if args.reference:
        reference(store, LatentStore(args.latents), task, dyn, meta, args)
        return
    horizons = tuple(int(h) for h in args.horizons.split(","))
    table = probe_positions(
        store,
        LatentStore(args.latents),
        task,
        dyn,
        tau_ctx=meta.params.dynamics.tau_ctx,
        window=meta.params.dynamics.long_seq_len,
        windows=args.windows,
        context=args.context,
        horizons=horizons,
        steps=args.steps,
        kinds=tuple(args.kinds.split(",")),
    )
    names = list(next(iter(table.values())))
    print(f"{task}: R² of positions from latents (probe fitted on train frames, scored on test)")
    print("source\t" + "\t".join(names))
    for src, r2 in table.items():
        print(src + "\t" + "\t".join(f"{r2[n]:.3f}" for n in names))


def reference(store, latents, task, dyn, meta, args) -> None:  # noqa: ANN001
    """``--reference``: the dynamics' one-step prediction against a plain MLP regressor."""
    import numpy as np
    import torch

    from worldmodel.probe import Probe
    from worldmodel.sampler import corrupt
    from worldmodel.tasks import success_spec

    spec, k = success_spec(task), args.reference_frames
    tau_ctx = meta.params.dynamics.tau_ctx
    past = max(k, args.context)

    def frames(split: str, every: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``(N, past + 1)`` of windows ending at each predicted frame, and its positions."""
        rows, pos = [], []
        for e in store.episode_ids(split, task):
            s, n = int(store.starts[e]), int(store.lengths[e])
            p = store.read_states(int(e))[1]
            for t in range(past, n, every):
                rows.append(np.arange(s + t - past, s + t + 1))
                pos.append(p[t])
        return np.asarray(rows), np.asarray(pos)

    train, train_pos = frames("train", 1)
    test, test_pos = frames("test", 3)
    z_all = torch.from_numpy(latents.latents).float()
    a_all = torch.from_numpy(latents.actions).float()
    probe = Probe.fit(latents.latents[train[:, -1]], train_pos, spec)
    truth = z_all[test[:, -1]]
    g = torch.Generator().manual_seed(0)

    def noised(z: torch.Tensor) -> torch.Tensor:
        return corrupt(z, tau_ctx, torch.randn(z.shape, generator=g))

    def mlp_inputs(rows: np.ndarray, noisy: bool) -> torch.Tensor:
        z = z_all[rows[:, -1 - k : -1]].flatten(1)
        return torch.cat([noised(z) if noisy else z, a_all[rows[:, -1]]], 1)

    results = {}
    for noisy in (False, True) if args.reference_steps > 0 else ():
        torch.manual_seed(0)
        x, y = mlp_inputs(train, noisy), z_all[train[:, -1]].flatten(1)
        net = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], 256),
            torch.nn.GELU(),
            torch.nn.Linear(256, 256),
            torch.nn.GELU(),
            torch.nn.Linear(256, y.shape[1]),
        )
        opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.05)
        for _ in range(args.reference_steps):
            i = torch.randint(0, len(x), (args.reference_batch,), generator=g)
            loss = (net(x[i]) - y[i]).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = net(mlp_inputs(test, noisy)).view_as(truth)
        name = f"MLP of {k} past frames" + (
            f", noised to tau_ctx {tau_ctx:g}" if noisy else ", clean"
        )
        results[name] = pred
    c = args.context
    z = z_all[test[:, -1 - c :]].clone()
    z[:, :c] = noised(z[:, :c])
    z[:, c] = torch.randn(z[:, c].shape, generator=g)
    tau = torch.full(z.shape[:2], tau_ctx)
    tau[:, c] = 0.0
    d = torch.full(z.shape[:2], 1.0 / dyn.cfg.k_max)
    a = a_all[test[:, -1 - c :]]
    # the same prediction from the past of a test frame half the test set away (another
    # episode): a model that reads its past gets much worse, one that ignores it does not
    other = np.roll(np.arange(len(test)), len(test) // 2)
    swapped = z.clone()
    swapped[:, :c] = z[other, :c]
    with torch.no_grad():
        results["dynamics model, one step from pure noise"] = dyn(z, tau, d, a)[:, c]
        results["  the same, with another episode's past"] = dyn(swapped, tau, d, a)[:, c]
    results["repeat-last"] = z_all[test[:, -2]]
    results["mean train latent (reads nothing)"] = z_all[train[:, -1]].mean(0).expand_as(truth)
    print(
        f"{task}: next-frame latents on {len(test)} test frames (reference trained on {len(train)})"
    )
    print("predictor\tlatent MSE\t" + "\t".join(f"R² {n}" for n in spec.names))
    for name, pred in results.items():
        r2 = probe.r2(pred.numpy(), test_pos)
        mse = float((pred - truth).square().mean())
        print(f"{name}\t{mse:.4f}\t" + "\t".join(f"{r2[n]:.3f}" for n in spec.names))


if __name__ == "__main__":
    main()
