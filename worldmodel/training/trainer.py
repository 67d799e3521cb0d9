"""A generic trainer shared by the tokenizer and dynamics stages.

The trainer knows nothing about what it trains. It is handed:

- ``objective``: an ``nn.Module`` whose ``forward(batch)`` returns ``(terms, logs)``:
  raw scalar loss terms and logs (``logs["per_sample"]``, a ``(B,)`` tensor, feeds
  hard-example tracking, shown as ``logs["preview"]`` when given, else
  ``batch.preview()``); ``objective.model`` is what gets checkpointed;
- ``make_batch(step, rank, world)``: the batch of a step. All randomness of a step
  (which windows, mask ratios, noise) is drawn there from ``(seed, step)``, so a
  resumed run sees exactly the batches an uninterrupted one would.

What it does: AdamW or Muon (``train.optimizer``, worldmodel/training/optim.py), linear
warm-up then cosine decay, gradient clipping, optional EMA weights, float32 on CPU and bf16 autocast on CUDA, loss normalisation (each term divided
by a running RMS of itself, DreamerV4 §3), atomic self-describing checkpoints every N
steps with exact resume, a NaN/Inf guard, curves (TSV with a ``step`` column and
MLflow), hard-example tracking, and DistributedDataParallel under ``torchrun``.

Distributed semantics: with ``W`` processes, ``make_batch`` is asked for rank ``r``'s
slice of the *same* global batch a single process would draw (``batch_size`` samples in
all). DDP averages gradients over ranks and the loss RMS statistics are all-reduced, so
``W`` processes follow the single-process run up to floating-point summation order.
"""

from __future__ import annotations

import copy
import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from worldmodel.checkpoints import (
    CHECKPOINT_VERSION,
    ModelMeta,
    load_model_state,
    read_torch_file,
    save_checkpoint,
)
from worldmodel.config import TrainParams
from worldmodel.errors import CheckpointMismatch
from worldmodel.runtime import dist_info
from worldmodel.training.optim import build_optimizer

RMS_DECAY = 0.99  # running-RMS decay of the loss normaliser (DreamerV4 §3)


class TrainingDiverged(RuntimeError):
    """A loss term became NaN or infinite."""


