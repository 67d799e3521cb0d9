"""Action-conditioned dynamics transformer (DreamerV4 §3.2), x-prediction.

SIGNAL-LEVEL CONVENTION (docs/forcing.md): ``tau = 1`` is clean, ``tau = 0`` pure noise,
``z_tau = (1 - tau) z0 + tau z1``. The network maps noisy latents with their per-frame
``(tau, d)`` and actions to the clean latents: ``z1_hat = f(z_tau, tau, d, a)``.

Tokens of frame ``t`` (``N = S + R + 1 + 1`` of them):
  ``S`` packed latent tokens (``pack`` tokenizer latents concatenated per token),
  ``R`` learned register tokens, one ``(tau, d)`` token, one action token.
``actions[t]`` is the action that led *into* frame ``t`` (the episode store's
convention), so frame ``t``'s own tokens carry it and causal time attention lets the
prediction of frame ``t`` depend on frames ``< t`` and actions ``<= t`` only.

Layers: space attention among the ``N`` tokens of a frame in every layer; causal time
attention (each token slot across frames ``<= t``) every ``time_every`` layers. RMSNorm
pre-norm, RoPE (token index in space, frame index in time), QK-norm, logit
soft-capping, SwiGLU, grouped-query attention. Time positions are relative (RoPE) and
there are no learned per-frame queries, so a rollout can run past the longest training
window. The KV cache (:meth:`Dynamics.new_kv_cache`, :meth:`Dynamics.kv_cached_step`)
holds the time-attention layers' keys and values of the last ``window - 1`` committed
frames: each sampler step then runs only the new frame's tokens, so the cost per
generated frame is bounded and does not grow with the window
(``worldmodel.sampler.rollout``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import nn

from worldmodel.models.blocks import Block, KVCache, RMSNorm, rope_angles
from worldmodel.models.sizes import DYNAMICS_SIZES

PRESETS = DYNAMICS_SIZES  # name -> width, heads, key/value heads, depth


@dataclass(frozen=True)
class DynamicsConfig:
    """Architecture of a :class:`Dynamics`; stored in every checkpoint."""

    latent_tokens: int = 16  # tokenizer latents per frame
    latent_dim: int = 16  # channels per tokenizer latent
    action_dim: int = 1
    pack: int = 2  # tokenizer latents per dynamics token
    registers: int = 2
    k_max: int = 16
    dim: int = 128
    heads: int = 4
    kv_heads: int = 2
    depth: int = 4
    time_every: int = 2
    softcap: float = 50.0
    # "clean": the output is the clean latents; "residual": the output is added to the
    # previous frame's input latents times a learned gain per signal level (see Dynamics)
    predict: str = "clean"

    @property
    def spatial_tokens(self) -> int:
        return self.latent_tokens // self.pack


@dataclass
class DynamicsKVCache:
    """The KV cache of a rollout: one :class:`KVCache` per time layer and the next frame index."""

    layers: list[KVCache] = field(default_factory=list)
    t: int = 0
    # the newest committed frame's input latents (B, L, C) and signal level (B,), the base
    # of a residual prediction; None before the first commit
    last_z: torch.Tensor | None = None
    last_tau: torch.Tensor | None = None

    def repeated(self, n: int) -> DynamicsKVCache:
        """The cache of a batch of one sample tiled to ``n`` samples (e.g. one context shared
        by ``n`` candidate action sequences); this one is left as it is."""
        tile = lambda x: None if x is None else x.repeat(n, *[1] * (x.dim() - 1))  # noqa: E731
        return DynamicsKVCache(
            [layer.repeated(n) for layer in self.layers],
            self.t,
            tile(self.last_z),
            tile(self.last_tau),
        )


def grid_position(tau: torch.Tensor, k_max: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where ``tau`` lies on the grid ``{0, 1/k_max, ..., 1}``: the index of the grid point
    below it (at most ``k_max - 1``) and the fraction of the way to the next one."""
    pos = tau.clamp(0, 1) * k_max
    lo = pos.floor().long().clamp(max=k_max - 1)
    return lo, pos - lo


