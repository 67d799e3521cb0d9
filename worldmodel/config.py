"""Typed models of ``params.yaml``: one section per stage plus a shared ``base``.

Every field says what it does where it is declared; docs/params.md is generated from
these descriptions (``wm params-doc``), so it cannot go stale. All models forbid unknown
keys, and :func:`load_params` turns any validation problem into a :class:`ParamsError`
naming the file, the dotted key, the bad value and what is allowed, before a stage does
any work. Presets and the generated reference belong to the command line (``wm/``).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from worldmodel.data.splits import split_sizes
from worldmodel.models.sizes import DYNAMICS_SIZES, TOKENIZER_SIZES
from worldmodel.tasks import ALL_TASK_NAMES, default_action_repeat, default_camera, max_frames


class ParamsError(ValueError):
    """A params file that cannot be used; the message says which key and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class BaseParams(_Section):
    """Settings shared by every stage."""

    seed: int = Field(0, ge=0, description="Master seed; every random stream derives from it.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Torch device for training stages; `auto` picks CUDA when present."
    )
    torch_threads: int = Field(
        0, ge=0, description="Torch intra-op CPU threads; 0 keeps torch's default (all cores)."
    )


class PolicyParams(_Section):
    """Behaviour policy that chooses the actions recorded by `collect`."""

    kind: Literal["random", "ou", "held"] = Field(
        "ou",
        description=(
            "`random`: i.i.d. uniform actions (jitter). `ou`: Ornstein-Uhlenbeck noise, "
            "temporally correlated, clipped to the action bounds. `held`: a uniform action "
            "held for a random number of steps."
        ),
    )
    ou_theta: float = Field(0.15, gt=0, le=1, description="OU mean reversion per step (`ou`).")
    ou_sigma: float = Field(
        0.5, gt=0, description="OU noise scale per step, in units of half the action range (`ou`)."
    )
    hold_min: int = Field(1, ge=1, description="Shortest hold, in control steps (`held`).")
    hold_max: int = Field(10, ge=1, description="Longest hold, in control steps (`held`).")

    @field_validator("hold_max")
    @classmethod
    def _hold_order(cls, v: int, info: Any) -> int:
        lo = info.data.get("hold_min", 1)
        if v < lo:
            raise ValueError(f"must be >= hold_min ({lo})")
        return v


class TaskOverrides(_Section):
    """Settings of one task that replace its convention (and `collect`'s own value)."""

    action_repeat: int | None = Field(None, gt=0, description="Simulator steps per frame.")
    camera: int | None = Field(None, ge=0, description="Camera id.")


class TaskSettings(BaseModel):
    """What one task is recorded with, conventions and overrides resolved."""

    action_repeat: int
    camera: int


def _check_task_name(name: str, where: str = "") -> None:
    if name not in ALL_TASK_NAMES:
        close = difflib.get_close_matches(name, ALL_TASK_NAMES, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"{where}unknown task {name!r}: expected `domain-task` from dm_control's suite "
            f"(run `wm tasks` for the list) or synthetic-shapes{hint}"
        )


def _preset_name(name: str, presets: dict[str, Any]) -> str:
    """``name`` when it is one of a model's size ``presets``, else a clear error."""
    if name not in presets:
        raise ValueError(f"unknown size {name!r}; expected one of {', '.join(presets)}")
    return name


