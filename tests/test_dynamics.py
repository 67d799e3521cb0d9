"""Dynamics model and shortcut forcing. Signal level: tau = 1 is clean, tau = 0 pure noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldmodel.forcing import (
    LOSS_WEIGHTS,
    interpolate,
    ramp_weight,
    sample_tau_d,
    shortcut_loss,
    step_sizes,
)
from worldmodel.models.dynamics import Dynamics, DynamicsConfig
from worldmodel.sampler import rollout, sample_frame

CFG = DynamicsConfig(
    latent_tokens=4,
    latent_dim=3,
    action_dim=2,
    pack=2,
    registers=1,
    k_max=8,
    dim=32,
    heads=4,
    kv_heads=2,
    depth=4,
    time_every=2,
)


def _model(seed: int = 0) -> Dynamics:
    torch.manual_seed(seed)
    return Dynamics(CFG).eval()


def _inputs(b: int = 2, t: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, t, 4, 3, generator=g)
    tau = torch.rand(b, t, generator=g)
    d = torch.full((b, t), 0.25)
    a = torch.randn(b, t, 2, generator=g)
    return z, tau, d, a


def test_ramp_weight_and_interpolation_follow_the_signal_level_convention() -> None:
    assert ramp_weight(torch.tensor(1.0)) == pytest.approx(1.0)  # clean weighs most
    assert ramp_weight(torch.tensor(0.0)) == pytest.approx(0.1)
    z0, z1 = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    assert torch.equal(interpolate(z0, z1, torch.tensor([[1.0]])), z1)  # tau = 1 is clean
    assert torch.equal(interpolate(z0, z1, torch.tensor([[0.0]])), z0)  # tau = 0 is noise


def test_tau_d_grid_statistics() -> None:
    rng = np.random.default_rng(0)
    tau, d = sample_tau_d(rng, (20000, 4), 8)
    n = np.round(1 / d).astype(int)
    assert set(np.unique(n)) == {1, 2, 4, 8}
    counts = np.array([(n == k).mean() for k in (1, 2, 4, 8)])
    assert np.all(np.abs(counts - 0.25) < 0.02)  # n uniform over {1, 2, 4, 8}
    grid_index = tau / d
    assert np.allclose(grid_index, np.round(grid_index)) and (tau <= 1 - d + 1e-6).all()
    sel = n == 4  # tau uniform over {0, 1/4, 2/4, 3/4}
    vals, cnt = np.unique(tau[sel], return_counts=True)
    assert np.allclose(vals, [0, 0.25, 0.5, 0.75]) and np.all(np.abs(cnt / cnt.sum() - 0.25) < 0.03)
    _, d2 = sample_tau_d(rng, (100, 3), 8, bootstrap=np.zeros(100, bool))
    assert (d2 == 1 / 8).all()  # no bootstrap samples -> d_min only
    with pytest.raises(ValueError):
        step_sizes(6)


def _toy_f(z, tau, d, a):
    """An arbitrary but simple deterministic 'network' for golden-value tests."""
    return 0.5 * z + 0.3 * tau[..., None, None] - 0.2 * d[..., None, None] + 0.1 * a[..., :1, None]


def _golden_batch() -> dict[str, torch.Tensor]:
    """A two-frame batch: frame 0 gets the flow loss (d_min), frame 1 the bootstrap loss."""
    return {
        "z1": torch.tensor([[[[0.5, -1.0]], [[1.0, 0.0]]]]),  # (B=1, T=2, L=1, C=2)
        "z0": torch.tensor([[[[0.2, 0.4]], [[-0.6, 0.8]]]]),
        "tau": torch.tensor([[0.25, 0.5]]),
        "d": torch.tensor([[0.125, 0.5]]),
        "actions": torch.tensor([[[1.0, 0.0], [-1.0, 2.0]]]),
    }


def test_shortcut_loss_golden_values() -> None:
    batch = _golden_batch()
    z1, z0, a = batch["z1"], batch["z0"], batch["actions"]
    terms = shortcut_loss(_toy_f, **batch, k_max=8)

    # Straightforward recomputation with plain numpy, frame by frame (docs/forcing.md formulas).
    def f(z, t, dd, act):
        return 0.5 * z + 0.3 * t - 0.2 * dd + 0.1 * act[0]

    z1n, z0n, an = z1.numpy()[0, :, 0], z0.numpy()[0, :, 0], a.numpy()[0]
    zt0 = 0.75 * z0n[0] + 0.25 * z1n[0]
    flow = (0.9 * 0.25 + 0.1) * np.mean((f(zt0, 0.25, 0.125, an[0]) - z1n[0]) ** 2)
    zt1 = 0.5 * z0n[1] + 0.5 * z1n[1]
    b1 = (f(zt1, 0.5, 0.25, an[1]) - zt1) / (1 - 0.5)
    zmid = zt1 + b1 * 0.25
    b2 = (f(zmid, 0.75, 0.25, an[1]) - zmid) / (1 - 0.75)
    v_hat = (f(zt1, 0.5, 0.5, an[1]) - zt1) / (1 - 0.5)
    boot = (0.9 * 0.5 + 0.1) * (1 - 0.5) ** 2 * np.mean((v_hat - (b1 + b2) / 2) ** 2)
    assert terms.flow.item() == pytest.approx(flow, rel=1e-5)
    assert terms.bootstrap.item() == pytest.approx(boot, rel=1e-5)
    assert terms.total.item() == pytest.approx((flow + boot) / 2, rel=1e-5)  # mean over frames


def test_uniform_loss_weight_drops_the_ramp_from_both_losses() -> None:
    """``dynamics.loss_weight: uniform``: the golden values above without the ramp factor."""
    kw = dict(_golden_batch(), k_max=8)
    ramp = shortcut_loss(_toy_f, **kw)
    flat = shortcut_loss(_toy_f, **kw, weight=LOSS_WEIGHTS["uniform"])
    assert flat.flow.item() == pytest.approx(ramp.flow.item() / (0.9 * 0.25 + 0.1), rel=1e-6)
    assert flat.bootstrap.item() == pytest.approx(
        ramp.bootstrap.item() / (0.9 * 0.5 + 0.1), rel=1e-6
    )
    assert shortcut_loss(_toy_f, **kw, weight=LOSS_WEIGHTS["ramp"]).total.item() == pytest.approx(
        ramp.total.item()
    )


def test_the_objective_takes_its_loss_weight_from_the_params() -> None:
    from worldmodel.config import parse_params
    from worldmodel.training.forcing_objective import DynamicsObjective

    p = parse_params({"dynamics": {"loss_weight": "uniform"}}).dynamics
    assert DynamicsObjective(_model(), p.loss_weight).weight is LOSS_WEIGHTS["uniform"]
    assert DynamicsObjective(_model()).weight is LOSS_WEIGHTS["ramp"]  # the default
    with pytest.raises(Exception, match="loss_weight"):
        parse_params({"dynamics": {"loss_weight": "flat"}})


def test_bootstrap_target_has_no_gradient() -> None:
    """The two teacher half steps run without autograd: only the student pass is recorded."""
    m = _model()
    z, tau, d, a = _inputs()
    d = torch.full_like(d, 0.5)
    tau = torch.full_like(tau, 0.0)
    calls: list[tuple[bool, bool]] = []  # (grad enabled, output tracked by autograd)

    def f(*args, **kw):
        out = m(*args, **kw)
        calls.append((torch.is_grad_enabled(), out.requires_grad))
        return out

    res = shortcut_loss(f, z1=z, z0=torch.randn_like(z), tau=tau, d=d, actions=a, k_max=8)
    assert calls == [(True, True), (False, False), (False, False)]
    res.total.backward()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_causality_over_frames_and_actions() -> None:
    m = _model()
    z, tau, d, a = _inputs(t=6)
    with torch.no_grad():
        base = m(z, tau, d, a)
        z2, a2, tau2 = z.clone(), a.clone(), tau.clone()
        z2[:, 4:] += 3.0
        a2[:, 4:] -= 2.0
        tau2[:, 4:] = 0.1
        changed = m(z2, tau2, d, a2)
    assert torch.allclose(base[:, :4], changed[:, :4], atol=1e-5)
    assert not torch.allclose(base[:, 4:], changed[:, 4:])


def test_single_frame_samples_see_no_other_frame() -> None:
    m = _model()
    z, tau, d, a = _inputs(b=2, t=4)
    iso = torch.tensor([True, False])
    z2 = z.clone()
    z2[:, 0] += 1.0  # change frame 0 of both samples
    with torch.no_grad():
        out, out2 = m(z, tau, d, a, isolated=iso), m(z2, tau, d, a, isolated=iso)
        plain = m(z, tau, d, a)
    assert torch.allclose(out[0, 1:], out2[0, 1:], atol=1e-6)  # isolated: frames 1.. unchanged
    assert not torch.allclose(out[1, 1:], out2[1, 1:], atol=1e-4)  # causal: they change
    assert torch.allclose(out[1], plain[1], atol=1e-6)  # non-isolated rows as without the flag
    single = m(z[:1, 2:3], tau[:1, 2:3], d[:1, 2:3], a[:1, 2:3])
    assert torch.allclose(out[0, 2], single[0, 0], atol=1e-5)  # == a one-frame window


def test_action_changes_the_frame_it_leads_into() -> None:
    """actions[:, t] led into frame t (the store's convention): it moves frame t's prediction."""
    m = _model()
    z, tau, d, a = _inputs(t=5)
    with torch.no_grad():
        a2 = a.clone()
        a2[:, 2] += 1.0
        base, moved = m(z, tau, d, a), m(z, tau, d, a2)
    assert torch.allclose(base[:, :2], moved[:, :2], atol=1e-5)
    assert (base[:, 2] - moved[:, 2]).abs().max() > 1e-3


def test_perfect_denoiser_samples_exactly_for_any_k() -> None:
    target = torch.randn(2, 4, 3)

    def oracle(z, tau, d, a):
        out = z.clone()
        out[:, -1] = target
        return out

    ctx = torch.randn(2, 3, 4, 3)
    acts = torch.zeros(2, 4, 2)
    for k in (1, 2, 4, 8):
        z = sample_frame(
            oracle, context=ctx, context_tau=0.9, actions=acts, steps=k, noise=torch.randn(2, 4, 3)
        )
        assert torch.allclose(z, target, atol=1e-5)


def test_rollout_three_times_the_training_window_is_finite() -> None:
    m = _model()
    ctx = torch.randn(2, 4, 4, 3)
    acts = torch.randn(2, 4 + 48, 2)
    out = rollout(
        m, ctx, acts, horizon=48, steps=2, window=16, generator=torch.Generator().manual_seed(0)
    )
    assert out.shape == (2, 48, 4, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("softcap", "predict"), [(50.0, "clean"), (0.0, "clean"), (50.0, "residual")]
)
def test_kv_cached_step_equals_the_full_forward(softcap: float, predict: str) -> None:
    """KV cache: committing frames 0..T-2 then stepping frame T-1 == forward on all T."""
    from dataclasses import replace

    torch.manual_seed(0)
    m = Dynamics(replace(CFG, softcap=softcap, predict=predict)).eval()
    z, tau, d, a = _inputs(t=6)
    with torch.no_grad():
        full = m(z, tau, d, a)
        cache = m.new_kv_cache(window=6)
        for i in range(5):
            step = m.kv_cached_step(
                cache, z=z[:, i], tau=tau[:, i], d=d[:, i], action=a[:, i], commit=True
            )
            assert torch.allclose(step, full[:, i], atol=1e-5)
        last = m.kv_cached_step(
            cache, z=z[:, 5], tau=tau[:, 5], d=d[:, 5], action=a[:, 5], commit=False
        )
    assert torch.allclose(last, full[:, 5], atol=1e-5)
    assert cache.t == 5 and all(len(c) == 5 for c in cache.layers)  # not committed


@pytest.mark.parametrize("predict", ["clean", "residual"])
def test_cached_rollout_equals_recomputing_rollout_within_the_window(predict: str) -> None:
    from dataclasses import replace

    torch.manual_seed(0)
    m = Dynamics(replace(CFG, predict=predict)).eval()
    ctx, acts = torch.randn(2, 3, 4, 3), torch.randn(2, 3 + 5, 2)
    kw = dict(horizon=5, steps=4, tau_ctx=0.9, window=8, context_d=1 / 8)
    cached = rollout(m, ctx, acts, generator=torch.Generator().manual_seed(3), **kw)
    plain = rollout(m, ctx, acts, generator=torch.Generator().manual_seed(3), kv_cache=False, **kw)
    assert torch.allclose(cached, plain, atol=1e-4)


def test_teacher_forcing_sees_the_truth_and_matches_both_paths() -> None:
    """Given its own rollout as the truth, teacher forcing reproduces the rollout (same
    noise); given another truth it differs; cached and recomputing paths agree."""
    m = _model()
    ctx, acts = torch.randn(2, 3, 4, 3), torch.randn(2, 3 + 5, 2)
    kw = dict(horizon=5, steps=4, tau_ctx=0.9, window=8, context_d=1 / 8)

    def run(**extra):
        return rollout(m, ctx, acts, generator=torch.Generator().manual_seed(3), **kw, **extra)

    free = run()
    assert torch.allclose(run(truth=free), free, atol=1e-5)
    other = torch.randn_like(free)
    forced = run(truth=other)
    assert torch.allclose(forced[:, 0], free[:, 0], atol=1e-5)  # frame 1 sees no prediction
    assert not torch.allclose(forced[:, 1:], free[:, 1:], atol=1e-3)
    assert torch.allclose(run(truth=other, kv_cache=False), forced, atol=1e-4)


def test_residual_prediction_starts_from_the_previous_frame() -> None:
    """predict = residual: with the network's output zeroed, each frame's prediction is the
    previous frame's input times the gain at its signal level (the level itself at
    initialisation): clean in, the same latents out; the first frame and isolated samples
    start from zero. A tiled KV cache gives every copy the same residual base."""
    from dataclasses import replace

    torch.manual_seed(0)
    m = Dynamics(replace(CFG, predict="residual")).eval()
    torch.nn.init.zeros_(m.out.weight)
    torch.nn.init.zeros_(m.out.bias)
    z, tau, d, a = _inputs(t=4)
    tau[:, 1] = 1.0  # a clean frame 1: frame 2 predicts exactly it
    with torch.no_grad():
        out = m(z, tau, d, a)
        assert torch.equal(out[:, 0], torch.zeros_like(out[:, 0]))
        assert torch.allclose(out[:, 2], z[:, 1])
        assert torch.allclose(out[:, 3], tau[:, 2, None, None] * z[:, 2], atol=1e-6)
        iso = m(z, tau, d, a, isolated=torch.tensor([True, False]))
        assert torch.equal(iso[0], torch.zeros_like(iso[0])) and torch.equal(iso[1], out[1])
        cache = m.new_kv_cache(window=4)
        m.kv_cached_step(
            cache, z=z[:1, 1], tau=tau[:1, 1], d=d[:1, 1], action=a[:1, 1], commit=True
        )
        tiled = cache.repeated(3)
        nxt = m.kv_cached_step(
            tiled,
            z=z[:1, 2].repeat(3, 1, 1),
            tau=tau[:1, 2].repeat(3),
            d=d[:1, 2].repeat(3),
            action=a[:1, 2].repeat(3, 1),
            commit=False,
        )
    assert torch.allclose(nxt, z[:1, 1].expand(3, -1, -1))
    assert cache.last_z.shape[0] == 1  # the original is left as it is


def test_cached_rollout_keeps_a_bounded_window() -> None:
    m = _model()
    cache = m.new_kv_cache(window=4)
    z, tau, d, a = _inputs(t=1)
    for _ in range(10):
        m.kv_cached_step(cache, z=z[:, 0], tau=tau[:, 0], d=d[:, 0], action=a[:, 0], commit=True)
    assert cache.t == 10 and all(len(c) == 3 for c in cache.layers)


@pytest.mark.slow
def test_toy_problem_few_steps_match_many_steps() -> None:
    """Trained to convergence on a toy conditional problem, K=4 is within 1 dB of K=K_max
    and quality does not fall as K grows (the velocity is recomputed from the current z)."""
    from worldmodel.training.forcing_objective import DynamicsBatch, DynamicsObjective

    torch.manual_seed(0)
    cfg = DynamicsConfig(
        latent_tokens=4,
        latent_dim=2,
        action_dim=2,
        pack=1,
        registers=1,
        k_max=16,
        dim=64,
        heads=4,
        kv_heads=2,
        depth=2,
        time_every=2,
    )
    model = Dynamics(cfg)
    obj = DynamicsObjective(model)
    proj = torch.randn(2, 8)

    def data(n: int, g: torch.Generator):
        a = torch.rand(n, 1, 2, generator=g) * 2 - 1
        z1 = torch.tanh(a @ proj).view(n, 1, 4, 2)  # the frame is a function of its action
        return z1, a

    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    rng = np.random.default_rng(0)
    g = torch.Generator().manual_seed(0)
    for _ in range(1000):
        z1, a = data(64, g)
        tau, d = sample_tau_d(rng, (64, 1), 16, rng.random(64) < 0.5)
        b = DynamicsBatch(
            z1,
            z0=torch.randn(z1.shape, generator=g),
            tau=torch.from_numpy(tau),
            d=torch.from_numpy(d),
            actions=a,
            isolated=torch.zeros(64, dtype=torch.bool),
        )
        terms, _ = obj(b)
        loss = sum(terms.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    z1, a = data(256, torch.Generator().manual_seed(1))
    noise = torch.randn(z1[:, 0].shape, generator=torch.Generator().manual_seed(2))
    psnr = {}
    for k in (1, 2, 4, 8, 16):
        z = sample_frame(model, context=z1[:, :0], context_tau=0.9, actions=a, steps=k, noise=noise)
        mse = (z - z1[:, 0]).pow(2).mean().item()
        psnr[k] = 10 * np.log10(4 / mse)  # latents span [-1, 1]
    assert psnr[4] >= psnr[16] - 1.0, psnr
    assert min(psnr[k] for k in (4, 8, 16)) >= psnr[2] - 0.5, psnr
    assert psnr[16] > 20, psnr