class SignalEmbedding(nn.Module):
    """Discrete embeddings of ``tau`` on the ``1/k_max`` grid and of ``d`` (``log2 1/d``).

    Off-grid ``tau`` (e.g. the context level 0.9) interpolates linearly between the two
    nearest grid embeddings, so it is labelled faithfully.
    """

    def __init__(self, k_max: int, dim: int) -> None:
        super().__init__()
        self.k_max = k_max
        self.tau = nn.Embedding(k_max + 1, dim)
        self.d = nn.Embedding(k_max.bit_length(), dim)

    def forward(self, tau: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        lo, frac = grid_position(tau, self.k_max)
        frac = frac.unsqueeze(-1)
        emb = self.tau(lo) * (1 - frac) + self.tau(lo + 1) * frac
        d_idx = torch.log2(1.0 / d.clamp(min=1.0 / self.k_max)).round().long()
        return emb + self.d(d_idx)


class SkipGain(nn.Module):
    """A learned scalar per signal level on the ``1/k_max`` grid (interpolated off it),
    initialised to the level itself: how much of a frame's noisy input latents a residual
    prediction of the next frame starts from (pure noise: none; clean: all of it)."""

    def __init__(self, k_max: int) -> None:
        super().__init__()
        self.k_max = k_max
        self.gain = nn.Parameter(torch.linspace(0, 1, k_max + 1))

    def forward(self, tau: torch.Tensor) -> torch.Tensor:
        lo, frac = grid_position(tau, self.k_max)
        return self.gain[lo] * (1 - frac) + self.gain[lo + 1] * frac


class Dynamics(nn.Module):
    """``f(z_tau (B, T, L, C), tau (B, T), d (B, T), actions (B, T, A)) -> z1_hat (B, T, L, C)``.

    ``predict = "residual"`` (config): ``z1_hat[t] = g(tau[t-1]) z_tau[t-1] + net(...)[t]``,
    the previous frame's input latents times a learned gain per signal level
    (:class:`SkipGain`) plus the network's output, so that "nothing moves" costs the
    network nothing and its capacity goes to what changes. The first frame of a window,
    and every frame of an isolated sample, has no previous frame and a base of zero.
    """

    KIND = "dynamics"  # the name stored in its model file (worldmodel/checkpoints.py)
    Config = DynamicsConfig

    def __init__(self, cfg: DynamicsConfig) -> None:
        super().__init__()
        if cfg.latent_tokens % cfg.pack:
            raise ValueError(f"pack {cfg.pack} does not divide latent_tokens {cfg.latent_tokens}")
        self.cfg = cfg
        d = cfg.dim
        self.latent_in = nn.Linear(cfg.pack * cfg.latent_dim, d)
        self.latent_pos = nn.Parameter(torch.randn(cfg.spatial_tokens, d) * 0.02)
        self.registers = nn.Parameter(torch.randn(cfg.registers, d) * 0.02)
        self.signal = SignalEmbedding(cfg.k_max, d)
        self.action_in = nn.Linear(cfg.action_dim, d)
        self.action_to_latents = nn.Linear(d, d)
        self.blocks = nn.ModuleList(
            Block(d, cfg.heads, cfg.kv_heads, cfg.softcap) for _ in range(cfg.depth)
        )
        self.is_time = [(i + 1) % cfg.time_every == 0 for i in range(cfg.depth)]
        self.norm = RMSNorm(d)
        self.out = nn.Linear(d, cfg.pack * cfg.latent_dim)
        if cfg.predict not in ("clean", "residual"):
            raise ValueError(f"predict must be 'clean' or 'residual', not {cfg.predict!r}")
        self.skip = SkipGain(cfg.k_max) if cfg.predict == "residual" else None

    def tokens(
        self, z: torch.Tensor, tau: torch.Tensor, d: torch.Tensor, actions: torch.Tensor
    ) -> torch.Tensor:
        """Frame tokens ``(B, T, N, D)``."""
        b, t = z.shape[:2]
        cfg = self.cfg
        packed = rearrange(z, "b t (s p) c -> b t s (p c)", p=cfg.pack)
        act = self.action_in(actions)[:, :, None]  # (B, T, 1, D)
        # The action also enters every latent token of its frame (as well as its own
        # token): a single token was measured to be nearly ignored on a CPU budget.
        lat = self.latent_in(packed) + self.latent_pos + self.action_to_latents(act)  # (B, T, S, D)
        reg = self.registers.expand(b, t, -1, -1)  # (B, T, R, D)
        sig = self.signal(tau, d)[:, :, None]  # (B, T, 1, D)
        return torch.cat([lat, reg, sig, act], dim=2)

    def forward(
        self,
        z: torch.Tensor,
        tau: torch.Tensor,
        d: torch.Tensor,
        actions: torch.Tensor,
        isolated: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Clean-latent prediction ``(B, T, L, C)`` for every frame of the window.

        ``isolated (B,)`` bool: those samples' frames see no other frame (single-frame
        samples, DreamerV4's image prior); the others attend causally over time.
        """
        b, t = z.shape[:2]
        cfg = self.cfg
        x = self.tokens(z, tau, d, actions)  # (B, T, N, D)
        n = x.shape[2]
        hd = cfg.dim // cfg.heads
        space_angles = rope_angles(torch.arange(n, device=z.device), hd)
        time_angles = rope_angles(torch.arange(t, device=z.device), hd)
        causal = torch.ones(t, t, dtype=torch.bool, device=z.device).tril()
        if isolated is not None and bool(isolated.any()):
            eye = torch.eye(t, dtype=torch.bool, device=z.device)
            per_sample = torch.where(isolated[:, None, None], eye, causal)  # (B, T, T)
            causal = per_sample.repeat_interleave(n, dim=0)[:, None]  # ((B N), 1, T, T)
        for blk, is_time in zip(self.blocks, self.is_time, strict=True):
            if is_time:  # each token slot attends to itself in frames <= t
                seq = rearrange(x, "b t n d -> (b n) t d")
                x = rearrange(blk(seq, time_angles, causal), "(b n) t d -> b t n d", b=b)
            else:  # tokens of one frame attend to each other
                x = blk(x.reshape(b * t, n, -1), space_angles).view(b, t, n, -1)
        out = self.out(self.norm(x[:, :, : cfg.spatial_tokens]))
        out = rearrange(out, "b t s (p c) -> b t (s p) c", p=cfg.pack)
        if self.skip is None:
            return out
        base = torch.zeros_like(z)
        base[:, 1:] = self.skip(tau[:, :-1])[..., None, None] * z[:, :-1]
        if isolated is not None:
            base = torch.where(isolated[:, None, None, None], torch.zeros_like(base), base)
        return out + base

    # -- KV cache -----------------------------------------------------------------------
    def new_kv_cache(self, window: int) -> DynamicsKVCache:
        """An empty KV cache whose frames see at most ``window - 1`` committed past frames."""
        return DynamicsKVCache([KVCache(max_len=window - 1) for t in self.is_time if t])

    def kv_cached_step(
        self,
        cache: DynamicsKVCache,
        z: torch.Tensor,
        tau: torch.Tensor,
        d: torch.Tensor,
        action: torch.Tensor,
        commit: bool,
    ) -> torch.Tensor:
        """``z1_hat (B, L, C)`` of one new frame ``z (B, L, C)`` given the committed frames.

        ``tau, d (B,)``, ``action (B, A)``. With ``commit`` the frame becomes the newest
        past frame of ``cache`` (its time-layer keys/values are stored). Equal to
        :meth:`forward` on the committed frames plus this one, up to float rounding.
        """
        cfg = self.cfg
        x = self.tokens(z[:, None], tau[:, None], d[:, None], action[:, None])[:, 0]  # (B, N, D)
        b, n = x.shape[:2]
        hd = cfg.dim // cfg.heads
        space_angles = rope_angles(torch.arange(n, device=z.device), hd)
        time_angles = rope_angles(torch.tensor([cache.t], device=z.device), hd)
        layers = iter(cache.layers)
        for blk, is_time in zip(self.blocks, self.is_time, strict=True):
            if is_time:
                layer = next(layers)
                layer.commit = commit
                x = blk(x.reshape(b * n, 1, -1), time_angles, cache=layer).view(b, n, -1)
            else:
                x = blk(x, space_angles)
        out = self.out(self.norm(x[:, : cfg.spatial_tokens]))
        out = rearrange(out, "b s (p c) -> b (s p) c", p=cfg.pack)
        if self.skip is not None and cache.last_z is not None:
            out = out + self.skip(cache.last_tau)[:, None, None] * cache.last_z
        if commit:
            cache.t += 1
            cache.last_z, cache.last_tau = z, tau
        return out