class CollectParams(_Section):
    """The `collect` stage: which tasks to record and how."""

    tasks: list[str] = Field(
        ["cartpole-swingup"],
        min_length=1,
        description=(
            "Tasks recorded into one dataset, each `domain-task` from dm_control's suite "
            "(`wm tasks` lists them) or `synthetic-shapes` (no simulator)."
        ),
    )
    episodes_per_task: int = Field(160, gt=0, description="Episodes recorded per task.")
    frames_per_episode: int = Field(
        120, ge=2, description="Frames per episode, the reset frame included."
    )
    action_repeat: int | None = Field(
        None,
        gt=0,
        description=(
            "Simulator steps per recorded frame (the action is repeated), for every task; "
            "null: each task's convention (8 cartpole, 4 reacher, cheetah and ball_in_cup, "
            "2 otherwise; `wm tasks`)."
        ),
    )
    image_size: int = Field(64, ge=8, le=1024, description="Square frame side, pixels.")
    camera: int | None = Field(
        None,
        ge=0,
        description=(
            "Camera id, for every task; null: each task's convention (cartpole 1: follows "
            "the cart; quadruped 2; else 0)."
        ),
    )
    per_task: dict[str, TaskOverrides] = Field(
        default_factory=dict,
        description=(
            "Per task name, settings that replace its convention and the values above, "
            "e.g. `{reacher-easy: {action_repeat: 2}}`."
        ),
    )
    shadows: bool = Field(
        False, description="Render shadows (about 6x slower at 64x64 on CPU rendering)."
    )
    reflections: bool = Field(False, description="Render floor reflections (slow, like shadows).")
    policy: PolicyParams = Field(default_factory=PolicyParams, description="Behaviour policy.")
    workers: int = Field(2, gt=0, description="Worker processes; the data do not depend on it.")
    val_fraction: float = Field(
        0.1,
        gt=0,
        lt=1,
        description=(
            "Fraction of each task's episodes held out for validation: periodic checks "
            "during training, the benchmark scripts, tuning."
        ),
    )
    test_fraction: float = Field(
        0.375,
        gt=0,
        lt=1,
        description=(
            "Fraction of each task's episodes held out for testing: `evaluate`'s headline "
            "numbers and nothing else."
        ),
    )

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str]) -> list[str]:
        for name in tasks:
            _check_task_name(name)
        if len(set(tasks)) != len(tasks):
            raise ValueError("tasks must not repeat")
        return tasks

    @field_validator("per_task")
    @classmethod
    def _known_overrides(cls, per_task: dict[str, TaskOverrides]) -> dict[str, TaskOverrides]:
        for name in per_task:
            _check_task_name(name, "`collect.per_task`: ")
        return per_task

    def settings(self, task: str) -> TaskSettings:
        """``task``'s action repeat and camera: its ``per_task`` entry, else the section's
        value, else the task's convention."""
        own = self.per_task.get(task, TaskOverrides())
        repeat = own.action_repeat or self.action_repeat or default_action_repeat(task)
        camera = next((c for c in (own.camera, self.camera) if c is not None), default_camera(task))
        return TaskSettings(action_repeat=repeat, camera=camera)

    @model_validator(mode="after")
    def _episodes_fit_the_tasks(self) -> CollectParams:
        for task in self.tasks:
            repeat = self.settings(task).action_repeat
            limit = max_frames(task, repeat)
            if limit is not None and self.frames_per_episode > limit:
                raise ValueError(
                    f"`collect.frames_per_episode` = {self.frames_per_episode}: {task} episodes "
                    f"hold at most {limit} frames at action_repeat {repeat}; lower one of them"
                )
        return self

    @model_validator(mode="after")
    def _every_split_has_episodes(self) -> CollectParams:
        n = self.episodes_per_task
        train, val, test = split_sizes(n, self.val_fraction, self.test_fraction)
        if train < 1:
            raise ValueError(
                f"`collect.val_fraction` {self.val_fraction} and `collect.test_fraction` "
                f"{self.test_fraction} of {n} episodes per task leave no training episode "
                f"({val} val + {test} test); lower them or raise `collect.episodes_per_task`"
            )
        return self


