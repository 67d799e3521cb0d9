"""The tokenizer: block-causal masks, bottleneck, MAE masks, encoding, learning, no collapse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import tiny_params
from worldmodel.codec import encode_episode
from worldmodel.config import parse_params
from worldmodel.models.tokenizer import Tokenizer, TokenizerConfig, block_causal_attention
from worldmodel.training.mae_objective import (
    TokenizerBatch,
    TokenizerBatches,
    hard_pixel_error,
    loss_weights,
    mask_max_at,
    objective,
    random_keep,
    train_clip_frames,
)

CFG = TokenizerConfig(
    image_size=16,
    patch_size=4,
    latent_tokens=4,
    latent_dim=6,
    dim=32,
    heads=2,
    enc_depth=2,
    dec_depth=2,
)


def _model(seed: int = 0) -> Tokenizer:
    torch.manual_seed(seed)
    return Tokenizer(CFG).eval()


def test_mask_structure() -> None:
    t, p, n_lat = 3, 4, 2
    enc, dec = block_causal_attention(t, p, n_lat)
    per = p + n_lat
    frame = np.arange(t * per) // per
    patch = (np.arange(t * per) % per) < p
    for i in range(t * per):
        for j in range(t * per):
            if patch[i] and patch[j] and frame[i] != frame[j]:
                assert not enc[i, j] and not dec[i, j]  # patches never see other frames' patches
            if frame[j] > frame[i]:
                assert not enc[i, j] and not dec[i, j]  # nothing sees the future
            if patch[i] and not patch[j]:
                assert not enc[i, j]  # encoder patches see only patches
            if not patch[i] and patch[j]:
                assert not dec[i, j]  # decoder latents see only latents
    assert enc[per + p, 0] and dec[per, p]  # latents read past patches; queries read past latents


def test_future_frames_do_not_change_past_latents_or_reconstructions() -> None:
    m = _model()
    x = torch.rand(2, 3, 16, 16, 3)
    y = x.clone()
    y[:, 2] = torch.rand_like(y[:, 2])
    with torch.no_grad():
        zx, zy = m.encode(x), m.encode(y)
        assert torch.equal(zx[:, :2], zy[:, :2]) or torch.allclose(zx[:, :2], zy[:, :2], atol=1e-6)
        assert not torch.allclose(zx[:, 2], zy[:, 2])
        z2 = zx.clone()
        z2[:, 2] = -z2[:, 2]
        assert torch.allclose(m.decode(zx)[:, :2], m.decode(z2)[:, :2], atol=1e-6)


def test_patches_do_not_see_other_frames() -> None:
    """Frame 1's latents depend on frame 0 only through frame 0's latents' view of it."""
    m = _model()
    x = torch.rand(1, 2, 16, 16, 3)
    with torch.no_grad():
        single = m.encode(x[:, :1])
        both = m.encode(x)
    assert torch.allclose(single[:, 0], both[:, 0], atol=1e-6)


def test_bottleneck_is_bounded() -> None:
    z = _model().encode(torch.rand(4, 2, 16, 16, 3) * 10)
    assert z.shape == (4, 2, 4, 6)
    assert (z.abs() < 1).all()


def test_mask_fraction_statistics() -> None:
    keep = random_keep(np.random.default_rng(0), b=2000, t=2, n_patches=256, mask_max=0.9)
    dropped = 1 - keep.mean(axis=2)  # per frame
    assert abs(dropped.mean() - 0.45) < 0.01
    assert dropped.min() >= 0 and dropped.max() <= 0.9
    hist = np.histogram(dropped, bins=9, range=(0, 0.9))[0] / dropped.size
    assert np.all(np.abs(hist - 1 / 9) < 0.03)  # uniform ratios
    p = tiny_params()
    tok = p.tokenizer.model_copy(update={"mask_warmup_steps": 100, "mask_max": 0.9})
    assert mask_max_at(0, tok) == 0 and mask_max_at(50, tok) == pytest.approx(0.45)
    assert mask_max_at(500, tok) == 0.9


def test_encode_episode_matches_windows() -> None:
    m = _model()
    frames = (np.random.default_rng(0).random((7, 16, 16, 3)) * 255).astype(np.uint8)
    z = encode_episode(m, frames, clip_frames=3, device=torch.device("cpu"), batch=2)
    x = torch.from_numpy(frames).float() / 255
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(z[0]), m.encode(x[None, :1])[0, 0], atol=1e-5)
        assert torch.allclose(torch.from_numpy(z[1]), m.encode(x[None, :2])[0, 1], atol=1e-5)
        assert torch.allclose(torch.from_numpy(z[5]), m.encode(x[None, 3:6])[0, 2], atol=1e-5)


@pytest.mark.slow
def test_tiny_tokenizer_learns_and_does_not_collapse(synthetic_store: Path, tmp_path: Path) -> None:
    from stages.train_tokenizer import run

    data = tiny_params().model_dump()
    data["tokenizer"] = {
        "latent_tokens": 4,
        "latent_dim": 8,
        "eval_clips": 16,
        "train": {
            "steps": 400,
            "batch_size": 8,
            "lr": 2e-3,
            "warmup_steps": 10,
            "log_every": 1,
            "checkpoint_every": 1000,
        },
    }
    params = parse_params(data)
    res = run(
        params,
        episodes=synthetic_store,
        out_dir=tmp_path / "tok",
        metrics=tmp_path / "m.json",
        curve=tmp_path / "c.tsv",
        resume=tmp_path / "resume.pt",
        track=False,
    )
    curve = (tmp_path / "c.tsv").read_text().splitlines()
    header = curve[0].split("\t")
    mse = [float(r.split("\t")[header.index("loss/mse")]) for r in curve[1:]]
    assert np.mean(mse[-10:]) < 0.5 * mse[0]  # step 1 vs the last ten steps
    # a collapsed (mean-image) tokenizer scores ~0.001 here
    assert res["val"]["collapse_score"] > 0.2  # distinct inputs -> distinct reconstructions
    assert res["val"]["psnr"] > 15
    assert (tmp_path / "tok" / "model.pt").is_file() and (
        tmp_path / "tok" / "samples.png"
    ).is_file()
    assert not (tmp_path / "resume.pt").exists()  # removed once complete


