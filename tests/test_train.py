"""The generic trainer: resume equivalence, NaN guard, hard examples, DDP, LPIPS-missing path."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import REPO
from worldmodel.checkpoints import ModelMeta
from worldmodel.config import TrainParams
from worldmodel.training.trainer import (
    HardExamples,
    LossNormalizer,
    Trainer,
    TrainingDiverged,
    lr_at,
)


@dataclass
class ToyBatch:
    x: torch.Tensor
    y: torch.Tensor

    def to(self, device: torch.device) -> ToyBatch:
        return ToyBatch(self.x.to(device), self.y.to(device))

    def preview(self) -> torch.Tensor:
        return (self.x[:, :3, None, None].expand(-1, 3, 2, 2).permute(0, 2, 3, 1) * 50).byte()


class ToyBlock(nn.Module):
    """A transformer block over the 16 features seen as 4 tokens of 4."""

    def __init__(self) -> None:
        super().__init__()
        from worldmodel.models.blocks import Block

        self.block = Block(4, heads=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x.view(-1, 4, 4)).reshape(-1, 16)


class ToyObjective(nn.Module):
    """Regression with two loss terms of very different scales."""

    def __init__(self, nan_at: int | None = None, block: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        # with ``block``: a transformer block in the middle, whose matrices Muon takes
        mid = ToyBlock() if block else nn.Tanh()
        self.model = nn.Sequential(nn.Linear(4, 16), mid, nn.Linear(16, 2))
        self.nan_at, self.calls = nan_at, 0

    def forward(self, b: ToyBatch):
        self.calls += 1
        out = self.model(b.x)
        err = (out - b.y).pow(2)
        terms = {"a": err[:, 0].mean(), "b": 100 * err[:, 1].mean()}
        if self.nan_at is not None and self.calls > self.nan_at:
            terms["b"] = terms["b"] * float("nan")
        return terms, {"per_sample": err.mean(1).detach()}


def toy_batches(step: int, rank: int = 0, world: int = 1) -> ToyBatch:
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(8, 4, generator=g)
    y = torch.stack([x.sum(1), (x[:, 0] * x[:, 1])], 1)
    n = 8 // world
    return ToyBatch(x[rank * n : (rank + 1) * n], y[rank * n : (rank + 1) * n])


CFG = TrainParams(
    optimizer="adamw",
    steps=40,
    batch_size=8,
    lr=1e-2,
    warmup_steps=5,
    checkpoint_every=10,
    log_every=5,
    ema_decay=0.9,
    hard_examples=3,
)


def _trainer(tmp_path: Path, cfg: TrainParams = CFG, **kw) -> Trainer:
    return Trainer(
        ToyObjective(**kw),
        make_batch=toy_batches,
        cfg=cfg,
        ckpt_path=tmp_path / "ck.pt",
        meta=ModelMeta("toy", {}, fingerprint="x"),
        device=torch.device("cpu"),
    )


def test_resume_matches_uninterrupted(tmp_path: Path) -> None:
    full = _trainer(tmp_path / "a")
    full.fit()
    first = _trainer(tmp_path / "b")
    first.fit(stop_at=25)  # "killed" at step 25, after the step-20 checkpoint
    resumed = _trainer(tmp_path / "b")
    assert resumed.try_resume() and resumed.step == 20
    resumed.fit()
    for p, q in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(full.ema.parameters(), resumed.ema.parameters(), strict=True):
        assert torch.equal(p, q)
    assert [r["step"] for r in resumed.curve] == [r["step"] for r in full.curve]


def test_resume_ignores_other_fingerprint(tmp_path: Path) -> None:
    t = _trainer(tmp_path)
    t.fit()
    other = Trainer(
        ToyObjective(),
        make_batch=toy_batches,
        cfg=CFG,
        ckpt_path=tmp_path / "ck.pt",
        meta=ModelMeta("toy", {}, fingerprint="y"),
        device=torch.device("cpu"),
    )
    assert not other.try_resume() and other.step == 0


def test_training_reduces_both_terms(tmp_path: Path) -> None:
    t = _trainer(tmp_path)
    t.fit()
    first, last = t.curve[0], t.curve[-1]
    assert last["loss/a"] < first["loss/a"] and last["loss/b"] < first["loss/b"]


MUON = CFG.model_copy(update={"optimizer": "muon"})


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest(tmp_path: Path) -> None:
    from worldmodel.training.optim import Optimizers

    t = _trainer(tmp_path, cfg=MUON, block=True)
    assert isinstance(t.opt, Optimizers)
    muon = {id(p) for g in t.opt.parts["muon"].param_groups for p in g["params"]}
    adamw = {id(p) for g in t.opt.parts["adamw"].param_groups for p in g["params"]}
    block = t.model[1].block
    matrices = {id(m.weight) for m in block.modules() if isinstance(m, nn.Linear)}
    assert muon == matrices and len(matrices) == 5  # q, kv, out, w13, w2
    assert not muon & adamw and muon | adamw == {id(p) for p in t.model.parameters()}
    for p in (t.model[0].weight, t.model[2].weight, block.norm1.weight):  # in, out, norm
        assert id(p) in adamw


def test_muon_trains_and_resumes_exactly(tmp_path: Path) -> None:
    full = _trainer(tmp_path / "a", cfg=MUON, block=True)
    full.fit()
    first, last = full.curve[0], full.curve[-1]
    assert last["loss/a"] < first["loss/a"] and last["loss/b"] < first["loss/b"]
    killed = _trainer(tmp_path / "b", cfg=MUON, block=True)
    killed.fit(stop_at=25)
    resumed = _trainer(tmp_path / "b", cfg=MUON, block=True)
    assert resumed.try_resume() and resumed.step == 20
    resumed.fit()
    for p, q in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)
    adam = _trainer(tmp_path / "c", block=True)
    adam.fit()
    assert not torch.equal(adam.model[1].block.attn.q.weight, full.model[1].block.attn.q.weight)


def test_nan_guard_names_step_and_term_and_keeps_checkpoint(tmp_path: Path) -> None:
    t = _trainer(tmp_path, nan_at=25)
    with pytest.raises(TrainingDiverged, match=r"step 25: loss term `b` is nan.*step 20"):
        t.fit()
    state = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert state["step"] == 20


def test_hard_examples_keep_top_k() -> None:
    h = HardExamples(3)
    h.add(torch.tensor([1.0, 5.0, 2.0]), torch.zeros(3, 2, 2, 3, dtype=torch.uint8), step=0)
    h.add(torch.tensor([4.0, 0.5]), torch.zeros(2, 2, 2, 3, dtype=torch.uint8), step=1)
    assert [loss for loss, _, _ in h.ranked()] == [5.0, 4.0, 2.0]
    assert [s for _, s, _ in h.ranked()] == [0, 1, 0]


def test_hard_examples_are_those_of_the_last_checkpoint_window(tmp_path: Path) -> None:
    """Each checkpoint sees the hardest samples of its own window of steps."""
    seen: list[list[int]] = []
    t = _trainer(tmp_path)
    t.on_checkpoint = lambda tr: seen.append([s for _, s, _ in tr.hard.ranked()])
    t.fit()
    assert len(seen) == 4  # checkpoint_every 10, 40 steps
    for i, steps in enumerate(seen):
        assert steps and all(10 * i <= s < 10 * (i + 1) for s in steps), seen


def test_loss_normaliser_balances_scales() -> None:
    norm = LossNormalizer(decay=0.9)
    for _ in range(50):
        total = norm({"small": torch.tensor(0.01), "big": torch.tensor(100.0)}, {})
    assert total.item() == pytest.approx(2.0, rel=1e-3)


def test_lr_schedule() -> None:
    cfg = TrainParams(steps=100, batch_size=1, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(100, cfg) == pytest.approx(0.1)
    assert lr_at(55, cfg) == pytest.approx(0.55)


DDP_SCRIPT = r"""
import sys, torch
sys.path.insert(0, {repo!r})
from tests.test_train import ToyObjective, toy_batches, CFG
from worldmodel.checkpoints import ModelMeta
from worldmodel.runtime import init_distributed
from worldmodel.training.trainer import Trainer
init_distributed(torch.device("cpu"))
t = Trainer(ToyObjective(), toy_batches, CFG, None, ModelMeta("toy", {{}}), torch.device("cpu"))
t.fit()
if t.rank == 0:
    torch.save(t.model.state_dict(), {out!r})
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path: Path) -> None:
    single = Trainer(
        ToyObjective(),
        make_batch=toy_batches,
        cfg=CFG,
        ckpt_path=None,
        meta=ModelMeta("toy", {}),
        device=torch.device("cpu"),
    )
    single.fit()
    script = tmp_path / "ddp.py"
    out = tmp_path / "ddp.pt"
    script.write_text(DDP_SCRIPT.format(repo=str(REPO), out=str(out)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).parent / "torchrun"
    res = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", str(_free_port()), str(script)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    ddp = torch.load(out)
    for name, p in single.model.state_dict().items():
        assert torch.allclose(p, ddp[name], atol=1e-5), name


def test_lpips_unavailable_is_loud_and_null(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from worldmodel import metrics

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("WM_LPIPS_NO_DOWNLOAD", "1")
    metrics.lpips_available.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            assert metrics.load_lpips("alex") is None
    finally:
        metrics.lpips_available.cache_clear()
    text = caplog.text
    assert "LPIPS UNAVAILABLE" in text and "alexnet-owt-7be5be79.pth" in text
    assert str(tmp_path / "hub" / "checkpoints") in text


@pytest.mark.skipif(
    not __import__("worldmodel.metrics", fromlist=["x"]).backbone_path("alex").is_file(),
    reason="LPIPS backbone weights not in the torch hub cache (offline machine)",
)
def test_real_lpips_when_weights_present() -> None:
    from worldmodel.metrics import load_lpips

    lp = load_lpips("alex")
    x = torch.rand(2, 16, 16, 3)
    assert lp(x, x).abs().max() < 1e-6 and (lp(x, torch.rand_like(x)) > 0).all()


def test_muon_step_is_torch_muons_up_to_its_bfloat16() -> None:
    from worldmodel.training.optim import Muon, orthogonalize

    g = torch.Generator().manual_seed(0)
    w0 = [torch.randn(24, 8, generator=g), torch.randn(8, 8, generator=g)]
    grads = [torch.randn(w.shape, generator=g) for w in w0]
    ours = [nn.Parameter(w.clone()) for w in w0]
    ref = [nn.Parameter(w.clone()) for w in w0]
    for p, q, gr in zip(ours, ref, grads, strict=True):
        p.grad, q.grad = gr.clone(), gr.clone()
    Muon(ours, lr=0.01, weight_decay=0.1).step()
    torch.optim.Muon(ref, lr=0.01, weight_decay=0.1, adjust_lr_fn="match_rms_adamw").step()
    for p, q, w in zip(ours, ref, w0, strict=True):
        step, ref_step = p.detach() - w, q.detach() - w
        assert (step - ref_step).norm() < 0.02 * ref_step.norm()
    # orthogonalised: every singular value near 1, whatever the input's scale
    s = torch.linalg.svdvals(orthogonalize(100 * torch.randn(3, 16, 40, generator=g)))
    assert s.min() > 0.6 and s.max() < 1.3
