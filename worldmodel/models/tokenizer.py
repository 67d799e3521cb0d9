"""Masked-autoencoder video tokenizer (DreamerV4 §3.1), block-causal in time.

Per frame: ``P`` non-overlapping patches and ``L`` learned latent tokens.

Encoder (tokens ``[patches, latents]`` per frame, frames in order):
  - a patch attends only to patches of its own frame;
  - a latent attends to patches and latents of its own and earlier frames.
Bottleneck: latent outputs -> linear to ``latent_dim`` channels -> ``tanh``, so
``z`` is ``(B, T, L, latent_dim)`` in (-1, 1); with ``latent_norm`` a per-channel affine
map fitted after training follows (``(tanh - shift) / scale``), which decode undoes.
Decoder (tokens ``[patch queries, latents]`` per frame):
  - a patch query attends to its own frame's patch queries and to latents of its own and
    earlier frames;
  - a latent attends only to latents of its own and earlier frames.
MAE training replaces a fraction ``p ~ U(0, mask_max)`` of each frame's patches by a
learned mask token (the ``keep`` patterns are drawn by the caller: training draws them per step,
see ``worldmodel/training/mae_objective.py``, which also holds the training objective).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from worldmodel.models.blocks import Block, RMSNorm, rope_angles_nd
from worldmodel.models.sizes import TOKENIZER_SIZES

PRESETS = TOKENIZER_SIZES  # name -> width, heads, encoder/decoder depth


@dataclass(frozen=True)
class TokenizerConfig:
    """Architecture of a :class:`Tokenizer`; stored in every checkpoint."""

    image_size: int = 64
    patch_size: int = 8
    latent_tokens: int = 16
    latent_dim: int = 16
    dim: int = 128
    heads: int = 4
    enc_depth: int = 3
    dec_depth: int = 3
    spatial_prior: bool = True
    # "none" | "channel" | "motion": latents leave encode() as (tanh(.) - shift) / scale per
    # channel, the buffers fitted after training (mae_objective.calibrate_latent_norm)
    latent_norm: str = "none"

    @property
    def latent_grid(self) -> int:
        """Side of the square latent grid when the spatial prior applies, else 0."""
        side = int(round(self.latent_tokens**0.5))
        ok = self.spatial_prior and side * side == self.latent_tokens and self.grid % side == 0
        return side if ok else 0

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2

    @property
    def patch_dim(self) -> int:
        return 3 * self.patch_size**2


def block_causal_attention(
    t: int, p: int, n_lat: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean attention patterns ``(N, N)`` (True = may attend), ``N = t * (p + n_lat)``.

    Returns ``(encoder_allowed, decoder_allowed)`` for the per-frame layout ``[patches, latents]``.
    """
    per = p + n_lat
    frame = torch.arange(t * per, device=device) // per
    is_patch = (torch.arange(t * per, device=device) % per) < p
    same = frame[:, None] == frame[None, :]
    past_or_same = frame[None, :] <= frame[:, None]
    q_patch, k_patch = is_patch[:, None], is_patch[None, :]
    enc = torch.where(q_patch, k_patch & same, past_or_same)
    dec = torch.where(
        q_patch, (k_patch & same) | (~k_patch & past_or_same), ~k_patch & past_or_same
    )
    return enc, dec


