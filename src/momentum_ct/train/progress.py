"""Progress of a long sweep: runs done out of the total and steps per second.

Lines go to a log callable (the job's log) every ``log_every`` seconds and at the end; when the
stream is a terminal a live line is redrawn in place as well. Standard library only.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


def _count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Counts runs and steps; cheap to call on every step (it only reads the clock).

    Args:
        total_runs: runs in the sweep.
        total_steps: steps of all runs together (diverged runs end early, so this is an upper bound).
        total_iterations: for an engine that advances its runs in lockstep, the iterations it makes (the
            longest run of each stack, summed over stacks). Its time left is set by the longest remaining
            run, not by the steps left: when given, the estimate is the iterations left at the mean cost of
            an iteration so far, an upper bound, since iterations get cheaper as runs finish. An engine that
            runs several stacks one after another announces each (``start_stack``): the estimate is then the
            current stack's iterations left at its own mean cost, and the later stacks' iterations are counted.
        log: callable taking a line, e.g. ``logging.getLogger(...).info``; ``None`` for no log lines.
        stream: where the live line goes; defaults to ``sys.stderr`` and is used only if it is a terminal.
        label: prefix of every line.
        log_every: seconds between log lines.
        live_every: seconds between redraws of the live line.
    """

    def __init__(self, total_runs: int, total_steps: int, *, total_iterations: int | None = None,
                 log: Callable[[str], None] | None = None,
                 stream: TextIO | None = None, label: str = "sweep", log_every: float = 30.0,
                 live_every: float = 0.5, clock: Callable[[], float] = time.monotonic):
        self.total_runs, self.total_steps = int(total_runs), int(total_steps)
        self.log, self.label, self.clock = log, label, clock
        self.log_every, self.live_every = log_every, live_every
        stream = sys.stderr if stream is None else stream
        self.stream = stream if getattr(stream, "isatty", lambda: False)() else None
        self.total_iterations = None if total_iterations is None else int(total_iterations)
        self.runs = self.steps = self.diverged = self.iterations = 0
        self.start = self.clock()
        # the stack (cohort) under way: its iterations, those done, when it started (``start_stack``)
        self.stack_iterations = self.stack_done = 0
        self.stack_start: float | None = None
        self._next_log = self.start + log_every
        self._next_live = self.start
        self._live_width = 0

    def line(self) -> str:
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = self.steps / elapsed
        frac = self.steps / self.total_steps if self.total_steps else 1.0
        text = (f"{self.label}: {self.runs}/{self.total_runs} runs done, "
                f"{_count(self.steps)}/{_count(self.total_steps)} steps ({100 * frac:.0f}%), "
                f"{_count(rate)} steps/s, {_duration(elapsed)} elapsed")
        if self.diverged:
            text += f", {self.diverged} diverged"
        if self.total_iterations and self.stack_start is not None and 0 < self.stack_done < self.stack_iterations:
            # stacks differ in their cost per iteration (ensemble sizes, problems): the current stack's own
            # rate bounds its time left; later stacks are counted, not timed
            stack_left = ((self.stack_iterations - self.stack_done) * (self.clock() - self.stack_start)
                          / self.stack_done)
            later = self.total_iterations - self.iterations - (self.stack_iterations - self.stack_done)
            if later > 0:
                text += (f", this stack at most {_duration(stack_left)} left (longest remaining run), then "
                         f"{_count(later)} iterations of later stacks")
            else:
                text += f", at most {_duration(stack_left)} left (longest remaining run)"
        elif self.total_iterations and 0 < self.iterations < self.total_iterations:
            left = (self.total_iterations - self.iterations) * elapsed / self.iterations
            text += f", at most {_duration(left)} left (longest remaining run)"
        elif not self.total_iterations and 0 < frac < 1 and rate > 0:
            text += f", at most {_duration((self.total_steps - self.steps) / rate)} left"
        return text

    def start_stack(self, iterations: int) -> None:
        """A lockstep stack of ``iterations`` iterations (its longest run) starts now."""
        self.stack_iterations, self.stack_done, self.stack_start = int(iterations), 0, self.clock()

    def update(self, *, steps: int = 0, runs: int = 0, diverged: int = 0, iterations: int = 0) -> None:
        """Add ``steps`` steps, ``iterations`` lockstep iterations and ``runs`` finished runs (``diverged`` of
        them diverged)."""
        self.iterations += iterations
        self.stack_done += iterations
        self.steps += steps
        self.runs += runs
        self.diverged += diverged
        now = self.clock()
        if self.stream is not None and now >= self._next_live:
            self._draw(self.line())
            self._next_live = now + self.live_every
        if self.log is not None and now >= self._next_log:
            self.log(self.line())
            self._next_log = now + self.log_every

    def close(self) -> None:
        """Final line to the log and the terminal."""
        text = self.line()
        if self.stream is not None:
            self._draw(text)
            self.stream.write("\n")
            self.stream.flush()
        if self.log is not None:
            self.log(text)

    def _draw(self, text: str) -> None:
        pad = max(self._live_width - len(text), 0)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._live_width = len(text)
