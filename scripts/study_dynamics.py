"""Recipe study of the dynamics model: arms x seeds on the validation split, paired CIs.

    python scripts/study_dynamics.py --arm base= --arm regime=dynamics.inference_regime_fraction=0.25
    python scripts/study_dynamics.py --seeds 3 --arm base= \\
        --arm boot50=dynamics.bootstrap_fraction=0.5 --out study.tsv

Each arm (``NAME=KEY=VALUE[;KEY=VALUE...]``; ``NAME=`` is params.yaml as is) is trained
with ``scripts/bench_dynamics.py`` once per seed (``base.seed`` 0 .. N-1: batches, init and
sampling noise; the tokenizer, the latents and the val windows stay those of the current
DAG run), and its final row is kept. Then, per arm, the mean over seeds of each metric
with a Student-t 95% interval, and the difference from the first arm with a 95% interval
paired by seed (the same machinery as ``wm compare``): an arm beats the first only where
that interval excludes 0.

Takes one dynamics training (about 3 minutes on a 2-core CPU at the defaults) plus its
val evaluation per arm and seed. Nothing under ``data/`` is written.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
METRICS = [
    "gain_db",
    "shuffle_cost_h16_db",
    "exposure_bias_db",
    "teacher_forced_psnr",
    "psnr_h1",
    "psnr_h16",
    "train_seconds",
]


def run_arm(overrides: list[str], seed: int, out: Path, extra: list[str]) -> dict[str, float]:
    """Train and evaluate one arm at one seed; its final row."""
    cmd = [sys.executable, str(HERE / "bench_dynamics.py"), "--out", str(out)]
    cmd += ["--eval-every", "100000", *extra]
    for o in [*overrides, f"base.seed={seed}"]:
        cmd += ["--set", o]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    rows = list(csv.DictReader(out.open(), delimiter="\t"))
    return {k: float(v) for k, v in rows[-1].items() if v not in ("", "None")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arm", action="append", required=True, metavar="NAME=KEY=VALUE;...")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--out", type=Path, default=None, help="TSV: one row per arm and seed")
    ap.add_argument("--work", type=Path, default=Path("/tmp/study_dynamics"))
    args = ap.parse_args()

    sys.path.insert(0, str(HERE.parent))
    import numpy as np

    from worldmodel.compare import difference_interval, t_interval

    arms = []
    for spec in args.arm:
        name, _, rest = spec.partition("=")
        arms.append((name, [o for o in rest.split(";") if o]))
    results: dict[str, dict[int, dict[str, float]]] = {}
    lines = ["arm\tseed\t" + "\t".join(METRICS)]
    for name, overrides in arms:
        results[name] = {}
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            row = run_arm(
                overrides, seed, args.work / f"{name}_s{seed}.tsv", ["--windows", str(args.windows)]
            )
            results[name][seed] = row
            lines.append(f"{name}\t{seed}\t" + "\t".join(str(row.get(m)) for m in METRICS))
            print(f"# {name} seed {seed}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")
    base = arms[0][0]
    print(f"# {args.seeds} seeds per arm; mean [95% CI]; difference from {base}, paired by seed")
    print("arm\tmetric\tmean\tci_low\tci_high\tminus_base\tdiff_ci_low\tdiff_ci_high")
    for name, overrides in arms:
        for m in METRICS:
            vals = {s: r[m] for s, r in results[name].items() if m in r}
            x = np.array(list(vals.values()))
            lo, hi = t_interval(x)
            row = [name, m, f"{x.mean():.3f}", f"{lo:.3f}", f"{hi:.3f}"]
            if name != base:
                ref = {s: r[m] for s, r in results[base].items() if m in r}
                d, dlo, dhi, _ = difference_interval(ref, vals)
                row += [f"{d:+.3f}", f"{dlo:+.3f}", f"{dhi:+.3f}"]
            print("\t".join(row))
        print(f"# {name}: {'; '.join(overrides) or 'params.yaml'}")


if __name__ == "__main__":
    main()
