"""Autoregressive rollouts on held-out episodes, in pixels, beside baselines.

Context frames are corrupted to ``tau_ctx`` as the sampler does (``worldmodel/sampler.py``).

Windows come from held-out episodes only (the split is by whole episode, made at
collection; see worldmodel/data/windows.py). Every method is scored on the same windows, per horizon step ``h``
(frame ``C + h - 1`` of the window, ``h = 1..H``):

- ``model``: rollout from ``C`` true context frames with the true actions, ``K`` steps;
- ``repeat_last``: the last context frame repeated (a world model must beat it);
- ``tokenizer_ceiling``: decode(encode(ground truth)), the best the latents allow;
- ``teacher_forced``: one-step predictions from the true past (the gap to ``model`` is
  exposure bias);
- ``shuffled_actions``: the rollout with another window's actions (a model that ignores
  actions scores the same as ``model``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from worldmodel.checkpoints import ModelMeta
from worldmodel.codec import decode_latents, encode_episode
from worldmodel.config import EvaluateParams
from worldmodel.data.windows import PixelWindows
from worldmodel.metrics import LPIPS, moving_pixels, psnr, region_psnr, sharpness_ratio, ssim
from worldmodel.models.dynamics import Dynamics
from worldmodel.models.tokenizer import Tokenizer
from worldmodel.sampler import rollout

METHODS = ("model", "repeat_last", "tokenizer_ceiling", "teacher_forced", "shuffled_actions")


class Evaluator:
    """Runs every method on a task's windows and scores them per horizon step."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        dynamics: Dynamics,
        context: int,
        tau_ctx: float,
        window: int,
        clip_frames: int,
        device: torch.device,
        lpips: LPIPS | None,
        seed: int,
        batch: int = 16,
        kv_cache: bool = True,
    ) -> None:
        self.tok, self.dyn = tokenizer, dynamics
        # False: every sampler step re-runs the whole window instead of caching the past
        # frames' keys and values (the same frames while context + horizon <= window)
        self.kv_cache = kv_cache
        self.c, self.tau_ctx, self.window, self.clip_frames = context, tau_ctx, window, clip_frames
        self.device, self.lpips, self.seed, self.batch = device, lpips, seed, batch
        self.context_d = 1.0 / dynamics.cfg.k_max  # context frames: the finest step size
        # progress: called after each batch of rollouts with its windows x sampler steps
        self.on_rollout: Callable[[int], None] | None = None

    @classmethod
    def from_models(
        cls,
        tokenizer: Tokenizer,
        tok_meta: ModelMeta,
        dynamics: Dynamics,
        dyn_meta: ModelMeta,
        e: EvaluateParams,
        device: torch.device,
        lpips: LPIPS | None,
        seed: int,
    ) -> Evaluator:
        """The evaluator of two trained models, with the settings they were trained with:
        the tokenizer's clip length, the dynamics' context level and training window."""
        dp = dyn_meta.params.dynamics
        clip_frames = tok_meta.params.tokenizer.clip_frames
        return cls(
            tokenizer,
            dynamics=dynamics,
            context=e.context,
            tau_ctx=dp.tau_ctx,
            window=dp.long_seq_len,
            clip_frames=clip_frames,
            device=device,
            lpips=lpips,
            seed=seed,
            batch=e.batch_size,
        )

    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """Latents ``(N, T, L, C)`` of uint8 windows, each encoded causally from its start."""
        return torch.stack(
            [
                torch.from_numpy(encode_episode(self.tok, f, self.clip_frames, self.device))
                for f in frames
            ]
        ).to(self.device)

    def decode(self, z: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Pixels ``(N, T - start, S, S, 3)`` in [0, 1] (CPU) of latents ``(N, T, L, C)``,
        frames ``start`` onwards."""
        return torch.cat(
            [
                decode_latents(self.tok, z[i : i + self.batch], self.clip_frames, start).cpu()
                for i in range(0, len(z), self.batch)
            ]
        )

    def roll(
        self,
        z: torch.Tensor,
        actions: torch.Tensor,
        horizon: int,
        steps: int,
        teacher_forced: bool = False,
    ) -> torch.Tensor:
        """Rollout latents ``(N, horizon, L, C)`` from the first ``C`` latents of ``z``.

        ``teacher_forced``: one-step predictions, the past holding the true latents of
        ``z`` instead of the model's own (see :func:`worldmodel.sampler.rollout`).
        """
        g = torch.Generator().manual_seed(self.seed + int(teacher_forced))
        out = []
        for i in range(0, len(z), self.batch):
            zi = z[i : i + self.batch]
            truth = zi[:, self.c : self.c + horizon] if teacher_forced else None
            out.append(
                rollout(
                    self.dyn,
                    context=zi[:, : self.c],
                    actions=actions[i : i + self.batch, : self.c + horizon],
                    horizon=horizon,
                    steps=steps,
                    tau_ctx=self.tau_ctx,
                    window=self.window,
                    generator=g,
                    context_d=self.context_d,
                    kv_cache=self.kv_cache,
                    truth=truth,
                )
            )
            if self.on_rollout is not None:
                self.on_rollout(len(zi) * steps)
        return torch.cat(out)

    def score(
        self, pred: torch.Tensor, target: torch.Tensor, moving: torch.Tensor
    ) -> dict[str, np.ndarray]:
        """Per-window, per-step metrics ``(N, H)`` of pixel predictions vs targets.

        ``moving`` ``(N, H, S, S)``: the pixels that move (see
        :func:`worldmodel.metrics.moving_pixels`), where ``psnr_moving`` is measured.
        """
        n, h = pred.shape[:2]
        out = {
            "psnr": psnr(pred, target).view(n, h).numpy(),
            "psnr_moving": region_psnr(
                pred.flatten(0, 1), target.flatten(0, 1), moving.flatten(0, 1)
            )
            .view(n, h)
            .numpy(),
            "ssim": ssim(pred, target).view(n, h).numpy(),
        }
        if self.lpips is not None:
            vals = [
                self.lpips(pred[i : i + 1].to(self.device), target[i : i + 1].to(self.device)).cpu()
                for i in range(n)
            ]
            out["lpips"] = torch.stack(vals).view(n, h).numpy()
        return out

    def run(self, w: PixelWindows, horizon: int, steps: int) -> dict[str, dict[str, np.ndarray]]:
        """Scores ``{method: {metric: (N, horizon)}}`` on the windows ``w``."""
        frames = torch.from_numpy(w.frames).float() / 255
        target = frames[:, self.c : self.c + horizon]
        moving = moving_pixels(target, frames[:, self.c - 1 : self.c])
        self.last_moving_fraction = moving.float().flatten(2).mean(-1).numpy()  # (N, H)
        z = self.encode(w.frames)
        a = torch.from_numpy(w.actions).to(self.device)
        z_true = z[:, self.c : self.c + horizon]
        shuffled = torch.roll(a, 1, dims=0)  # another window's actions
        shuffled[:, : self.c] = a[:, : self.c]  # same context, different future actions
        latents = {
            "model": self.roll(z, a, horizon, steps),
            "teacher_forced": self.roll(z, a, horizon, steps, teacher_forced=True),
            "shuffled_actions": self.roll(z, shuffled, horizon, steps),
        }
        result: dict[str, dict[str, np.ndarray]] = {}
        self.last_pixels: dict[str, torch.Tensor] = {}
        # the tokenizer's own reconstruction of the window; its context frames are what
        # every rollout's context decodes to, so each rollout decodes only its future
        ceiling_full = self.decode(z[:, : self.c + horizon])
        for name, zp in latents.items():
            pix = self.decode(torch.cat([z[:, : self.c], zp], dim=1), start=self.c)
            self.last_pixels[name] = torch.cat([ceiling_full[:, : self.c], pix], dim=1)
            result[name] = self.score(pix, target, moving)
            result[name]["latent_mse"] = (zp - z_true).pow(2).flatten(2).mean(-1).cpu().numpy()
        repeat = frames[:, self.c - 1 : self.c].expand_as(target)
        result["repeat_last"] = self.score(repeat, target, moving)
        result["repeat_last"]["latent_mse"] = (
            (z[:, self.c - 1 : self.c] - z_true).pow(2).flatten(2).mean(-1).cpu().numpy()
        )
        ceiling = ceiling_full[:, self.c :]
        result["tokenizer_ceiling"] = self.score(ceiling, target, moving)
        result["tokenizer_ceiling"]["latent_mse"] = np.zeros(
            result["model"]["psnr"].shape, np.float32
        )
        return result

    def sweep(
        self, w: PixelWindows, horizon: int, ks: list[int], at: list[int]
    ) -> tuple[list[dict[str, Any]], dict[int, np.ndarray]]:
        """Sampler sweep per K: PSNR at horizons ``at``, generated frames/s (batch 1 and
        batched), and the last frame's sharpness relative to the ground truth and to the
        tokenizer ceiling (decode(encode(truth)), the sharpest reachable).

        Returns the rows (one per K, window means) and each K's per-window PSNR
        ``{k: (N, horizon)}`` (for paired intervals between two K).
        """
        frames = torch.from_numpy(w.frames).float() / 255
        z = self.encode(w.frames)
        a = torch.from_numpy(w.actions).to(self.device)
        # the tokenizer's own reconstruction of the last frame: the sharpest a decoded
        # prediction can be (blur the tokenizer adds is not the sampler's fault)
        last = self.c + horizon - 1  # decoded with the latents before it as its context
        ceiling_last = self.decode(z[:, : last + 1], start=last)[:, 0]
        rows, per_window = [], {}
        # the last frame of a few windows per K, for a picture (truth and ceiling first)
        shown = slice(0, 6)
        self.last_sweep_frames = {
            "truth": frames[shown, self.c + horizon - 1],
            "tokenizer ceiling": ceiling_last[shown],
        }
        for k in ks:
            t0 = time.perf_counter()
            zp = self.roll(z, a, horizon, k)
            batched = zp.shape[0] * horizon / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            self.roll(z[:1], a[:1], horizon, k)
            single = horizon / (time.perf_counter() - t0)
            pix = self.decode(torch.cat([z[:, : self.c], zp], 1), start=self.c)
            truth = frames[:, self.c : self.c + horizon]
            per_window[k] = psnr(pix, truth).view(len(zp), horizon).numpy()
            p = per_window[k].mean(0)
            row = {"k": k, "fps_batch1": round(single, 2), "fps_batched": round(batched, 2)}
            row.update({f"psnr_h{h}": float(p[h - 1]) for h in at if h <= horizon})
            # sharpness of the last frame relative to the truth's (1 = as sharp): PSNR
            # falls as K grows when samples get sharper, not only when they get worse
            row[f"sharpness_h{horizon}"] = round(sharpness_ratio(pix[:, -1], truth[:, -1]), 4)
            row[f"sharpness_vs_ceiling_h{horizon}"] = round(
                sharpness_ratio(pix[:, -1], ceiling_last), 4
            )
            self.last_sweep_frames[f"K = {k}"] = pix[shown, -1]
            rows.append(row)
        return rows, per_window
