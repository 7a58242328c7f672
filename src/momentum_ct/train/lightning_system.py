"""Lightning system, data module and recording callback for one run of the recurrence.

The parameters are the problem's flat vector ``x`` (networks are evaluated through
``functional_call``), so the recorded ``x_k`` is exactly the recurrence's iterate. Each step's data
(the full training data or a mini-batch) are served as whole tensors (no per-sample collation), which
keeps Lightning's per-step cost low.

Lightning steps a ``torch.optim.Optimizer``, so this engine trains the heavy-ball family only: its
``MomentumRecurrence`` takes ``(step_size, lam, a)`` from the method object (``MomentumRecurrence.for_method``)
and the rows are the method's records of ``(x_k, x_{k-1})``, as in the other engines.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from ..errors import ConfigError
from ..optim import HeavyBallFamily, MomentumRecurrence, resolve_method
from ..problems import Problem
from .recorder import TrajectoryRecorder, has_diverged

# Lightning announces devices and stopping reasons for every run; a sweep of hundreds of runs needs none of it.
logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)


class _DataStream(IterableDataset):
    """Endless stream of each step's data, ready-made (the full training data or seeded mini-batches)."""

    def __init__(self, problem: Problem, batch_size: int | None, seed: int):
        self.problem, self.batch_size, self.seed = problem, batch_size, seed

    def __iter__(self):
        if self.batch_size is None:
            while True:
                yield self.problem.train_data
        yield from self.problem.minibatches(self.batch_size, torch.Generator().manual_seed(self.seed))


class ProblemDataModule(pl.LightningDataModule):
    def __init__(self, problem: Problem, batch_size: int | None = None, seed: int = 0):
        super().__init__()
        self.problem, self.batch_size, self.seed = problem, batch_size, seed

    def train_dataloader(self):
        # batch_size=None: the dataset already yields each step's data, so the loader must not collate.
        return DataLoader(_DataStream(self.problem, self.batch_size, self.seed), batch_size=None)


class MomentumSystem(pl.LightningModule):
    """Minimises ``problem.loss`` with a member of the heavy-ball family at nominal ``h`` and ``lam``."""

    def __init__(self, problem: Problem, *, method: Any, h: float, lam: float,
                 hyperparameters: Mapping[str, float] | None = None):
        super().__init__()
        spec = resolve_method(method, hyperparameters)
        if not isinstance(spec.method, HeavyBallFamily):
            raise ConfigError(f"engine 'lightning' trains the heavy-ball family only, not method {spec.name!r}")
        self.spec, self.h, self.lam = spec, h, lam
        self.save_hyperparameters(dict(problem=problem.name, method=spec.label, h=h, lam=lam))
        self.problem = problem
        self.x = nn.Parameter(problem.x0.clone())
        self.columns = {k: torch.tensor([[v]], dtype=self.x.dtype) for k, v in spec.columns(h, lam).items()}

    def forward(self, data):
        return self.problem.loss(self.x, data)

    def training_step(self, batch, batch_idx):
        return self(batch)

    def configure_optimizers(self):
        return MomentumRecurrence.for_method([self.x], self.spec, h=self.h, lam=self.lam)

    def previous_iterate(self) -> torch.Tensor:
        state = self.optimizers().optimizer.state.get(self.x, {})
        return state.get("previous", self.x.detach())

    def records(self) -> dict[str, torch.Tensor]:
        """The method's records of the current ``(x_k, x_{k-1})`` (one run of the family's state)."""
        x = self.x.detach()
        state = dict(self.columns, x=x.unsqueeze(0), x_prev=self.previous_iterate().detach().unsqueeze(0))
        return {name: v[0] for name, v in self.spec.method.record(state).items()}


class RecordTrajectory(pl.Callback):
    """Records ``x_k`` at the scheduled steps; stops training at divergence."""

    def __init__(self, recorder: TrajectoryRecorder, record_at, n_steps: int):
        self.recorder, self.wanted, self.n_steps = recorder, set(int(k) for k in record_at), n_steps

    def _maybe_record(self, trainer, system: MomentumSystem, k: int):
        if k in self.wanted:
            self.recorder.record(k, system.records())

    def on_train_batch_start(self, trainer, system, batch, batch_idx):
        self._maybe_record(trainer, system, trainer.global_step)

    def on_train_batch_end(self, trainer, system, outputs, batch, batch_idx):
        k = trainer.global_step
        if has_diverged(system.x.detach(), self.recorder.threshold):
            self.recorder.mark_diverged(k, system.records())
            trainer.should_stop = True
        elif k == self.n_steps:
            self._maybe_record(trainer, system, k)


def run_lightning(problem: Problem, *, method: Any, h: float, lam: float, n_steps: int, record_at,
                  batch_size: int | None = None, seed: int = 0,
                  hyperparameters: Mapping[str, float] | None = None) -> TrajectoryRecorder:
    """Same contract as ``run_functional``, through a Lightning ``Trainer`` (heavy-ball family only)."""
    recorder = TrajectoryRecorder(problem, h)
    system = MomentumSystem(problem, method=method, h=h, lam=lam, hyperparameters=hyperparameters)
    trainer = pl.Trainer(
        max_steps=n_steps, max_epochs=-1, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, deterministic=True, callbacks=[RecordTrajectory(recorder, record_at, n_steps)],
    )
    trainer.fit(system, datamodule=ProblemDataModule(problem, batch_size, seed))
    return recorder
