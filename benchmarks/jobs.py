"""Seconds per rule of finished pipeline runs, read from Snakemake's logs.

    python benchmarks/jobs.py .snakemake/log/<run>.snakemake.log                 # one run
    python benchmarks/jobs.py BEFORE.snakemake.log AFTER.snakemake.log           # two runs side by side

A job's time is from the line announcing it to the one saying it finished (Snakemake stamps both to the
second), so it includes starting the job's interpreter. Printed per rule: jobs and job-seconds of each run,
the ratio of the last run to the first, and each run's wall time from its first job to its last. Read: jobs
announced as ``rule NAME:`` or ``localrule NAME:`` (this workflow's, run locally); a rule with a ``message:``,
a checkpoint or a cluster run's group job is announced otherwise and left out.
"""
from __future__ import annotations

import argparse
import datetime as dt
import re
from collections import defaultdict

STAMP = re.compile(r"^\[(\w{3} \w{3}\s+\d+ \d\d:\d\d:\d\d \d{4})\]")
RULE = re.compile(r"^(?:local)?rule (\w+):")
JOBID = re.compile(r"^\s+jobid: (\d+)")
FINISHED = re.compile(r"^Finished job(?:id:)? (\d+)(?: \(Rule: (\w+)\))?")


def job_seconds(path: str) -> tuple[dict[str, list[float]], float]:
    """Rule -> the seconds of each of its jobs, and the wall time from the first job's start to the last's end."""
    stamp = rule = started = None
    start: dict[str, tuple[str, dt.datetime]] = {}
    seconds: dict[str, list[float]] = defaultdict(list)
    first = last = None
    for line in open(path, encoding="utf-8", errors="replace"):
        if m := STAMP.match(line):
            stamp = dt.datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := RULE.match(line):
            rule, started = m.group(1), stamp
        elif (m := JOBID.match(line)) and rule is not None:
            start[m.group(1)] = (rule, started)
            rule = None
        elif (m := FINISHED.match(line)) and m.group(1) in start:
            name, began = start.pop(m.group(1))
            seconds[m.group(2) or name].append((stamp - began).total_seconds())
            first = began if first is None else min(first, began)
            last = stamp if last is None else max(last, stamp)
    return dict(seconds), (last - first).total_seconds() if first else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+", help="Snakemake logs of finished runs (first: the reference)")
    args = parser.parse_args()
    runs = [job_seconds(p) for p in args.logs]
    rules = sorted({r for seconds, _ in runs for r in seconds}, key=lambda r: -sum(runs[0][0].get(r, [0])))
    head = " | ".join(f"run {i + 1} jobs | run {i + 1} (s)" for i in range(len(runs)))
    print(f"| rule | {head} | last / first |")
    print("|---|" + "---:|" * (2 * len(runs) + 1))
    totals = [0.0] * len(runs)
    for rule in rules:
        cells = []
        for i, (seconds, _) in enumerate(runs):
            s = seconds.get(rule, [])
            totals[i] += sum(s)
            cells.append(f"{len(s)} | {sum(s):.0f}")
        first, last = sum(runs[0][0].get(rule, [])), sum(runs[-1][0].get(rule, []))
        ratio = f"{last / first:.2f}" if first > 0 and rule in runs[-1][0] else "-"  # a rule of one run only
        print(f"| {rule} | {' | '.join(cells)} | {ratio} |")
    jobs = " | ".join(f"{sum(len(v) for v in seconds.values())} | {t:.0f}" for (seconds, _), t in zip(runs, totals))
    print(f"| all jobs | {jobs} | {totals[-1] / max(totals[0], 1e-9):.2f} |")
    walls = " | ".join(f" | {wall:.0f}" for _, wall in runs)
    print(f"| wall, first job to last | {walls} | {runs[-1][1] / max(runs[0][1], 1e-9):.2f} |")


if __name__ == "__main__":
    main()
