"""How much do actions change the future, in pixels? The ceiling of action sensitivity.

    python scripts/bench_action_effect.py [--task cartpole-swingup] [--trials 12]

From the same simulator state (reached after a stretch of the behaviour policy of
params.yaml), run two independent action sequences of that policy for ``--horizon``
frames and report the PSNR between the two futures per horizon step. A world model that
uses its actions perfectly shows this difference between true-action and
shuffled-action rollouts (evaluate's `action_sensitivity_db` measures the model's
side); a model that ignores actions shows none. Needs the simulator (MUJOCO_GL=egl).
"""

from __future__ import annotations

import argparse

import numpy as np

from worldmodel.envs.dmc import configure_headless


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--task", default=None, help="default: the first task of params.yaml")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--horizon", type=int, default=16)
    args = ap.parse_args()
    configure_headless()
    from worldmodel.config import load_params
    from worldmodel.envs import make_env
    from worldmodel.envs.policies import Policy

    c = load_params(args.params).collect
    task = args.task or c.tasks[0]
    s = c.settings(task)  # the task's convention unless params.yaml overrides it
    env = make_env(
        task,
        image_size=c.image_size,
        camera=s.camera,
        action_repeat=s.action_repeat,
        shadows=c.shadows,
        reflections=c.reflections,
    )
    physics = env._env.physics
    psnrs = []
    for trial in range(args.trials):
        env.reset(trial)
        warm = Policy(c.policy, env.action_spec, 100 + trial)
        for _ in range(20 + 10 * trial):
            env.step(warm.act())
        state = physics.get_state().copy()
        futures = []
        for branch in (1, 2):
            with physics.reset_context():
                physics.set_state(state)
            pol = Policy(c.policy, env.action_spec, 1000 * branch + trial)
            futures.append(np.stack([env.step(pol.act())[0] for _ in range(args.horizon)]))
        a, b = (f.astype(np.float64) / 255 for f in futures)
        mse = ((a - b) ** 2).reshape(args.horizon, -1).mean(1)
        psnrs.append(10 * np.log10(1 / np.maximum(mse, 1e-10)))
    mean = np.mean(psnrs, axis=0)
    print(
        f"{task}, {c.image_size}px, action_repeat {s.action_repeat}, policy {c.policy.kind}, "
        f"{args.trials} states: PSNR between futures under two action sequences"
    )
    print("horizon\tpsnr_db")
    for h in range(args.horizon):
        print(f"{h + 1}\t{mean[h]:.2f}")


if __name__ == "__main__":
    main()
