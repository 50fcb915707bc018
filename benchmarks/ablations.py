"""Ablations of prioritized replay, reanalyze, the consistency loss and value prefix.

Trains with `muax train`'s configuration (the CLI's networks and defaults,
plus `--set` overrides) once per variant and seed, until the first greedy
test reaches the threshold or the budget ends, and prints one JSON line per
run and a summary line per variant (medians over seeds; a run that never
reached the threshold counts as infinitely slow). Usage:

  python benchmarks/ablations.py                          # CartPole-v1, all variants
  python benchmarks/ablations.py --variants baseline per --seeds 0 1 2 3
  python benchmarks/ablations.py --env LunarLander-v3 --threshold 200 \\
      --set hidden=128 embedding_dim=32 support_size=20 max_training_steps=100000
"""
import argparse
import dataclasses
import json
import tempfile

import numpy as np

from cartpole_solve import solve_row
from muax import cli

VARIANTS = {
    "baseline": {},
    "per": {"replay": "prioritized"},
    "reanalyze": {"reanalyze": 0.5},
    "consistency": {"consistency": 2.},
    "value_prefix": {"value_prefix": True},
    "all": {"replay": "prioritized", "reanalyze": 0.5, "consistency": 2.,
            "value_prefix": True},
}


def parse_overrides(pairs):
  """`key=value` strings -> TrainConfig overrides of the field's type."""
  fields = {f.name: f for f in dataclasses.fields(cli.TrainConfig)}
  out = {}
  for pair in pairs:
    key, _, value = pair.partition("=")
    if key not in fields or not value:
      raise SystemExit(f"--set {pair!r}: expected key=value with key one of {sorted(fields)}")
    default = fields[key].default
    kind = type(default) if default is not None else (int if value.isdigit() else float)
    out[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--env", default="CartPole-v1")
  parser.add_argument("--threshold", type=float, default=475.)
  parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                      help="TrainConfig overrides shared by every variant")
  args = parser.parse_args()
  base = dataclasses.replace(cli.TrainConfig(env_id=args.env), progress=False,
                             target_return=args.threshold, **parse_overrides(args.set))
  for variant in args.variants:
    rows = []
    for seed in args.seeds:
      config = dataclasses.replace(base, seed=seed, **VARIANTS[variant])
      with tempfile.TemporaryDirectory() as workdir:
        result = cli.train(dataclasses.replace(config, logdir=f"{workdir}/tb",
                                               save_dir=f"{workdir}/models"))
      row = solve_row(result, args.threshold, bench="ablation", env=args.env,
                      variant=variant, seed=seed)
      rows.append(row)
      print(json.dumps(row), flush=True)
    inf = float("inf")
    print(json.dumps({
        "bench": "ablation_summary", "env": args.env, "variant": variant,
        "settings": VARIANTS[variant], "seeds": args.seeds,
        "solved": sum(r["solved"] for r in rows),
        "median_env_steps": float(np.median([r["env_steps"] or inf for r in rows])),
        "median_wall_clock_s": float(np.median([r["wall_clock_s"] or inf for r in rows])),
        "median_best_test_return": float(np.median([r["best_test_return"] for r in rows]))}),
        flush=True)


if __name__ == "__main__":
  main()