class Tokenizer(nn.Module):
    """Frames ``(B, T, H, W, 3)`` in [0, 1] <-> latents ``(B, T, L, C)`` in (-1, 1)."""

    KIND = "tokenizer"  # the name stored in its model file (worldmodel/checkpoints.py)
    Config = TokenizerConfig

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        if cfg.image_size % cfg.patch_size:
            raise ValueError(
                f"image_size {cfg.image_size} is not a multiple of patch_size {cfg.patch_size}"
            )
        self.cfg = cfg
        d, p, n_lat = cfg.dim, cfg.num_patches, cfg.latent_tokens
        self.patch_in = nn.Linear(cfg.patch_dim, d)
        self.mask_token = nn.Parameter(torch.randn(d) * 0.02)
        self.enc_pos = nn.Parameter(torch.randn(p, d) * 0.02)
        self.enc_latents = nn.Parameter(torch.randn(n_lat, d) * 0.02)
        self.encoder = nn.ModuleList(Block(d, cfg.heads) for _ in range(cfg.enc_depth))
        self.enc_norm = RMSNorm(d)
        self.to_latent = nn.Linear(d, cfg.latent_dim)
        self.from_latent = nn.Linear(cfg.latent_dim, d)
        self.dec_latent_pos = nn.Parameter(torch.randn(n_lat, d) * 0.02)
        self.dec_queries = nn.Parameter(torch.randn(p, d) * 0.02)
        self.decoder = nn.ModuleList(Block(d, cfg.heads) for _ in range(cfg.dec_depth))
        self.dec_norm = RMSNorm(d)
        self.patch_out = nn.Linear(d, cfg.patch_dim)
        if cfg.latent_grid:
            # Spatial prior: latent i starts from the pooled patches of its image region and
            # each decoder query from the latent of its region. Attention still decides what
            # flows where; the prior only removes the long "mean image" plateau at the start.
            self.pool_in = nn.Linear(d, d)
            self.unpool = nn.Linear(d, d)
        if cfg.latent_norm not in ("none", "channel", "motion"):
            raise ValueError(
                f"latent_norm must be none, channel or motion, not {cfg.latent_norm!r}"
            )
        if cfg.latent_norm != "none":  # identity until fitted; saved with the weights
            self.register_buffer("latent_shift", torch.zeros(cfg.latent_dim))
            self.register_buffer("latent_scale", torch.ones(cfg.latent_dim))

    def _layout(
        self, t: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """RoPE angles for (time, row, col) of every token, and both attention patterns."""
        cfg = self.cfg
        g, n_lat = cfg.grid, cfg.latent_tokens
        rows = torch.arange(cfg.num_patches, device=device) // g + 1
        cols = torch.arange(cfg.num_patches, device=device) % g + 1
        zeros = torch.zeros(n_lat, device=device, dtype=torch.long)
        coords = []
        for f in range(t):
            coords.append(torch.stack([torch.full_like(rows, f), rows, cols], 1))
            coords.append(torch.stack([zeros + f, zeros, zeros], 1))
        angles = rope_angles_nd(torch.cat(coords), cfg.dim // cfg.heads)
        enc, dec = block_causal_attention(t, cfg.num_patches, n_lat, device)
        return angles, enc, dec

    def patchify(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, T, H, W, 3)`` -> ``(B, T, P, p*p*3)``."""
        s = self.cfg.patch_size
        return rearrange(frames, "b t (gh ph) (gw pw) c -> b t (gh gw) (ph pw c)", ph=s, pw=s)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """``(B, T, P, p*p*3)`` -> ``(B, T, H, W, 3)``."""
        s, g = self.cfg.patch_size, self.cfg.grid
        return rearrange(
            patches, "b t (gh gw) (ph pw c) -> b t (gh ph) (gw pw) c", gh=g, ph=s, pw=s
        )

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """Average patch tokens ``(B, T, P, D)`` over each latent's region -> ``(B, T, L, D)``."""
        g, s = self.cfg.grid, self.cfg.latent_grid
        r = g // s
        return rearrange(
            x, "b t (sh rh sw rw) d -> b t (sh sw) (rh rw) d", sh=s, rh=r, sw=s, rw=r
        ).mean(3)

    def _unpool(self, lat: torch.Tensor) -> torch.Tensor:
        """Copy each latent ``(B, T, L, D)`` to the patches of its region -> ``(B, T, P, D)``."""
        g, s = self.cfg.grid, self.cfg.latent_grid
        r = g // s
        x = lat.view(*lat.shape[:2], s, 1, s, 1, lat.shape[-1]).expand(-1, -1, s, r, s, r, -1)
        return x.reshape(*lat.shape[:2], g * g, lat.shape[-1])

    def encode(self, frames: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Latents ``(B, T, L, C)`` of float frames ``(B, T, H, W, 3)`` in [0, 1]."""
        b, t = frames.shape[:2]
        cfg = self.cfg
        p, n_lat = cfg.num_patches, cfg.latent_tokens
        x = self.patch_in(self.patchify(frames) * 2 - 1)  # (B, T, P, D), pixels centred
        if keep is not None:
            x = torch.where(keep[..., None], x, self.mask_token.to(x.dtype))
        x = x + self.enc_pos
        lat = self.enc_latents.expand(b, t, n_lat, cfg.dim)
        if cfg.latent_grid:
            lat = lat + self.pool_in(self._pool(x))
        tokens = torch.cat([x, lat], dim=2).reshape(b, t * (p + n_lat), cfg.dim)  # (B, N, D)
        angles, enc_allowed, _ = self._layout(t, frames.device)
        for blk in self.encoder:
            tokens = blk(tokens, angles, enc_allowed)
        tokens = self.enc_norm(tokens).view(b, t, p + n_lat, cfg.dim)[:, :, p:]  # (B, T, L, D)
        z = torch.tanh(self.to_latent(tokens))
        if self.cfg.latent_norm != "none":
            z = (z - self.latent_shift) / self.latent_scale
        return z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Frames ``(B, T, H, W, 3)`` (unclamped, ~[0, 1]) from latents ``(B, T, L, C)``."""
        b, t = z.shape[:2]
        cfg = self.cfg
        p, n_lat = cfg.num_patches, cfg.latent_tokens
        if cfg.latent_norm != "none":
            z = z * self.latent_scale + self.latent_shift
        lat = self.from_latent(z) + self.dec_latent_pos  # (B, T, L, D)
        queries = self.dec_queries.expand(b, t, p, cfg.dim)
        if cfg.latent_grid:
            queries = queries + self.unpool(self._unpool(lat))
        tokens = torch.cat([queries, lat], dim=2).reshape(b, t * (p + n_lat), cfg.dim)
        angles, _, dec_allowed = self._layout(t, z.device)
        for blk in self.decoder:
            tokens = blk(tokens, angles, dec_allowed)
        out = self.dec_norm(tokens).view(b, t, p + n_lat, cfg.dim)[:, :, :p]
        return self.unpatchify(self.patch_out(out) * 0.5 + 0.5)

    def forward(self, frames: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruct float frames in [0, 1] (masked patches inferred)."""
        return self.decode(self.encode(frames, keep))
