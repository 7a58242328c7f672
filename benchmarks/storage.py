"""What a replication writes: the size of a results folder per part (trajectories per experiment, predictions
per claim, measures, figures, the rest), as a markdown table with each part's share.

    python benchmarks/storage.py               # ./results
    python benchmarks/storage.py RUN/results   # a run made with `make replicate RESULTS=RUN`
"""
from __future__ import annotations

import argparse
from pathlib import Path


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def parts(results: Path) -> list[tuple[str, int]]:
    out = []
    for top in sorted(results.iterdir()):
        children = sorted(top.iterdir()) if top.name in ("runs", "predictions") and top.is_dir() else []
        if children:
            out += [(f"{top.name}/{child.name}", size(child)) for child in children]
        else:
            out.append((top.name, size(top)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", default="results", type=Path)
    args = parser.parse_args()
    rows = parts(args.results)
    total = sum(n for _, n in rows)
    print(f"{args.results}: {total / 1e6:.1f} MB in all\n")
    print("| part | MB | share |")
    print("|---|---:|---:|")
    for name, n in sorted(rows, key=lambda r: -r[1]):
        print(f"| {name} | {n / 1e6:.1f} | {100 * n / total:.1f}% |")


if __name__ == "__main__":
    main()
