"""Trainers: teacher forcing, scheduled sampling and Professor Forcing on one sequence generator.

Professor Forcing (Lamb, Goyal, Zhang, Zhang, Courville, Bengio, NIPS 2016), one step on a
minibatch x:

1. teacher-forced pass B_tf = G(x) and NLL; free-running pass B_free = G's own draws at
   temperature 1 for ``free_steps`` steps (may exceed the training length), the draws held
   fixed and the gradient kept through the hidden states;
2. both behaviours cut into non-overlapping ``segment``-step pieces;
3. D minimises ``C_d = -log D(B_tf) - log(1 - D(B_free))`` on *detached* behaviours
   (label 1 = teacher-forced). Its accuracy is averaged over ranks and smoothed by an EMA;
   D's update is skipped (params, Adam moments and step count untouched) when the EMA
   exceeds ``gate_d`` (paper: 99%);
4. G minimises ``NLL + C_f`` with ``C_f = -log D(B_free)`` (D frozen: D's parameters take no
   gradient from G's loss; the teacher-forced behaviour does not enter C_f), optionally
   ``+ C_t = -log(1 - D(B_tf))``; the adversarial terms reach G only while the EMA exceeds
   ``gate_g`` (paper: 75%). NLL is the *whole-sequence* NLL (thesis Eq. 2.2; the authors'
   code sums it over time), so against the per-token NLL the loss is
   ``NLL/token + (C_f + C_t) / L`` (``weighting="sequence"``, the default);
   ``weighting="token"`` adds C_f to the per-token NLL (L times the thesis's weight).

Diagnostics (issue 23), in every metrics row: ``grad_ratio`` = |w grad C_f| / |grad NLL| (w
the weight C_f gets beside the per-token NLL, whether or not the gate lets it through: the
pressure the gate holds) and ``grad_cosine`` between the two, measured on the first step of
each ``log_every`` window (two gradients instead of one: not every step) and held through
it (every step's under the cap, which needs them anyway); ``d_accuracy``, the gates, and ``g_gate_ever_open``. A run whose D->G gate never opened
was teacher forcing, and its last step says so. ``adversarial_cap`` (a named option beyond
the thesis) scales the adversarial gradient down to at most ``cap`` times the NLL's.

Both gates are device tensors, so a step never waits for the host: a closed D->G gate
selects a zero (``torch.where``, whose gradient to the closed branch is exactly zero) and a
closed D gate is :meth:`gm.trainer.Trainer.optimizer_step`'s ``enabled`` (fused Adam's
``found_inf`` skip, or a where-based restore).

The generator and the discriminator are registered components (``--set generator=NAME``,
``discriminator=NAME``; ``gm list-components`` shows them), obtained through
:func:`gm.plugins.component` and built by their ``build`` classmethods; the trainers use
only the behaviour contract (:class:`gm.trainer.Behaviour`, ``nll``, ``head``,
``hidden_size``, ``scheduled``; ``embedding`` for ``behaviour=embeddings``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from gm import distributed, fastpath, plugins
from gm.config import Range, TrainConfig
from gm.data import DataInfo, Dataset
from gm.errors import GMError
from gm.trainer import Behaviour, SequenceGenerator, Trainer
from gm_professor_forcing import sampling


# --- configs and options ------------------------------------------------------------------
@dataclasses.dataclass
class SequenceConfig(TrainConfig):
    """The generator and its optimiser: a 1 x 1024 GRU (the thesis's char-PTB size) but Adam
    1e-3 (the thesis: 1e-4); the ``pf-*`` recipes (recipes.py) carry the thesis's settings."""

    steps: int = 10_000
    batch_size: int = 32
    lr: float = 1e-3  # Adam, the generator
    generator: str = "gru"  # a registered sequence generator: gru, transformer (gm list-components)
    hidden: int = 1024  # GRU state width; the transformer's model width
    layers: int = 1
    embed: int = 128  # token embedding width (GRU; the transformer embeds at its width)
    output: Literal["auto", "categorical", "mixture", "bernoulli", "gaussian"] = "auto"
    components: int = 20  # mixture components (pen strokes)
    # the transformer generator: attention heads, positions, the longest sequence it runs
    # (training, sampling, the study; 0: 16 training lengths)
    heads: int = 4
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"
    max_len: int = 0
    grad_clip: float = 1.0  # gradient-norm clipping per optimiser (0: off)
    # fast paths (same results to float tolerance; "auto": gm.fastpath's "fused_rnn" row,
    # on CPU): one-layer token GRUs only
    fused_free_running: fastpath.Switch = "auto"  # free run / scheduled sampling, one node
    fused_teacher_forced: fastpath.Switch = "auto"  # hand-written loop, not nn.GRU

    BOUNDS: ClassVar[dict[str, Range]] = {"heads": Range(1), "max_len": Range(0)}


@dataclasses.dataclass
class ScheduledSamplingConfig(SequenceConfig):
    """Bengio et al. (2015): eps_i, the probability of feeding the true token at update i,
    decays ``linear`` (max(min, k - c i)), ``exponential`` (k^i) or ``inverse-sigmoid``
    (k / (k + exp(i / k))). ``decay_k`` / ``decay_c`` = 0 choose constants that bring
    eps down to 0.5 at the end of training (``steps``), so the model is never trained mostly
    on its own draws (Huszar 2015: that objective is inconsistent)."""

    decay: Literal["linear", "exponential", "inverse-sigmoid"] = "inverse-sigmoid"
    decay_k: float = 0.0
    decay_c: float = 0.0
    min_true: float = 0.0  # floor of eps


@dataclasses.dataclass
class ProfessorForcingConfig(SequenceConfig):
    """D defaults to 512 units (the thesis's char-PTB D: 2048, recipe ``pf-char-ptb``)."""

    discriminator: str = "bigru"  # a registered discriminator (gm list-components)
    d_hidden: int = 512  # each direction of the discriminator's GRU
    d_mlp: int = 512
    d_layers: int = 1
    d_lr: float = 1e-4  # Adam, the discriminator (authors' code: 1e-4, beta1 0.5)
    d_beta1: float = 0.5
    # what D sees per step: "both" = hidden states and pre-softmax outputs (the thesis's
    # "hiddens and outputs"); "embeddings" = hidden states and the embedding of the token
    # emitted at that step (char-PTB: "hidden states and character level embeddings")
    behaviour: Literal["hidden", "outputs", "both", "embeddings"] = "both"
    free_steps: int = 0  # free-running length (0: the training length)
    segment: int = 0  # D's segment length (0: the training length, or free_steps if shorter)
    adversarial_weight: float = 1.0
    # "sequence": NLL summed over the L steps + C_f (thesis), i.e. C_f / L beside the
    # per-token NLL; "token": C_f added to the per-token mean NLL (L times heavier)
    weighting: Literal["sequence", "token"] = "sequence"
    teacher_term: bool = False  # add C_t = -log(1 - D(B_tf)) to G's loss
    gate_g: float = 0.75  # D -> G gradient only when D's smoothed accuracy exceeds this
    gate_d: float = 0.99  # D's update skipped when its smoothed accuracy exceeds this
    gate_momentum: float = 0.9  # EMA momentum of the accuracy (0: this batch's accuracy)
    # beyond the thesis (issue 23): the adversarial gradient's norm at most this many times
    # the NLL gradient's, per step (0: off, the thesis). C_f's gradient otherwise grows
    # with D's confidence until it outweighs and opposes the likelihood's.
    adversarial_cap: float = 0.0
    # fast paths: D's GRU as fused.GRULayer ("auto": on CPU); a closed D->G gate skips the
    # adversarial graph it would zero, read on the host ("auto": on CPU, where reading a
    # tensor is no device sync; elsewhere the gate stays a device tensor in torch.where)
    fused_discriminator: fastpath.Switch = "auto"
    skip_closed_gates: fastpath.Switch = "auto"


@dataclasses.dataclass
class SampleOptions:
    """``gm sample RUN --steps L --temperature T [--compile S] [--cuda-graph S]``; steps 0
    means 4x the training length. ``compile`` / ``cuda_graph``: the sampling fast path
    (sampling.py; :data:`gm.fastpath.Switch`, ``"auto"``: on CUDA); the same draws as the
    eager loop for a seed."""

    steps: int = 0
    temperature: float = 1.0
    compile: fastpath.Switch = "auto"
    cuda_graph: fastpath.Switch = "auto"


@dataclasses.dataclass
class EvaluateOptions:
    """``gm evaluate RUN [--carry-state] [--horizon H] [--plot F.png] ...``"""

    batch_size: int = 256
    carry_state: bool = False  # rows are consecutive windows of one stream: carry the state
    n: int = 256  # sequences in the hidden-state study (half reference, half query)
    horizon: int = 0  # free-running steps of the study (0: 4x the training length)
    temperature: float = 1.0
    points: int = 4096  # at most this many states per cloud
    plot: str = ""  # write a 2-D projection of the teacher-forced and free-running clouds
    # the drift check: free runs' statistics within L and at steps H - L .. H (0: H = 16 L)
    drift_runs: int = 128
    drift_horizon: int = 0


NEVER_OPENED = (
    "gm: professor forcing never opened its gate (D's smoothed accuracy never exceeded "
    "gate_g = {gate:g}): this run was teacher forcing."
)


# --- building blocks ---------------------------------------------------------------------


def build_generator(config: SequenceConfig, info: DataInfo) -> Any:
    """The registered generator ``config.generator``, built for this data: an ``nn.Module``
    with :class:`gm.trainer.SequenceGenerator`'s passes (and whatever else its class has)."""
    if info.modality not in ("sequence", "strokes"):
        raise GMError(
            f"sequence models train on sequence or strokes data; {info.name!r} is "
            f"{info.modality} data."
        )
    return plugins.component("sequence_generators", config.generator).build(config, info)


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Build graph through ``module`` without making its parameters require gradients."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, f in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(f)


def behaviour_widths(generator: SequenceGenerator, device: torch.device) -> tuple[int, int]:
    """(H, O) of a generator's behaviour, read off a one-step free run: any registered
    generator sizes the discriminator, not only those with ``hidden_size`` and ``head``.
    The run's draws come from a forked generator state, so training's stream is unchanged."""
    forks = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forks), torch.no_grad():
        _, b = generator.free_running(1, 1, 1.0)
    return int(b.hidden.shape[-1]), int(b.outputs.shape[-1])


