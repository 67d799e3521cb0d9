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
    calibrate_latent_norm,
    hard_pixel_error,
    loss_weights,
    mask_max_at,
    objective,
    random_keep,
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


def test_latent_map_is_undone_by_decode() -> None:
    """With a fitted map, encode gives ``(tanh - shift) / scale`` and decode undoes it, so
    reconstructions are those of the same weights without a map."""
    from dataclasses import replace

    plain = _model()
    mapped = Tokenizer(replace(CFG, latent_norm="channel")).eval()
    state = plain.state_dict()
    state.update(
        {"latent_shift": torch.linspace(-0.5, 0.5, 6), "latent_scale": torch.linspace(0.2, 0.4, 6)}
    )
    mapped.load_state_dict(state)
    x = torch.rand(2, 2, 16, 16, 3)
    with torch.no_grad():
        raw, z = plain.encode(x), mapped.encode(x)
        assert torch.allclose(z, (raw - mapped.latent_shift) / mapped.latent_scale, atol=1e-5)
        assert not torch.allclose(z, raw, atol=1e-2)
        assert torch.allclose(mapped.decode(z), plain.decode(raw), atol=1e-5)
    assert "latent_shift" not in plain.state_dict()  # none: no buffers, older files load
    with pytest.raises(ValueError, match="latent_norm"):
        Tokenizer(replace(CFG, latent_norm="std"))


@pytest.mark.parametrize("kind", ["channel", "motion"])
def test_calibrated_latents_have_unit_scale(synthetic_store: Path, kind: str) -> None:
    """Fitted on train episodes, the map centres every channel and gives it unit standard
    deviation (``channel``) or a unit standard deviation of its frame-to-frame change
    (``motion``)."""
    from dataclasses import replace

    from worldmodel.data.windows import FrameClips

    clips = FrameClips(synthetic_store, "train", 1)
    cfg = replace(CFG, image_size=clips.store.image_size, patch_size=8, latent_norm=kind)
    torch.manual_seed(0)
    model = Tokenizer(cfg).eval()
    fitted = calibrate_latent_norm(model, clips, torch.device("cpu"))
    assert len(fitted["latent_scale"]) == cfg.latent_dim
    zs = [
        torch.from_numpy(
            encode_episode(model, clips.store.read(int(e)).frames, 1, torch.device("cpu"))
        )
        for e in clips.episodes
    ]
    flat = torch.cat([z.reshape(-1, cfg.latent_dim) for z in zs])
    assert flat.mean(0).abs().max() < 1e-3
    if kind == "channel":
        spread = flat.std(0)
    else:
        spread = torch.cat([(z[1:] - z[:-1]).reshape(-1, cfg.latent_dim) for z in zs]).std(0)
    assert torch.allclose(spread, torch.ones(cfg.latent_dim), atol=1e-3)
    # a refit starts from the identity: the same values again
    refit = calibrate_latent_norm(model, clips, torch.device("cpu"))
    assert refit["latent_scale"] == pytest.approx(fitted["latent_scale"], rel=1e-5)
    assert calibrate_latent_norm(_model(), clips, torch.device("cpu")) == {}  # none: no-op


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
