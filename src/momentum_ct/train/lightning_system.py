"""Lightning system, data module and recording callback for one run of the recurrence.

The parameters are the problem's flat vector ``x`` (networks are evaluated through
``functional_call``), so the recorded ``x_k`` is exactly the recurrence's iterate. Data are served
as whole-batch tensors (no per-sample collation), which keeps Lightning's per-step cost low.
"""
from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from ..optim import MomentumRecurrence
from ..problems import Problem
from .recorder import TrajectoryRecorder, has_diverged

# Lightning announces devices and stopping reasons for every run; a sweep of hundreds of runs needs none of it.
logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)


class _BatchStream(IterableDataset):
    """Endless stream of ready-made batches (full batch or seeded mini-batches)."""

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
        # batch_size=None: the dataset already yields batches, so the loader must not collate.
        return DataLoader(_BatchStream(self.problem, self.batch_size, self.seed), batch_size=None)


class MomentumSystem(pl.LightningModule):
    """Minimises ``problem.loss`` with the recurrence ``(step, lam, a)``."""

    def __init__(self, problem: Problem, *, step: float, lam: float, a: float):
        super().__init__()
        self.save_hyperparameters(dict(problem=problem.name, step=step, lam=lam, a=a))
        self.problem = problem
        self.x = nn.Parameter(problem.x0.clone())

    def forward(self, batch):
        return self.problem.loss(self.x, batch)

    def training_step(self, batch, batch_idx):
        return self(batch)

    def configure_optimizers(self):
        hp = self.hparams
        return MomentumRecurrence([self.x], lr=hp.step, momentum=hp.lam, lookahead=hp.a)

    def previous_iterate(self) -> torch.Tensor:
        state = self.optimizers().optimizer.state.get(self.x, {})
        return state.get("previous", self.x.detach())


class RecordTrajectory(pl.Callback):
    """Records ``x_k`` at the scheduled steps; stops training at divergence."""

    def __init__(self, recorder: TrajectoryRecorder, record_at, n_steps: int):
        self.recorder, self.wanted, self.n_steps = recorder, set(int(k) for k in record_at), n_steps

    def _maybe_record(self, trainer, system: MomentumSystem, k: int):
        if k in self.wanted:
            self.recorder.record(k, system.x, system.previous_iterate())

    def on_train_batch_start(self, trainer, system, batch, batch_idx):
        self._maybe_record(trainer, system, trainer.global_step)

    def on_train_batch_end(self, trainer, system, outputs, batch, batch_idx):
        k = trainer.global_step
        if has_diverged(system.x.detach()):
            self.recorder.mark_diverged(k, system.x, system.previous_iterate())
            trainer.should_stop = True
        elif k == self.n_steps:
            self._maybe_record(trainer, system, k)


def run_lightning(problem: Problem, *, h: float, step: float, lam: float, a: float, n_steps: int,
                  record_at, batch_size: int | None = None, seed: int = 0) -> TrajectoryRecorder:
    """Same contract as ``run_functional``, through a Lightning ``Trainer``."""
    recorder = TrajectoryRecorder(problem, h, step)
    system = MomentumSystem(problem, step=step, lam=lam, a=a)
    trainer = pl.Trainer(
        max_steps=n_steps, max_epochs=-1, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, deterministic=True, callbacks=[RecordTrajectory(recorder, record_at, n_steps)],
    )
    trainer.fit(system, datamodule=ProblemDataModule(problem, batch_size, seed))
    return recorder