class GateState(nn.Module):
    """The discriminator's smoothed accuracy (a buffer, so checkpoints and resume keep it)."""

    accuracy: torch.Tensor

    def __init__(self):
        super().__init__()
        self.register_buffer("accuracy", torch.tensor(0.5))

    def update(self, accuracy: torch.Tensor, momentum: float) -> torch.Tensor:
        self.accuracy.mul_(momentum).add_((1 - momentum) * accuracy.detach().float())
        return self.accuracy.clone()


# --- the shared trainer --------------------------------------------------------------------
class SequenceTrainer(Trainer):
    """A registered generator (``generator``, a GRU by default) trained by maximum likelihood:
    teacher forcing, and the base of the others."""

    Config: ClassVar[type[SequenceConfig]] = SequenceConfig
    SampleOptions = SampleOptions
    EvaluateOptions = EvaluateOptions
    name = "teacher-forcing"
    config: SequenceConfig

    def __init__(self, config: SequenceConfig, info: DataInfo, device="cpu"):
        super().__init__(config, info, device)
        self.length = int(info.shape[0])
        self.generator = build_generator(config, info).to(self.device)
        self.opt_g = self.adam(self.generator.parameters(), config.lr)

    @classmethod
    def default_config(cls, info: DataInfo) -> SequenceConfig:
        cfg = cls.Config()
        if info.modality == "strokes":
            cfg = dataclasses.replace(cfg, hidden=400, layers=3)  # Graves-style handwriting net
        return cfg

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g}

    @property
    def clip(self) -> float | None:
        return self.config.grad_clip or None

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """Tokens stay (B, L) int64; real sequences become (B, L, D) float."""
        if self.info.vocab_size and self.info.modality == "sequence":
            return batch.long()
        return batch.float() if batch.dim() == 3 else batch.float().unsqueeze(-1)

    def training_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.prepare(batch)
        nll = self.generator.nll(self.generator.teacher_forced(x), x).mean()
        self.optimizer_step(nll, self.opt_g, clip=self.clip)
        return {"loss": nll.detach(), "nll": nll.detach()}

    # --- sampling and evaluation ----------------------------------------------------------
    def sample(self, n: int, options: Any) -> torch.Tensor:  # a SampleOptions
        steps = options.steps or 4 * self.length
        if steps < 1 or options.temperature < 0:
            raise GMError("--steps must be positive and --temperature at least 0.")
        return sampling.sample(
            self.generator,
            n,
            steps,
            options.temperature,
            compile=options.compile,
            cuda_graph=options.cuda_graph,
        )

    @classmethod
    def sample_form(cls, info: DataInfo) -> str:
        """Token sequences are text (pixel sequences and strokes are pictures)."""
        from gm_professor_forcing import drawing

        tokens = info.modality == "sequence" and bool(info.vocab_size)
        pixels = tokens and drawing.image_shape(info, int(info.shape[0] or 0)) is not None
        return "text" if tokens and not pixels else "picture"

    def write_samples(self, samples: Any, path: Path, options: Any) -> None:
        from gm_professor_forcing import drawing

        drawing.write(samples, Path(path), self.info, self.length)

    def evaluate(self, data: Dataset, split: str, options: Any) -> dict[str, float]:
        from gm_professor_forcing import evaluation

        return evaluation.evaluate(self, data, split, options)