class TrainParams(_Section):
    """Optimisation settings of a training stage (the generic trainer, worldmodel/training/trainer.py)."""

    steps: int = Field(1000, gt=0, description="Optimisation steps.")
    batch_size: int = Field(32, gt=0, description="Samples per step, summed over all processes.")
    optimizer: Literal["adamw", "muon"] = Field(
        "muon",
        description="`adamw`, or `muon`: Muon for the transformer blocks' weight matrices, "
        "AdamW for the rest (worldmodel/training/optim.py).",
    )
    lr: float = Field(1e-3, gt=0, description="Peak learning rate (both optimisers).")
    weight_decay: float = Field(0.05, ge=0, description="Decoupled weight decay (both optimisers).")
    warmup_steps: int = Field(100, ge=0, description="Linear learning-rate warm-up steps.")
    min_lr_ratio: float = Field(
        0.1, ge=0, le=1, description="Cosine decay ends at this fraction of `lr`."
    )
    grad_clip: float = Field(1.0, gt=0, description="Gradient norm clipping threshold.")
    ema_decay: float = Field(
        0.0, ge=0, lt=1, description="EMA of the weights (0 = off); EMA weights are the ones saved."
    )
    checkpoint_every: int = Field(200, gt=0, description="Steps between resumable checkpoints.")
    log_every: int = Field(10, gt=0, description="Steps between curve rows / MLflow metrics.")
    hard_examples: int = Field(
        8, ge=0, description="Highest-loss training samples kept and logged as images (0 = off)."
    )


class TokenizerParams(_Section):
    """The `train_tokenizer` stage: masked-autoencoder video tokenizer."""

    size: str = Field(
        "tiny",
        description="Model size by name: "
        + ", ".join(f"`{n}`" for n in TOKENIZER_SIZES)
        + " (worldmodel/models/sizes.py).",
    )
    patch_size: int = Field(8, gt=0, description="Square patch side, pixels; divides the frame.")
    latent_tokens: int = Field(16, gt=0, description="Latent tokens per frame.")
    latent_dim: int = Field(16, gt=0, description="Bottleneck channels per latent token (tanh).")
    clip_frames: int = Field(
        1, gt=0, description="Frames per training clip; also the causal context used by `tokenize`."
    )
    mask_max: float = Field(
        0.3,
        ge=0,
        lt=1,
        description=(
            "MAE: each training frame drops a fraction p ~ U(0, mask_max) of its patches "
            "(replaced by a learned mask token); 0 trains a plain autoencoder. DreamerV4 "
            "uses 0.9."
        ),
    )
    mask_warmup_steps: int = Field(
        0,
        ge=0,
        description="Ramp mask_max linearly from 0 over these steps (guards against collapse).",
    )
    lpips_weight: float = Field(
        0.2, ge=0, description="Weight of the RMS-normalised LPIPS term (MSE has weight 1)."
    )
    lpips_net: Literal["alex", "vgg"] = Field("alex", description="LPIPS backbone.")
    hard_pixel_weight: float = Field(
        0.0,
        ge=0,
        description=(
            "Weight of an RMS-normalised term on each frame's worst-reconstructed pixels "
            "(the mean squared error of its `hard_pixel_fraction` largest errors); 0: off. "
            "Aims the tokenizer at small parts whole-frame MSE neglects (a thin arm)."
        ),
    )
    hard_pixel_fraction: float = Field(
        0.05,
        gt=0,
        le=1,
        description="Fraction of each frame's pixels the hard-pixel term averages.",
    )
    latent_norm: Literal["none", "channel", "motion"] = Field(
        "none",
        description=(
            "Affine map of each latent channel, fitted on train frames after training and "
            "stored with the tokenizer (encode applies it, decode undoes it), so the "
            "dynamics' noise meets latents of a known scale: `none` (the tanh output, "
            "std about 0.3), `channel` (zero mean, unit std per channel) or `motion` "
            "(zero mean, unit std of each channel's frame-to-frame change)."
        ),
    )
    eval_clips: int = Field(64, gt=0, description="Held-out clips for the final metrics.")

    @field_validator("size")
    @classmethod
    def _tokenizer_size(cls, v: str) -> str:
        return _preset_name(v, TOKENIZER_SIZES)

    train: TrainParams = Field(
        default_factory=lambda: TrainParams(steps=2000, batch_size=16, lr=3e-3, warmup_steps=30),
        description="Optimisation.",
    )


