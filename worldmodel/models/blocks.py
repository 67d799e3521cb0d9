"""Transformer building blocks shared by the tokenizer and the dynamics model.

Pre-norm blocks with RMSNorm, rotary position embeddings (RoPE) on queries and keys,
QK-norm, optional attention-logit soft-capping, grouped-query attention (GQA) and a
SwiGLU feed-forward. Attention takes an optional boolean ``allowed`` pattern
``(..., Lq, Lk)`` (True: the query may attend to the key), or a :class:`KVCache` of past positions: the queries then attend to
the cached keys/values (already normalised and rotated) and to themselves, and the
cache keeps the newest ``max_len`` positions when asked to commit them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned gain."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_angles(positions: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Rotation angles ``(L, dim // 2)`` for integer or real ``positions`` ``(L,)``."""
    freqs = base ** (-torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim)
    return positions.float()[:, None] * freqs[None, :]


def rope_angles_nd(coords: torch.Tensor, dim: int) -> torch.Tensor:
    """Angles for multi-axis positions ``coords (L, n_axes)``: the head dim split per axis."""
    n = coords.shape[1]
    per = (dim // n) // 2 * 2
    parts = [rope_angles(coords[:, i], per) for i in range(n)]
    pad = dim // 2 - sum(p.shape[1] for p in parts)
    if pad:
        parts.append(torch.zeros(coords.shape[0], pad, device=coords.device))
    return torch.cat(parts, dim=1)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels of ``x (..., L, Dh)`` by ``angles (L, Dh // 2)``."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


@dataclass
class KVCache:
    """Keys and values ``(B, H_kv, L, Dh)`` of past positions for one attention layer.

    ``commit``: whether the next forward call appends its own keys/values; the oldest are
    dropped beyond ``max_len`` positions (a sliding window of bounded cost).
    """

    max_len: int
    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    commit: bool = False

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def repeated(self, n: int) -> KVCache:
        """A copy whose batch holds ``n`` copies of this one's (a batch of 1 tiled to ``n``)."""
        rep = lambda x: None if x is None else x.repeat(n, 1, 1, 1)  # noqa: E731
        return KVCache(self.max_len, rep(self.k), rep(self.v), self.commit)

    def extended(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached plus new keys/values; stores them (trimmed) when committing."""
        if self.k is not None:
            k, v = torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)
        if self.commit and self.max_len > 0:
            self.k, self.v = k[:, :, -self.max_len :], v[:, :, -self.max_len :]
        return k, v


class Attention(nn.Module):
    """Multi-head attention with GQA, QK-norm, RoPE and optional logit soft-capping."""

    def __init__(
        self, dim: int, heads: int, kv_heads: int | None = None, softcap: float = 0.0
    ) -> None:
        super().__init__()
        kv_heads = kv_heads or heads
        if dim % heads or heads % kv_heads:
            raise ValueError(f"dim {dim}, heads {heads}, kv_heads {kv_heads} do not divide")
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.softcap = softcap
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * kv_heads * self.head_dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        self.q_norm = RMSNorm(self.head_dim)
        self.k_norm = RMSNorm(self.head_dim)

    def forward(
        self,
        x: torch.Tensor,
        angles: torch.Tensor | None = None,
        allowed: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        b, n, _ = x.shape  # (B, L, D)
        q = self.q(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)  # (B, H, L, Dh)
        k, v = self.kv(x).view(b, n, 2, self.kv_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        if angles is not None:
            q, k = apply_rope(q, angles), apply_rope(k, angles)
        if cache is not None:
            if allowed is not None:
                raise ValueError("a KVCache attends to every cached position; pass no pattern")
            past = len(cache)
            k, v = cache.extended(k, v)
            if n > 1:  # several new positions: causal among themselves, all past visible
                allowed = torch.ones(n, past + n, dtype=torch.bool, device=x.device).tril(past)
        if self.kv_heads != self.heads:
            rep = self.heads // self.kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if self.softcap > 0:
            logits = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)
            logits = self.softcap * torch.tanh(logits / self.softcap)
            if allowed is not None:
                logits = logits.masked_fill(~allowed, float("-inf"))
            y = logits.softmax(-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.out(y.transpose(1, 2).reshape(b, n, -1))


class SwiGLU(nn.Module):
    """Gated feed-forward: ``W2 (silu(W1 x) * W3 x)``."""

    def __init__(self, dim: int, mult: float = 8 / 3) -> None:
        super().__init__()
        hidden = int(dim * mult + 7) // 8 * 8
        self.w13 = nn.Linear(dim, 2 * hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, g = self.w13(x).chunk(2, dim=-1)
        return self.w2(F.silu(a) * g)


class Block(nn.Module):
    """Pre-norm transformer block: attention then SwiGLU, each residual."""

    def __init__(
        self, dim: int, heads: int, kv_heads: int | None = None, softcap: float = 0.0
    ) -> None:
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = Attention(dim, heads, kv_heads, softcap)
        self.norm2 = RMSNorm(dim)
        self.ff = SwiGLU(dim)

    def forward(
        self,
        x: torch.Tensor,
        angles: torch.Tensor | None = None,
        allowed: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), angles, allowed, cache)
        return x + self.ff(self.norm2(x))