class TeacherForcingTrainer(SequenceTrainer):
    """Maximum likelihood with the true previous token as input (the usual RNN training)."""


class ScheduledSamplingTrainer(SequenceTrainer):
    Config = ScheduledSamplingConfig
    name = "scheduled-sampling"
    config: ScheduledSamplingConfig

    def __init__(self, config: ScheduledSamplingConfig, info: DataInfo, device="cpu"):
        super().__init__(config, info, device)
        self.p_true(0)  # validate the schedule now, not mid-run

    def p_true(self, i: int) -> float:
        """eps_i: the probability of feeding the true previous token at update i."""
        cfg = self.config
        end = max(float(cfg.steps), 1.0)  # the update at which eps reaches 0.5
        if cfg.decay == "linear":
            k = cfg.decay_k or 1.0
            c = cfg.decay_c or (k - 0.5) / end
            eps = k - c * i
        elif cfg.decay == "exponential":
            k = cfg.decay_k or 0.5 ** (1 / end)
            if not 0 < k < 1:
                raise GMError(f"exponential decay needs 0 < decay_k < 1, got {k}.")
            eps = k**i
        else:
            k = cfg.decay_k or _inverse_sigmoid_k(end)
            if k < 1:
                raise GMError(f"inverse-sigmoid decay needs decay_k >= 1, got {k}.")
            eps = k / (k + math.exp(min(i / k, 700.0)))
        return float(min(1.0, max(cfg.min_true, eps)))

    def training_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.prepare(batch)
        p = self.p_true(self.step)  # the engine's count of updates done
        nll = self.generator.nll(self.generator.scheduled(x, p), x).mean()
        self.optimizer_step(nll, self.opt_g, clip=self.clip)
        return {
            "loss": nll.detach(),
            "nll": nll.detach(),
            "p_true": torch.tensor(p, device=self.device),
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Older checkpoints kept their own ``updates`` count: the engine's step, ignored."""


def _inverse_sigmoid_k(half: float) -> float:
    """The k with k / (k + exp(half / k)) = 1/2, i.e. k ln k = half (k >= 1)."""
    k = max(half / max(math.log(half), 1.0), 1.0)
    for _ in range(50):  # Newton on k ln k - half
        k = max(k - (k * math.log(k) - half) / (math.log(k) + 1), 1.0 + 1e-9)
    return k


class ProfessorForcingTrainer(SequenceTrainer):
    Config = ProfessorForcingConfig
    name = "professor-forcing"
    config: ProfessorForcingConfig

    def __init__(self, config: ProfessorForcingConfig, info: DataInfo, device="cpu"):
        super().__init__(config, info, device)
        self.free_steps = config.free_steps or self.length
        self.segment = config.segment or min(self.length, self.free_steps)
        if not 1 <= self.segment <= min(self.length, self.free_steps):
            raise GMError(
                f"segment must be between 1 and the training length ({self.length}) and "
                f"free_steps ({self.free_steps}); got {self.segment}."
            )
        g = self.generator
        if config.behaviour == "embeddings" and not isinstance(
            getattr(g, "embedding", None), nn.Embedding
        ):
            raise GMError(
                "behaviour=embeddings needs token data (it embeds the emitted tokens); "
                "use --set behaviour=both for real-valued sequences."
            )
        hidden, outputs = behaviour_widths(g, self.device)
        if config.behaviour == "embeddings":
            features = hidden + g.embedding.embedding_dim
        else:
            features = {"hidden": hidden, "outputs": outputs, "both": hidden + outputs}[
                config.behaviour
            ]
        d_class = plugins.component("discriminators", config.discriminator)
        self.discriminator = d_class.build(config, info, features).to(self.device)
        self.opt_d = self.adam(
            self.discriminator.parameters(), config.d_lr, betas=(config.d_beta1, 0.999)
        )
        self.gate = GateState().to(self.device)
        if config.adversarial_cap < 0:
            raise GMError(
                f"adversarial_cap must be at least 0 (0: off); got {config.adversarial_cap}."
            )
        self.open_steps = torch.zeros((), device=self.device)  # steps the D->G gate was open
        self.diagnostics: dict[str, torch.Tensor] = {}  # held through a log_every window

    @classmethod
    def default_config(cls, info: DataInfo) -> ProfessorForcingConfig:
        cfg = cast(ProfessorForcingConfig, super().default_config(info))
        if info.modality == "strokes" and info.shape[0] >= 50:
            # the paper's handwriting setup: 1000 free-running steps, 50-step segments
            cfg = dataclasses.replace(cfg, free_steps=1000, segment=50)
        return cfg

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator, "gate": self.gate}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def features(self, behaviour: Behaviour, emitted: torch.Tensor | None = None) -> torch.Tensor:
        """The behaviour D sees, cut into non-overlapping segments: (B * pieces, segment, F).
        ``emitted``: the tokens of each step (the data under teacher forcing, the draws when
        free-running), for ``behaviour=embeddings``."""
        what = self.config.behaviour
        h = behaviour.hidden
        if what == "hidden":
            f = h
        elif what == "outputs":
            f = behaviour.outputs
        elif what == "both":
            f = torch.cat([h, behaviour.outputs.to(h.dtype)], -1)
        else:
            if emitted is None:
                raise ValueError("behaviour=embeddings needs the emitted tokens")
            f = torch.cat([h, self.generator.embedding(emitted).to(h.dtype)], -1)
        b, length, width = f.shape
        pieces = length // self.segment
        return f[:, : pieces * self.segment].reshape(b * pieces, self.segment, width)

    def discriminator_loss(self, f_tf: torch.Tensor, f_free: torch.Tensor):
        """C_d on detached behaviours, and D's accuracy on this batch."""
        logits = self.discriminator(torch.cat([f_tf.detach(), f_free.detach()]))
        l_tf, l_free = logits[: len(f_tf)], logits[len(f_tf) :]
        c_d = F.softplus(-l_tf).mean() + F.softplus(l_free).mean()  # -log D(tf) - log(1 - D(free))
        accuracy = 0.5 * ((l_tf > 0).float().mean() + (l_free < 0).float().mean())
        return c_d, accuracy.detach()

    def adversarial_costs(self, f_tf: torch.Tensor, f_free: torch.Tensor):
        """C_f = -log D(B_free) and C_t = -log(1 - D(B_tf)) through a frozen D (C_t is None
        unless ``teacher_term``)."""
        with frozen(self.discriminator):  # two calls: C_f's graph never contains B_tf
            c_f = F.softplus(-self.discriminator(f_free)).mean()
            c_t = F.softplus(self.discriminator(f_tf)).mean() if self.config.teacher_term else None
        return c_f, c_t

    def adversarial_scale(self) -> float:
        """The weight of C_f (+ C_t) beside the per-token NLL: 1 / L for the thesis's
        whole-sequence NLL (``weighting="sequence"``), 1 for ``"token"``."""
        per = 1.0 / self.length if self.config.weighting == "sequence" else 1.0
        return self.config.adversarial_weight * per

    def extra_state(self) -> dict[str, Any]:
        return {"gate_open_steps": int(self.open_steps.item())}  # at checkpoints only

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.open_steps.fill_(float(state.get("gate_open_steps", 0)))

    def generator_gradient(self, nll, adversarial, g_open):
        """The generator's gradient, NLL's and the (weighted) adversarial term's apart: a
        surrogate loss with exactly that gradient (so :meth:`optimizer_step` reduces,
        clips and steps as usual), the capped scale applied, and the diagnostics."""
        params = [p for p in self.generator.parameters() if p.requires_grad]

        def grads(loss, keep):
            g = torch.autograd.grad(loss, params, retain_graph=keep, allow_unused=True)
            return [torch.zeros_like(p) if q is None else q for p, q in zip(params, g, strict=True)]

        g_nll = grads(nll, True)
        g_adv = grads(self.adversarial_scale() * adversarial, False)
        n_nll = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in g_nll]))
        n_adv = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in g_adv]))
        dot = sum((a * b).sum() for a, b in zip(g_nll, g_adv, strict=True))
        tiny = torch.finfo(n_nll.dtype).tiny
        ratio = n_adv / n_nll.clamp_min(tiny)
        factor = g_open.float()
        if self.config.adversarial_cap:
            factor = factor * (self.config.adversarial_cap / ratio.clamp_min(tiny)).clamp(max=1)
        surrogate = sum(
            (p * (a + factor * b).detach()).sum()
            for p, a, b in zip(params, g_nll, g_adv, strict=True)
        )
        diagnostics = {
            "grad_ratio": ratio.detach(),
            "grad_cosine": (dot / (n_nll * n_adv).clamp_min(tiny)).detach(),
            "adversarial_factor": factor.detach(),
        }
        return surrogate, diagnostics

    def training_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.config
        x = self.prepare(batch)
        tf = self.generator.teacher_forced(x)
        nll = self.generator.nll(tf, x).mean()
        samples, free = self.generator.free_running(len(x), self.free_steps, 1.0)
        f_tf, f_free = self.features(tf, x), self.features(free, samples)

        # 1. the discriminator, on detached behaviours; gate on its smoothed accuracy
        c_d, accuracy = self.discriminator_loss(f_tf, f_free)
        accuracy = distributed.all_reduce_mean({"a": accuracy})["a"]  # the same gates on every rank
        smoothed = self.gate.update(accuracy, cfg.gate_momentum)
        d_open, g_open = smoothed <= cfg.gate_d, smoothed > cfg.gate_g
        before = [p.detach().clone() for p in self.discriminator.parameters()]
        self.optimizer_step(c_d, self.opt_d, clip=self.clip, enabled=d_open)
        # "updated" means D's weights moved, not that the gate let a step through (a dead
        # D with zero gradient would otherwise report updates forever)
        after = self.discriminator.parameters()
        moved = torch.stack([(a != p.detach()).any() for a, p in zip(before, after, strict=True)])
        moved = moved.any()

        # 2. the generator: NLL + C_f (+ C_t), D frozen, adversarial part behind the gate.
        # The gradients apart (diagnostics on the first step of a log window; every step
        # under the cap); else read on the host (no device sync on CPU) a closed gate builds
        # no adversarial graph
        self.open_steps += g_open.float()
        diagnose = self.step % cfg.log_every == 0 or not self.diagnostics
        if diagnose or cfg.adversarial_cap:
            c_f, c_t = self.adversarial_costs(f_tf, f_free)
            adversarial = c_f if c_t is None else c_f + c_t
            surrogate, diagnostics = self.generator_gradient(nll, adversarial, g_open)
            self.diagnostics = diagnostics  # under the cap: every step's
            applied = self.adversarial_scale() * diagnostics["adversarial_factor"] * adversarial
            loss = nll + applied.detach()
            self.optimizer_step(surrogate, self.opt_g, clip=self.clip)
        else:
            if fastpath.use(cfg.skip_closed_gates, "host_gates", g_open.device) and not bool(
                g_open
            ):
                with torch.no_grad():  # C_f, C_t for the metrics only
                    c_f, c_t = self.adversarial_costs(f_tf, f_free)
                gated = torch.zeros_like(c_f)
            else:
                c_f, c_t = self.adversarial_costs(f_tf, f_free)
                adversarial = c_f if c_t is None else c_f + c_t
                gated = torch.where(g_open, adversarial, torch.zeros_like(adversarial))
            loss = nll + self.adversarial_scale() * gated
            self.optimizer_step(loss, self.opt_g, clip=self.clip)
        if self.step == cfg.steps - 1:
            self.say_if_never_opened()
        metrics = {
            "loss": loss.detach(),
            "nll": nll.detach(),
            "c_d": c_d.detach(),
            "c_f": c_f.detach(),
            "d_accuracy": accuracy,
            "d_accuracy_ema": smoothed,
            "d_updated": moved.float(),
            "g_gate_open": g_open.float(),
            "g_gate_ever_open": (self.open_steps > 0).float(),
            **{k: v for k, v in self.diagnostics.items() if k != "adversarial_factor"},
        }
        if cfg.adversarial_cap:
            metrics["adversarial_factor"] = diagnostics["adversarial_factor"]
        if c_t is not None:
            metrics["c_t"] = c_t.detach()
        return metrics

    def say_if_never_opened(self) -> None:
        """The run's last step: one host read, and one plain line if C_f never reached G."""
        from gm import progress

        if float(self.open_steps) == 0:
            progress.line(NEVER_OPENED.format(gate=self.config.gate_g))