class TokenizeParams(_Section):
    """The `tokenize` stage: encode every frame to latents."""

    batch_size: int = Field(64, gt=0, description="Frames encoded per forward pass.")


class DynamicsParams(_Section):
    """The `train_dynamics` stage: shortcut-forcing dynamics on tokenizer latents."""

    size: str = Field(
        "tiny",
        description="Model size by name: "
        + ", ".join(f"`{n}`" for n in DYNAMICS_SIZES)
        + " (worldmodel/models/sizes.py).",
    )
    width: int | None = Field(
        None,
        gt=0,
        multiple_of=32,
        description=(
            "Transformer width, overriding the size preset's (null = the preset's; a multiple "
            "of 32 so that every preset's heads divide it)."
        ),
    )
    depth: int | None = Field(
        None,
        gt=0,
        description="Transformer layers, overriding the size preset's (null = the preset's).",
    )
    pack: int = Field(2, gt=0, description="Tokenizer latents packed into one dynamics token.")
    registers: int = Field(2, ge=0, description="Learned register tokens per frame.")
    k_max: int = Field(
        64, gt=0, description="Finest sampler resolution (power of two); d_min = 1/k_max."
    )
    time_every: int = Field(
        2,
        gt=0,
        description="Causal time attention every this many layers (space attention in all others).",
    )
    softcap: float = Field(50.0, ge=0, description="Attention logit soft-cap (0 = off).")
    predict: Literal["clean", "residual"] = Field(
        "clean",
        description=(
            "What the network outputs: `clean`, the clean latents of each frame; `residual`, "
            "their difference from the previous frame's input latents times a learned gain "
            "per signal level, so that a frame that does not change costs the network nothing."
        ),
    )
    loss_weight: Literal["ramp", "uniform"] = Field(
        "ramp",
        description=(
            "Weight of a frame's loss by its signal level: `ramp`, `0.9 tau + 0.1` (DreamerV4: "
            "a frame drawn from pure noise counts a tenth of a clean one); `uniform`, every "
            "level alike, so the prediction from noise, where only the past and the actions "
            "tell the next frame, counts as much as denoising a nearly clean one."
        ),
    )
    seq_len: int = Field(8, ge=2, description="Frames per short training window.")
    long_seq_len: int = Field(
        16, ge=2, description="Frames per long window; also the rollout's sliding window."
    )
    long_every: int = Field(
        8, ge=0, description="Every this-many-th batch uses long windows (0 = never)."
    )
    long_batch_size: int = Field(8, gt=0, description="Windows per long batch.")
    stride: int = Field(2, gt=0, description="Stride between the start frames of windows.")
    single_frame_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description=(
            "Fraction of training samples whose frames see no other frame (DreamerV4's "
            "single-frame samples; 0 = off)."
        ),
    )
    bootstrap_fraction: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Fraction of samples whose frames draw d > d_min (bootstrap loss).",
    )
    tau_ctx: float = Field(
        0.9,
        ge=0,
        le=1,
        description="Signal level of past frames in rollouts (1 = clean; 0.9 = 10% noise).",
    )
    eval_every: int = Field(
        100, gt=0, description="Steps between val rollout checks (a multiple of train.log_every)."
    )
    eval_windows: int = Field(16, gt=0, description="Val windows of the periodic rollout check.")
    eval_context: int = Field(4, gt=0, description="Context frames of the periodic rollout check.")
    eval_steps: int = Field(4, gt=0, description="Sampler steps K of the periodic rollout check.")
    train: TrainParams = Field(
        default_factory=lambda: TrainParams(steps=2000, batch_size=16, lr=3e-3, warmup_steps=50),
        description="Optimisation.",
    )

    @field_validator("size")
    @classmethod
    def _dynamics_size(cls, v: str) -> str:
        return _preset_name(v, DYNAMICS_SIZES)

    @field_validator("k_max")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError("must be a power of two (1, 2, 4, 8, ...)")
        return v

    @field_validator("tau_ctx")
    @classmethod
    def _trained_level(cls, v: float, info: Any) -> float:
        k = info.data.get("k_max", 64)
        if v > 1 - 1 / k + 1e-9:
            raise ValueError(
                f"must be at most 1 - 1/k_max = {1 - 1 / k:g}: training draws signal levels "
                f"on the grid 0, 1/k_max, ..., 1 - 1/k_max, so a context level above it "
                "would use a never-trained embedding"
            )
        return v

    @model_validator(mode="after")
    def _a_time_layer(self) -> DynamicsParams:
        if self.depth is not None and self.depth < self.time_every:
            raise ValueError(
                f"dynamics.depth ({self.depth}) must be >= dynamics.time_every "
                f"({self.time_every}): the model needs at least one time-attention layer"
            )
        return self

    @field_validator("long_seq_len")
    @classmethod
    def _long_not_shorter(cls, v: int, info: Any) -> int:
        if v < info.data.get("seq_len", 2):
            raise ValueError(f"must be >= seq_len ({info.data.get('seq_len')})")
        return v

    @field_validator("train")
    @classmethod
    def _eval_on_logged_steps(cls, v: TrainParams, info: Any) -> TrainParams:
        every = info.data.get("eval_every", 100)
        if every % v.log_every:
            raise ValueError(f"log_every ({v.log_every}) must divide dynamics.eval_every ({every})")
        return v