def lr_at(step: int, cfg: TrainParams) -> float:
    """Learning rate of ``step``: linear warm-up, then cosine decay to ``min_lr_ratio * lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cos)


class LossNormalizer(nn.Module):
    """Divides each loss term by a running RMS of itself so all terms weigh alike.

    The statistics are updated from the detached, rank-averaged term values, so every
    process of a distributed run normalises identically.
    """

    def __init__(self, decay: float = RMS_DECAY) -> None:
        super().__init__()
        self.decay = decay
        self.ms: dict[str, float] = {}

    def forward(self, terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
        names = sorted(terms)
        values = torch.stack([terms[k].detach().float() for k in names])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(values)
            values /= dist.get_world_size()
        total = torch.zeros((), device=values.device)
        for name, v in zip(names, values.tolist(), strict=True):
            prev = self.ms.get(name)
            self.ms[name] = v * v if prev is None else self.decay * prev + (1 - self.decay) * v * v
            total = total + weights.get(name, 1.0) * terms[name] / (math.sqrt(self.ms[name]) + 1e-8)
        return total

    def get_extra_state(self) -> dict[str, float]:
        return dict(self.ms)

    def set_extra_state(self, state: dict[str, float]) -> None:
        self.ms = dict(state)


@dataclass
class HardExamples:
    """A bounded top-K of the highest-loss training samples, with their images.

    The trainer hands it to ``on_checkpoint`` and then empties it, so each logged set is
    the hardest samples of the last ``checkpoint_every`` steps: what is hard *now*, not
    the worst of the first steps kept for the whole run.
    """

    k: int
    heap: list[tuple[float, int, int, np.ndarray]] = field(default_factory=list)
    _counter: int = 0

    def add(self, losses: torch.Tensor, images: torch.Tensor, step: int) -> None:
        if self.k <= 0:
            return
        for loss, img in zip(losses.tolist(), images, strict=True):
            self._counter += 1
            item = (float(loss), step, self._counter, img.cpu().numpy())
            if len(self.heap) < self.k:
                heapq.heappush(self.heap, item)
            elif loss > self.heap[0][0]:
                heapq.heapreplace(self.heap, item)

    def ranked(self) -> list[tuple[float, int, np.ndarray]]:
        """``(loss, step, image)``, highest loss first."""
        return [(loss, step, img) for loss, step, _, img in sorted(self.heap, reverse=True)]


def _numpy_rng_state() -> dict[str, Any]:
    """NumPy's global RNG state as a tensor and plain numbers (weights-only loadable)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    assert name == "MT19937"
    return {
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _set_numpy_rng_state(state: dict[str, Any]) -> None:
    keys = state["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state(
        ("MT19937", keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    )


class Trainer:
    """Runs ``cfg.steps`` optimisation steps of ``objective`` with checkpoint/resume.

    Args:
        objective: module returning ``(terms, logs)``; ``objective.model`` is saved.
        make_batch: ``(step, rank, world) -> batch`` with ``.to(device)`` and ``.preview()``.
        cfg: optimisation settings.
        ckpt_path: the resumable checkpoint (``None``: no checkpoints).
        meta: the model's :class:`~worldmodel.checkpoints.ModelMeta`, stored in the checkpoint;
            a checkpoint whose fingerprint differs is not resumed from.
        device: where to train.
        loss_weights: multipliers applied after RMS normalisation (e.g. ``lpips: 0.2``).
        on_log: called on rank 0 as ``on_log(step, row)`` every ``log_every`` steps.
        on_checkpoint: called on rank 0 at each checkpoint, before it is written, with the
            trainer (``trainer.hard`` holds the hardest samples since the last one).
        periodic_eval: ``(every, fn)``: on rank 0, at logged steps that are multiples of
            ``every`` (and the last), ``fn(eval_model)`` returns extra curve values.
    """

    def __init__(
        self,
        objective: nn.Module,
        make_batch: Callable[[int, int, int], Any],
        cfg: TrainParams,
        ckpt_path: Path | None,
        meta: ModelMeta,
        device: torch.device,
        loss_weights: dict[str, float] | None = None,
        on_log: Callable[[int, dict[str, float]], None] | None = None,
        on_checkpoint: Callable[[Trainer], None] | None = None,
        periodic_eval: tuple[int, Callable[[nn.Module], dict[str, float]]] | None = None,
    ) -> None:
        self.rank, self.world = dist_info()
        self.device = device
        self.objective = objective.to(device)
        self.model: nn.Module = objective.model
        self.make_batch = make_batch
        self.cfg = cfg
        self.ckpt_path = ckpt_path
        self.meta = meta
        self.loss_weights = loss_weights or {}
        self.on_log = on_log
        self.on_checkpoint = on_checkpoint
        self.periodic_eval = periodic_eval
        self.params = [p for p in objective.parameters() if p.requires_grad]
        self.opt = build_optimizer(self.model, self.params, cfg)
        self.normalizer = LossNormalizer(RMS_DECAY)
        self.ema = copy.deepcopy(self.model).requires_grad_(False) if cfg.ema_decay > 0 else None
        self.hard = HardExamples(cfg.hard_examples)
        self.curve: list[dict[str, float]] = []
        self.step = 0
        self.last_checkpoint_step: int | None = None
        self.wrapped: nn.Module = objective
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            self.wrapped = DDP(objective, device_ids=ids)

    # -- checkpoints --------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "checkpoint_version": CHECKPOINT_VERSION,
            "meta": self.meta.to_dict(),
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.opt.state_dict(),
            "normalizer": self.normalizer.get_extra_state(),
            "curve": self.curve,
            "hard_examples": [
                [loss, step, n, torch.from_numpy(img)] for loss, step, n, img in self.hard.heap
            ],
            "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state()},
        }

    def save(self) -> None:
        if self.ckpt_path is None or self.rank != 0:
            return
        save_checkpoint(self.ckpt_path, self.state())
        self.last_checkpoint_step = self.step

    def try_resume(self) -> bool:
        """Resume from ``ckpt_path`` when it exists and its fingerprint matches."""
        if self.ckpt_path is None or not self.ckpt_path.is_file():
            return False
        state = read_torch_file(self.ckpt_path, self.device)
        if not isinstance(state, dict) or state.get("checkpoint_version") != CHECKPOINT_VERSION:
            version = state.get("checkpoint_version") if isinstance(state, dict) else None
            raise CheckpointMismatch(
                self.ckpt_path,
                f"resume checkpoint version {version}, this code reads {CHECKPOINT_VERSION}",
            )
        if state.get("meta", {}).get("fingerprint") != self.meta.fingerprint:
            return False
        load_model_state(self.model, state["model"], str(self.ckpt_path))
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["optimizer"])
        self.normalizer.set_extra_state(state["normalizer"])
        self.curve = state["curve"]
        self.hard.heap = [
            (float(loss), int(step), int(n), img.cpu().numpy())
            for loss, step, n, img in state["hard_examples"]
        ]
        heapq.heapify(self.hard.heap)
        torch.set_rng_state(state["rng"]["torch"].cpu())
        _set_numpy_rng_state(state["rng"]["numpy"])
        self.step = self.last_checkpoint_step = state["step"]
        return True

    # -- training -----------------------------------------------------------------
    def _autocast(self) -> Any:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        lr = lr_at(self.step, cfg)
        for group in self.opt.param_groups:
            group["lr"] = lr
        batch = self.make_batch(self.step, self.rank, self.world).to(self.device)
        t0 = time.perf_counter()
        with self._autocast():
            terms, logs = self.wrapped(batch)
        for name, value in terms.items():
            if not torch.isfinite(value).all():
                where = (
                    f"the last good checkpoint (step {self.last_checkpoint_step}) is kept at "
                    f"{self.ckpt_path}"
                    if self.last_checkpoint_step is not None
                    else "no checkpoint was written yet"
                )
                raise TrainingDiverged(
                    f"step {self.step}: loss term `{name}` is {value.item()}; {where}"
                )
        loss = self.normalizer({k: v.float() for k, v in terms.items()}, self.loss_weights)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.opt.step()
        if self.ema is not None:
            with torch.no_grad():
                for pe, pm in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                    pe.lerp_(pm, 1 - cfg.ema_decay)
        preview = logs.pop("preview", None)  # what to show of each sample, else the batch's
        if "per_sample" in logs and self.rank == 0:
            shown = preview if preview is not None else batch.preview()
            self.hard.add(logs["per_sample"].float(), shown, self.step)
        row = {f"loss/{k}": float(v.detach()) for k, v in terms.items()}
        row.update({k: float(v) for k, v in logs.items() if k != "per_sample"})
        row.update(
            {
                "loss/total_normalised": float(loss.detach()),
                "lr": lr,
                "grad_norm": float(grad_norm),
                "step_seconds": time.perf_counter() - t0,
            }
        )
        return row

    def fit(self, on_step: Callable[[int], None] | None = None, stop_at: int | None = None) -> None:
        """Train until ``cfg.steps``, checkpointing every ``checkpoint_every`` and at the end.

        ``stop_at`` ends the loop early at that step, as a kill would (tests use it).
        """
        cfg = self.cfg
        t_last, steps_last = time.perf_counter(), self.step
        end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
        while self.step < end:
            row = self.train_step()
            self.step += 1
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                now = time.perf_counter()
                row["steps_per_s"] = (self.step - steps_last) / max(now - t_last, 1e-9)
                t_last, steps_last = now, self.step
                if self.periodic_eval is not None and self.rank == 0:
                    every, fn = self.periodic_eval
                    if self.step % every == 0 or self.step == cfg.steps:
                        row.update(fn(self.eval_model()))
                        self.model.train()
                row = {"step": self.step, **row}
                self.curve.append(row)
                if self.rank == 0 and self.on_log is not None:
                    self.on_log(self.step, row)
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                if self.rank == 0 and self.on_checkpoint is not None:
                    self.on_checkpoint(self)
                self.hard.heap.clear()  # the next window of steps starts afresh
                self.save()
            if on_step is not None and self.rank == 0:
                on_step(self.step)

    def eval_model(self) -> nn.Module:
        """The weights to evaluate: EMA when enabled, else the live model."""
        return self.ema if self.ema is not None else self.model
