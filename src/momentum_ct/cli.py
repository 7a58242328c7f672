"""Command line of the package: list claims, check a config, train a single series (no Snakemake needed)."""
from __future__ import annotations

import argparse
import json
import sys


from .errors import ConfigError


def _claims(args) -> int:
    from .claims.registry import CLAIMS

    for c in CLAIMS.values():
        print(f"{c.id}: {c.statement}\n    source: {c.source}\n    prediction: {c.prediction}")
        for q in c.quantities.values():
            print(f"    - {q.name} ({q.comparison}, tolerance {q.tolerance}{' relative' if q.relative else ''}): "
                  f"{q.description}")
    return 0


def _check(args) -> int:
    from .validation import check_file

    plan = check_file(args.config, args.schema)
    size = plan.size()
    print(f"{args.config}: valid; {size['series']} series in {size['shards']} shards (training jobs), "
          f"{size['runs']} runs, {size['run_steps']:.3g} run-steps (longest run {size['longest_run']:.3g} steps), "
          f"about {size['trajectory_gb']:.3g} GB of trajectories, at most {size['job_memory_mb']} MB per training "
          f"job; claims {', '.join(plan.claims)}")
    return 0


def _train(args) -> int:
    from .io import write_json, write_table
    from .train.shard import run_shard
    from .train.series import SeriesSpec

    spec = SeriesSpec(experiment="cli", problem=args.problem, method=args.method, lam=args.lam, seed=args.seed,
                      h=tuple(args.h), t_max=args.horizon * (1.0 - args.lam), n_records=args.records,
                      dense_steps=args.dense_steps, batch_size=args.batch_size, engine=args.engine,
                      problem_options=json.loads(args.options))
    columns, meta = run_shard([spec], log=print)
    write_table(args.out, columns)
    write_json(args.out + ".json", meta)
    print(f"wrote {args.out} and {args.out}.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="momentum-ct", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("claims", help="list the claims registry").set_defaults(fn=_claims)
    p = sub.add_parser("check", help="validate a configuration file and count its series")
    p.add_argument("config")
    p.add_argument("--schema", default="workflow/schemas/config.schema.yaml",
                   help="the workflow's config schema (default: as seen from the repository root)")
    p.set_defaults(fn=_check)
    p = sub.add_parser("train", help="train one series (every h) and write its trajectory")
    p.add_argument("--problem", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--lam", type=float, default=0.9)
    p.add_argument("--h", type=float, nargs="+", required=True)
    p.add_argument("--horizon", type=float, default=1.0, help="rescaled time t/(1-lam)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--records", type=int, default=100)
    p.add_argument("--dense-steps", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--engine", default="lightning")
    p.add_argument("--options", default="{}", help="problem options as JSON")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=_train)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