class EvaluateParams(_Section):
    """The `evaluate` stage: rollouts on held-out episodes against baselines."""

    context: int = Field(4, gt=0, description="True context frames C before each rollout.")
    horizon: int = Field(16, gt=0, description="Horizon H of the headline per-step metrics.")
    extended_horizon: int = Field(
        32, gt=0, description="Longer rollout (>= 2x the longest training window) also scored."
    )
    windows: int = Field(
        360,
        gt=0,
        description=(
            "Test windows of `context + horizon` frames per task for the headline numbers, "
            "spread evenly over the test episodes (an episode of T frames holds "
            "T // (context + horizon)); more windows narrow the intervals."
        ),
    )
    extended_windows: int = Field(
        32, gt=0, description="Test windows per task rolled out to `extended_horizon`."
    )
    steps: int = Field(4, gt=0, description="Sampler steps K of the headline rollouts.")
    sweep_horizon: int = Field(16, gt=0, description="Rollout length of the sampler sweep.")
    sweep_windows: int = Field(32, gt=0, description="Test windows of the sampler sweep.")
    sweep_at: list[int] = Field([1, 4, 16], description="Horizons whose PSNR the sweep reports.")
    gifs: int = Field(4, ge=0, description="Windows written as GIF and PNG strip.")
    batch_size: int = Field(64, gt=0, description="Windows rolled out (and decoded) together.")
    probe_windows: int = Field(
        120,
        ge=0,
        description=(
            "Test windows of the position probe (R² of each task's success positions from "
            "the tokenizer's latents and from the model's predictions at the `sweep_at` "
            "horizons; a ridge and an MLP fitted on train frames); 0 = no probe."
        ),
    )

    @field_validator("extended_horizon")
    @classmethod
    def _extended(cls, v: int, info: Any) -> int:
        if v < info.data.get("horizon", 1):
            raise ValueError(f"must be >= horizon ({info.data.get('horizon')})")
        return v