def test_hard_pixel_term_is_the_worst_pixels_mean_and_off_by_default() -> None:
    err = torch.zeros(2, 1, 4, 4, 3)
    err[0, 0, 1, 2] = torch.tensor([1.0, 2.0, 3.0])  # one bad pixel in frame 0 (sum 6)
    err[1, 0, 0, 0, 0] = 2.0  # and in frame 1 (sum 2)
    assert hard_pixel_error(err, 1 / 16).item() == pytest.approx((6 + 2) / 2)
    assert hard_pixel_error(err, 2 / 16).item() == pytest.approx((6 / 2 + 2 / 2) / 2)
    assert hard_pixel_error(err, 1.0).item() == pytest.approx(err.sum(-1).mean().item())

    p = tiny_params().tokenizer
    model = _model()
    batch = TokenizerBatch(
        torch.randint(0, 255, (2, 1, 16, 16, 3), dtype=torch.uint8),
        torch.ones(2, 1, CFG.num_patches, dtype=bool),
    )
    assert p.hard_pixel_weight == 0 and set(objective(model, p, None)(batch)[0]) == {"mse"}
    on = p.model_copy(update={"hard_pixel_weight": 0.5})
    assert set(objective(model, on, None)(batch)[0]) == {"mse", "hard_pixels"}
    assert loss_weights(on)["hard_pixels"] == 0.5


def _inverse_dynamics_params(weight: float = 1.0, batch_size: int = 8):  # noqa: ANN202
    data = tiny_params().model_dump()
    data["tokenizer"]["inverse_dynamics_weight"] = weight
    data["tokenizer"]["train"]["batch_size"] = batch_size
    return parse_params(data)


def test_inverse_dynamics_batches_are_consecutive_triplets_with_the_action_into_the_last(
    synthetic_store: Path,
) -> None:
    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.data.windows import FrameClips

    params = _inverse_dynamics_params(batch_size=8)  # 8 // 3 = 2 triplets
    p = params.tokenizer
    assert train_clip_frames(p) == p.clip_frames + 2
    clips = FrameClips(synthetic_store, "train", train_clip_frames(p))
    n_patches = (clips.store.image_size // p.patch_size) ** 2
    make = TokenizerBatches(clips, params, n_patches)
    batch = make(step=3)
    assert batch.frames.shape[:2] == (6, p.clip_frames) and batch.keep.shape[0] == 6
    assert batch.actions is not None and batch.actions.shape == (2, clips.store.action_dim)
    store = EpisodeStore(synthetic_store)
    episodes = [store.read(int(e)) for e in store.episode_ids("train")]
    for i in range(2):
        triplet = batch.frames[3 * i : 3 * i + 3, -1].numpy()  # the clips' last frames
        found = [
            (ep, s)
            for ep in episodes
            for s in range(len(ep.frames) - 2)
            if np.array_equal(ep.frames[s : s + 3], triplet)
        ]
        assert found, "a triplet is not three consecutive frames of one episode"
        assert any(np.allclose(ep.actions[s + 2], batch.actions[i].numpy()) for ep, s in found), (
            "the target is not the action that led into the triplet's last frame"
        )
    # two processes each take half the triplets, together the single process's batch
    halves = [make(step=3, rank=r, world=2) for r in (0, 1)]
    assert torch.equal(torch.cat([h.frames for h in halves]), batch.frames)
    assert torch.equal(torch.cat([h.actions for h in halves]), batch.actions)


def test_inverse_dynamics_term_reaches_the_encoder_and_is_off_by_default() -> None:
    p = _inverse_dynamics_params().tokenizer
    assert tiny_params().tokenizer.inverse_dynamics_weight == 0
    assert (
        "inverse_dynamics"
        not in objective(_model(), tiny_params().tokenizer, None)(
            TokenizerBatch(
                torch.randint(0, 255, (3, 1, 16, 16, 3), dtype=torch.uint8),
                torch.ones(3, 1, CFG.num_patches, dtype=bool),
            )
        )[0]
    )
    model = _model().train()
    obj = objective(model, p, None, action_dim=2)
    batch = TokenizerBatch(
        torch.randint(0, 255, (6, 1, 16, 16, 3), dtype=torch.uint8),
        torch.ones(6, 1, CFG.num_patches, dtype=bool),
        torch.rand(2, 2) * 2 - 1,
    )
    terms, _ = obj(batch)
    assert set(terms) == {"mse", "inverse_dynamics"}
    assert loss_weights(p)["inverse_dynamics"] == 1.0
    terms["inverse_dynamics"].backward()
    assert model.patch_in.weight.grad is not None and model.patch_in.weight.grad.abs().sum() > 0
    assert model.patch_out.weight.grad is None  # the decoder is not in this term's path
    with pytest.raises(ValueError, match="triplets with actions"):
        obj(TokenizerBatch(batch.frames, batch.keep))
    with pytest.raises(ValueError, match="action_dim"):
        objective(model, p, None)


def test_inverse_dynamics_needs_a_triplet_per_batch() -> None:
    with pytest.raises(ValueError, match="inverse_dynamics_weight.*batch_size >= 3"):
        _inverse_dynamics_params(batch_size=2)
