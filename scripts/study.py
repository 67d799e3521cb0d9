"""Recipe study: arms x seeds on the validation split, with paired CIs.

    python scripts/study.py --arm base= --arm ema=dynamics.train.ema_decay=0.99
    python scripts/study.py --seeds 3 --arm base= \\
        --arm boot50=dynamics.bootstrap_fraction=0.5 --out study.tsv
    python scripts/study.py --arm base= --save-models /tmp/models      # keep them, then
    python scripts/study.py --models '/tmp/models/base_s{seed}.pt' \\
        --arm base= --arm ctx95=dynamics.tau_ctx=0.95 --arm recompute=--no-kv-cache
    python scripts/study.py --bench tokenizer --arm base= --arm ema=tokenizer.train.ema_decay=0.99

Each arm (``NAME=KEY=VALUE[;KEY=VALUE...]``; ``NAME=`` is params.yaml as is; an item
starting with ``--`` is passed to the bench script as a flag, e.g. ``--no-kv-cache``) is
trained with ``scripts/bench_dynamics.py`` (``--bench tokenizer``:
``scripts/bench_tokenizer.py``) once per seed (``base.seed`` 0 .. N-1: batches, init and
sampling noise; the episodes, and for the dynamics the tokenizer, the latents and the val
windows, stay those of the current DAG run), and its final row is kept. Then, per arm,
the mean over seeds of each metric with a Student-t 95% interval, and the difference from
the first arm with a 95% interval paired by seed (the same machinery as ``wm compare``):
an arm beats the first only where that interval excludes 0.

Takes one training (about 3 minutes on a 2-core CPU at the defaults, either model) plus
its val evaluation per arm and seed. ``--save-models DIR`` keeps each trained model as
``DIR/ARM_sSEED.pt``; ``--models TEMPLATE`` (``{seed}`` in it) trains nothing and scores
that seed's model under each arm, for settings that need no retraining (context level,
sampler steps): the arms then differ only in inference, paired on the same weights.
A finished arm and seed is not run again when ``--work`` still holds its TSV and
``--reuse`` is given (same arm name = same settings: your responsibility; with
``--save-models``, only when its model file is there too). Models are kept and scored
for the dynamics only. Nothing under ``data/`` is written.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# bench -> (script, the metrics of its final row the study reports, its flag for the size
# of the val sample)
BENCHES = {
    "dynamics": (
        "bench_dynamics.py",
        [
            "gain_db",
            "shuffle_cost_h16_db",
            "exposure_bias_db",
            "teacher_forced_psnr",
            "psnr_h1",
            "psnr_h16",
            "train_seconds",
        ],
        "--windows",
    ),
    "tokenizer": (
        "bench_tokenizer.py",
        ["psnr", "psnr_foreground", "ssim", "collapse_score", "train_seconds"],
        "--eval-clips",
    ),
}


def run_arm(
    script: str,
    overrides: list[str],
    seed: int,
    out: Path,
    extra: list[str],
    reuse: bool = False,
) -> dict[str, float]:
    """Train (or score, see ``--models``) and evaluate one arm at one seed; its final row."""
    if not (reuse and out.is_file()):
        cmd = [sys.executable, str(HERE / script), "--out", str(out)]
        cmd += ["--eval-every", "100000", *extra]
        for o in [*overrides, f"base.seed={seed}"]:
            cmd += [o] if o.startswith("--") else ["--set", o]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    rows = list(csv.DictReader(out.open(), delimiter="\t"))
    return {k: float(v) for k, v in rows[-1].items() if v not in ("", "None")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arm", action="append", required=True, metavar="NAME=KEY=VALUE;...")
    ap.add_argument("--bench", choices=sorted(BENCHES), default="dynamics")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--windows", type=int, default=64, help="val windows (tokenizer: clips)")
    ap.add_argument("--out", type=Path, default=None, help="TSV: one row per arm and seed")
    ap.add_argument("--work", type=Path, default=None, help="default /tmp/study_BENCH")
    ap.add_argument("--reuse", action="store_true", help="keep finished runs found in --work")
    ap.add_argument("--save-models", type=Path, default=None, metavar="DIR")
    ap.add_argument("--models", default=None, metavar="TEMPLATE", help="e.g. 'DIR/base_s{seed}.pt'")
    args = ap.parse_args()
    script, metrics, sample_flag = BENCHES[args.bench]
    if args.bench != "dynamics" and (args.models or args.save_models):
        ap.error("--models and --save-models are for --bench dynamics")
    work = args.work or Path(f"/tmp/study_{args.bench}")
    if args.save_models is not None and args.models is None:
        args.save_models.mkdir(parents=True, exist_ok=True)

    sys.path.insert(0, str(HERE.parent))
    import numpy as np

    from wm.compare import difference_interval, t_interval

    arms = []
    for spec in args.arm:
        name, _, rest = spec.partition("=")
        arms.append((name, [o for o in rest.split(";") if o]))
    results: dict[str, dict[int, dict[str, float]]] = {}
    lines = ["arm\tseed\t" + "\t".join(metrics)]
    for name, overrides in arms:
        results[name] = {}
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            extra = [sample_flag, str(args.windows)]
            reuse = args.reuse
            if args.models is not None:
                extra += ["--model", args.models.format(seed=seed)]
            elif args.save_models is not None:
                saved = args.save_models / f"{name}_s{seed}.pt"
                extra += ["--save", str(saved)]
                reuse = reuse and saved.is_file()  # a finished run without its model reruns
            tsv = work / f"{name}{'_scored' if args.models else ''}_s{seed}.tsv"
            row = run_arm(script, overrides, seed=seed, out=tsv, extra=extra, reuse=reuse)
            results[name][seed] = row
            lines.append(f"{name}\t{seed}\t" + "\t".join(str(row.get(m)) for m in metrics))
            print(f"# {name} seed {seed}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")
    base = arms[0][0]
    print(f"# {args.seeds} seeds per arm; mean [95% CI]; difference from {base}, paired by seed")
    print("arm\tmetric\tmean\tci_low\tci_high\tminus_base\tdiff_ci_low\tdiff_ci_high")
    for name, overrides in arms:
        for m in metrics:
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