class PlanParams(_Section):
    """The `plan` stage: goal-reaching with the world model on the real simulator.

    The defaults follow the published protocol (DINO-WM, LeWM) where a CPU allows: goals
    25 decisions ahead, 50 decisions of budget, horizon 5, re-planning every 5; the
    GPU presets also take its 300 samples x 30 iterations.
    """

    goals: int = Field(20, gt=0, description="Goal pairs per task, drawn from test episodes only.")
    goal_offset: int = Field(
        25, gt=0, description="G: the goal is the frame this many decisions after the start."
    )
    budget: int = Field(
        50, gt=0, description="B: decisions the agent may take before the goal counts as missed."
    )
    context: int = Field(
        4, gt=0, description="Recorded frames up to the start that the agent sees (C)."
    )
    solver: Literal["cem", "mppi"] = Field(
        "cem",
        description=(
            "`cem`: refit to the cheapest `elites` candidates. `mppi`: weight every "
            "candidate by exp(-cost / temperature)."
        ),
    )
    horizon: int = Field(5, gt=0, description="H: decisions per planned action sequence.")
    replan_every: int = Field(
        5, gt=0, description="Actions carried out on the simulator before planning again."
    )
    samples: int = Field(48, ge=2, description="Candidate sequences per planner iteration.")
    iterations: int = Field(3, gt=0, description="Planner iterations per plan.")
    elites: int = Field(6, gt=0, description="Candidates CEM refits to (at most `samples`).")
    temperature: float = Field(
        0.5, gt=0, description="MPPI temperature, in units of the batch's cost spread."
    )
    steps: int = Field(
        1, gt=0, description="Sampler steps K per imagined frame (1: the conditional mean)."
    )
    cost: Literal["last", "mean"] = Field(
        "last",
        description=(
            "World-model cost: the distance (`plan.distance`) to the goal of the last planned "
            "frame (`last`) or averaged over the planned frames (`mean`)."
        ),
    )
    distance: Literal["latent", "temporal"] = Field(
        "temporal",
        description=(
            "How far a frame's latents are from the goal's: `temporal`, a learned estimate "
            "of how many decisions apart two frames are, fitted at the start of the stage on "
            "pairs of frames from the same train episode (time the only label); or "
            "`latent`, the mean squared distance between the latents."
        ),
    )
    distance_span: int = Field(
        60, gt=0, description="`temporal`: the largest gap, in decisions, of its training pairs."
    )
    distance_steps: int = Field(
        3000, gt=0, description="`temporal`: training steps (256 pairs each)."
    )
    oracle: bool = Field(
        True,
        description=(
            "Also run the oracle: the same planner with the real simulator as its model "
            "(its cost: `plan.oracle_cost`)."
        ),
    )
    oracle_cost: Literal["latent", "state"] = Field(
        "latent",
        description=(
            "The oracle's cost: `latent`, the world model's own cost (`plan.cost`, "
            "`plan.distance`) on the "
            "frames the simulator renders for each candidate, encoded by the tokenizer, so "
            "that only the dynamics' predictions differ from the world-model agent's (a render "
            "and an encoding per candidate; tokenizers with `clip_frames: 1`); or `state`, the "
            "positions' distance to the goal's in tolerances (physics only, fast): the "
            "planner's own ceiling, whatever the cost."
        ),
    )
    pictures: int = Field(3, ge=0, description="Goals per task drawn as labelled PNG strips.")

    @field_validator("elites")
    @classmethod
    def _elites_fit(cls, v: int, info: Any) -> int:
        n = info.data.get("samples", 64)
        if v > n:
            raise ValueError(f"must be at most `plan.samples` ({n})")
        return v

    @field_validator("replan_every")
    @classmethod
    def _within_horizon(cls, v: int, info: Any) -> int:
        h = info.data.get("horizon", 5)
        if v > h:
            raise ValueError(
                f"must be at most `plan.horizon` ({h}): only planned actions are acted"
            )
        return v


