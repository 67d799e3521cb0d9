"""The optimiser of a training stage (``train.optimizer``): AdamW, or Muon for the
transformer blocks' weight matrices with AdamW for everything else.

Muon (Jordan et al. 2024) orthogonalises each 2-D weight's momentum by a few
Newton-Schulz iterations before the step, so every direction of the matrix moves at the
same rate. It is meant for hidden weight matrices only: here the ``nn.Linear`` weights
inside :class:`~worldmodel.models.blocks.Block` (attention and feed-forward).
Embeddings, input and output projections, norms' gains and biases stay with AdamW. Its
learning rate is scaled to match AdamW's update RMS (Moonshot's ``match_rms_adamw``,
``0.2 sqrt(max(A, B))``), so ``train.lr`` serves both.

:class:`Muon` here is ``torch.optim.Muon``'s algorithm (the same momentum, Nesterov
update, quintic Newton-Schulz coefficients and learning-rate scaling) with two changes:
the iteration runs in float32 on a CPU and in bfloat16 on a GPU (torch's always runs in
bfloat16, whose CPU speed depends on the CPU: measured faster than float32 on one with
bf16 units, and many times slower on CPUs without them), and the matrices of one shape
are orthogonalised together, as one batched product, instead of one at a time.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from worldmodel.config import TrainParams
from worldmodel.models.blocks import Block

ADAM_BETAS = (0.9, 0.95)
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # quintic Newton-Schulz (torch.optim.Muon's)


def orthogonalize(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately the orthogonal factor ``U V^T`` of each matrix of ``g`` ``(N, A, B)``
    (``g = U S V^T``), by ``steps`` quintic Newton-Schulz iterations; the singular
    values come out near 1 (roughly 0.68 to 1.14), not exactly 1, which is what Muon uses.
    """
    a, b, c = NS_COEFFICIENTS
    dtype = torch.bfloat16 if g.is_cuda else torch.float32
    x = g.to(dtype)
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = x.mT
    # spectral norm <= 1 (the Frobenius norm bounds it); contiguous for the batched products
    x = (x / x.flatten(1).norm(dim=1).clamp_min(1e-7)[:, None, None]).contiguous()
    for _ in range(steps):
        gram = torch.bmm(x, x.mT)
        poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)  # b G + c G G
        x = torch.baddbmm(x, poly, x, beta=a)  # a X + (b G + c G G) X
    if tall:
        x = x.mT
    return x.to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Muon for 2-D weights (see the module's text): momentum, then the orthogonalised
    update, decoupled weight decay, and the learning rate scaled by ``0.2 sqrt(max(A, B))``."""

    def __init__(
        self,
        params: list[nn.Parameter],
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
    ) -> None:
        if any(p.ndim != 2 for p in params):
            raise ValueError("Muon updates 2-D weight matrices only")
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "nesterov": nesterov,
            "ns_steps": ns_steps,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # noqa: ARG002 (the Optimizer signature)
        for group in self.param_groups:
            m, lr = group["momentum"], group["lr"]
            by_shape: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - m)
                update = p.grad.lerp(buf, m) if group["nesterov"] else buf
                by_shape.setdefault(tuple(p.shape), []).append((p, update))
            for shape, items in by_shape.items():
                ortho = orthogonalize(torch.stack([u for _, u in items]), group["ns_steps"])
                scaled = lr * 0.2 * math.sqrt(max(shape))
                for (p, _), o in zip(items, ortho, strict=True):
                    p.mul_(1 - lr * group["weight_decay"])
                    p.add_(o, alpha=-scaled)


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The 2-D weights of every linear layer inside a transformer block of ``model``."""
    out: dict[int, nn.Parameter] = {}
    for block in model.modules():
        if isinstance(block, Block):
            for m in block.modules():
                if isinstance(m, nn.Linear) and m.weight.requires_grad:
                    out[id(m.weight)] = m.weight
    return list(out.values())


class Optimizers:
    """Several optimisers stepped as one (the trainer's view: ``param_groups``, ``step``,
    ``zero_grad`` and a state dict)."""

    def __init__(self, parts: dict[str, torch.optim.Optimizer]) -> None:
        self.parts = parts

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for opt in self.parts.values() for g in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.parts.values():
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.parts.values():
            opt.step()

    def state_dict(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.parts.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, opt in self.parts.items():
            opt.load_state_dict(state[name])


def build_optimizer(
    model: nn.Module, params: list[nn.Parameter], cfg: TrainParams
) -> torch.optim.Optimizer | Optimizers:
    """The optimiser of ``params`` (the trainable ones) for ``cfg.optimizer``; AdamW alone
    when ``model`` has no transformer block for Muon."""
    trainable = {id(p) for p in params}
    muon = [p for p in hidden_matrices(model) if id(p) in trainable]
    if cfg.optimizer == "adamw" or not muon:
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=ADAM_BETAS)
    chosen = {id(p) for p in muon}
    rest = [p for p in params if id(p) not in chosen]
    return Optimizers(
        {
            "muon": Muon(muon, lr=cfg.lr, weight_decay=cfg.weight_decay),
            "adamw": torch.optim.AdamW(
                rest, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=ADAM_BETAS
            ),
        }
    )