class Params(_Section):
    """The whole of ``params.yaml``."""

    base: BaseParams = Field(default_factory=BaseParams, description="Shared settings.")
    collect: CollectParams = Field(default_factory=CollectParams, description="`collect` stage.")
    tokenizer: TokenizerParams = Field(
        default_factory=TokenizerParams, description="`train_tokenizer` stage."
    )
    tokenize: TokenizeParams = Field(
        default_factory=TokenizeParams, description="`tokenize` stage."
    )
    dynamics: DynamicsParams = Field(
        default_factory=DynamicsParams, description="`train_dynamics` stage."
    )
    evaluate: EvaluateParams = Field(
        default_factory=EvaluateParams, description="`evaluate` stage."
    )
    plan: PlanParams = Field(default_factory=PlanParams, description="`plan` stage.")

    @model_validator(mode="after")
    def _windows_fit(self) -> Params:
        ev, dyn, tok, c = self.evaluate, self.dynamics, self.tokenizer, self.collect
        pl = self.plan
        if pl.context + pl.goal_offset > c.frames_per_episode:
            raise ValueError(
                f"`plan.context` + `plan.goal_offset` = {pl.context + pl.goal_offset} frames do "
                f"not fit in an episode of `collect.frames_per_episode` = {c.frames_per_episode}"
            )
        if c.image_size % tok.patch_size:
            raise ValueError(
                f"`tokenizer.patch_size` = {tok.patch_size} does not divide `collect.image_size`"
                f" = {c.image_size}; pick a divisor (e.g. 8 for 64 px, 7 for 84 px)"
            )
        if tok.latent_tokens % dyn.pack:
            raise ValueError(
                f"`dynamics.pack` = {dyn.pack} does not divide `tokenizer.latent_tokens` = "
                f"{tok.latent_tokens}: each dynamics token packs that many latents"
            )
        if ev.context + ev.extended_horizon > c.frames_per_episode:
            raise ValueError(
                f"`evaluate.context` + `evaluate.extended_horizon` = "
                f"{ev.context + ev.extended_horizon} frames do not fit in an episode of "
                f"`collect.frames_per_episode` = {c.frames_per_episode}"
            )
        if ev.extended_horizon < 2 * dyn.long_seq_len:
            raise ValueError(
                f"`evaluate.extended_horizon` = {ev.extended_horizon} must be >= 2 x "
                f"`dynamics.long_seq_len` ({2 * dyn.long_seq_len}): rollouts are checked past "
                "the longest training window"
            )
        return self


def _format_error(err: dict[str, Any], source: str, model: type[BaseModel]) -> str:
    key = ".".join(str(p) for p in err["loc"])
    msg = err["msg"]
    if not key:  # a rule across sections: the message names its keys
        return f"{source}: {msg.removeprefix('Value error, ')}"
    if err["type"] == "extra_forbidden":
        parent: Any = model
        for part in err["loc"][:-1]:
            if isinstance(part, int):
                continue
            field = parent.model_fields.get(part)
            ann = field.annotation if field else None
            parent = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
            if parent is None:
                break
        allowed = ", ".join(parent.model_fields) if parent is not None else "?"
        return f"{source}: unknown key `{key}`; allowed here: {allowed}"
    value = err.get("input")
    if isinstance(value, dict):  # a rule across the keys of a section: the message names them
        return f"{source}: {msg.removeprefix('Value error, ')}"
    return f"{source}: `{key}` = {value!r}: {msg}"


def parse_params(data: Any, source: str = "params") -> Params:
    """Validate a params mapping, raising :class:`ParamsError` with every problem listed."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        lines = [_format_error(e, source, Params) for e in exc.errors()]
        raise ParamsError("invalid params:\n  " + "\n  ".join(lines)) from None


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file, turning I/O and syntax problems into :class:`ParamsError`."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load and validate ``params.yaml``; fails before any work on a bad key or value."""
    return parse_params(read_yaml(path), source=str(path))


def flatten(params: BaseModel | dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested params to ``{"collect.policy.kind": "ou", ...}`` (lists as strings)."""
    data = params.model_dump() if isinstance(params, BaseModel) else params
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = ",".join(map(str, value))
        else:
            out[name] = value
    return out
