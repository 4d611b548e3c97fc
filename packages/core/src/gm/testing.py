"""Contract tests that every plugin's tests subclass (pytest collects them).

Example::

    from gm.testing import TrainerContract

    class TestWalkback(TrainerContract):
        model = "walkback"
        dataset = "swiss-roll"
        overrides = {"hidden": 32, "batch_size": 16}

Each class checks what any implementation of its kind must do: shapes, dtypes, seeded
determinism, a safetensors save -> load round trip, and a few real training steps on CPU.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import tempfile
import time
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file

from gm import build, checkpoint, plugins
from gm.data import Dataset, load_dataset
from gm.engine import seed_everything
from gm.run import Run


def cuda_only(test: Any) -> Any:
    """Mark a test CUDA-only: ``pytest -m cuda`` selects it (``bench/gpu.py`` runs them all
    on the first GPU machine) and it is skipped where no CUDA device is visible."""
    import pytest

    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
    return pytest.mark.cuda(skip(test))


def on_cuda(*values: Any) -> Any:
    """``values`` (default ``"cuda"``) as one pytest parameter set, marked as
    :func:`cuda_only` marks a test."""
    import pytest

    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
    return pytest.param(*(values or ("cuda",)), marks=(pytest.mark.cuda, skip))


def forked(fn, timeout: float = 60) -> tuple[int, str]:
    """Run ``fn()`` in a forked child process (a real process that signals can end, without
    a fresh interpreter's start-up); returns (exit status as a shell reports it, stderr).
    A child ended by a signal reports 128 + the signal's number, as the shell does."""
    err = tempfile.TemporaryFile()  # noqa: SIM115 - the child writes it, the parent reads it
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.dup2(err.fileno(), 2)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            fn()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - report anything, then leave
            import traceback

            traceback.print_exc()
            code = 99
        finally:
            sys.stderr.flush()
            os._exit(code)
    deadline = time.time() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise TimeoutError("the forked child did not finish")
        time.sleep(0.01)
    err.seek(0)
    text = err.read().decode(errors="replace")
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status), text
    return os.WEXITSTATUS(status), text


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _round_trip(module: torch.nn.Module, fresh: torch.nn.Module, tmp_path) -> None:
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    fresh.load_state_dict(load_file(str(path)))
    for k, v in module.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k]), k


class TrainerContract:
    """For a registered model: a few real steps, determinism, checkpoint round trip, sampling."""

    model: ClassVar[str]
    dataset: ClassVar[str]
    overrides: ClassVar[dict[str, Any]] = {}
    data_options: ClassVar[dict[str, Any]] = {}
    steps: ClassVar[int] = 3

    def _sets(self) -> dict[str, Any]:
        """The config overrides of a short run (its ``steps`` are the test's own)."""
        return {k: v for k, v in self.overrides.items() if k != "steps"}

    def make(self, seed: int = 0, device: str = "cpu"):
        data: Dataset = load_dataset(self.dataset, options=dict(self.data_options))
        cls, cfg = build.resolve(self.model, data.info, overrides=self.overrides)
        seed_everything(seed)
        return build.trainer(cls, cfg, data.info, device), data

    def run_steps(self, trainer, data: Dataset, seed: int = 0) -> list[dict[str, torch.Tensor]]:
        seed_everything(seed)
        batches = data.batches("train", trainer.config.batch_size, seed=seed)
        trainer.train(True)
        return [trainer.training_step(next(batches).to(trainer.device)) for _ in range(self.steps)]

    @cuda_only
    def test_bf16_steps_and_sampling_on_cuda(self):
        """On a GPU, as the engine trains there (bf16 autocast, fused Adam, gates as device
        tensors): finite metrics, weights that move, and finite samples on the GPU (not
        compiled: the plugins' own CUDA tests compile and graph their samplers)."""
        from gm.engine import autocast

        trainer, data = self.make(device="cuda")
        before = {n: _state(m) for n, m in trainer.modules().items()}
        with autocast(torch.device("cuda"), "bf16"):
            history = self.run_steps(trainer, data)
        for metrics in history:
            for k, v in metrics.items():
                assert torch.isfinite(v).all(), f"metric {k} is {v} under bf16"
        assert any(
            not torch.equal(v.cuda(), trainer.modules()[n].state_dict()[k])
            for n, s in before.items()
            for k, v in s.items()
            if v.is_floating_point()
        ), "bf16 training steps changed no weight"
        trainer.train(False)
        options = trainer.SampleOptions()
        for switch in ("compile", "fast"):  # compiling is the plugins' own CUDA tests' part
            if hasattr(options, switch):  # (here it would cost bench/gpu.py minutes)
                setattr(options, switch, "off")
        with torch.no_grad():
            samples = trainer.sample(4, options)
        tensor = samples if torch.is_tensor(samples) else samples[0]
        assert torch.isfinite(tensor.float()).all()

    def test_registered(self):
        spec = plugins.get("models", self.model)
        assert spec.plugin and spec.load().Config is not None

    def test_training_steps_are_finite_and_learn(self):
        trainer, data = self.make()
        before = {n: _state(m) for n, m in trainer.modules().items()}
        history = self.run_steps(trainer, data)
        for metrics in history:
            assert "loss" in metrics
            for k, v in metrics.items():
                assert torch.is_tensor(v) and v.numel() == 1, f"metric {k} must be a scalar tensor"
                assert torch.isfinite(v), f"metric {k} is {v}"
        changed = any(
            not torch.equal(v, trainer.modules()[n].state_dict()[k])
            for n, s in before.items()
            for k, v in s.items()
            if v.is_floating_point()
        )
        assert changed, "training steps changed no weight"

    def test_seeded_runs_are_identical(self):
        results = []
        for _ in range(2):
            trainer, data = self.make(seed=3)
            self.run_steps(trainer, data, seed=3)
            results.append({n: _state(m) for n, m in trainer.modules().items()})
        for n, s in results[0].items():
            for k, v in s.items():
                assert torch.equal(v, results[1][n][k]), f"{n}.{k} differs between seeded runs"

    def test_checkpoint_round_trip(self, tmp_path):
        from gm import train

        run = train(
            self.model,
            self.dataset,
            steps=self.steps,
            out=tmp_path / "run",
            **{**self._sets(), "log_every": 1},
            device="cpu",
            data_options=dict(self.data_options),
            progress=False,
        ).path
        saved = load_file(str(run / checkpoint.WEIGHTS))
        loaded = Run.open(run).trainer
        for name, module in loaded.modules().items():
            for k, v in module.state_dict().items():
                assert torch.equal(v, saved[f"{name}.{k}"])
        assert (run / "metrics.jsonl").read_text().count("\n") == self.steps

    def test_a_signal_inside_a_step_resumes_exactly(self, tmp_path):
        """SIGINT (SIGTERM) in the middle of a step, after its first update (where it makes
        several, before the others; without updates, at the step's end): the run saves that
        whole step, exits 130 (143), and resumes bitwise equal to an uninterrupted run."""
        from gm import train
        from gm.errors import Interrupted
        from gm.trainer import Trainer

        kw = dict(
            steps=4,
            **{**self._sets(), "log_every": 1, "checkpoint_every": 2},
            device="cpu",
            data_options=dict(self.data_options),
            progress=False,
        )
        straight = train(self.model, self.dataset, out=tmp_path / "straight", **kw).path
        cls = type(self.make()[0])
        for sig, at in ((signal.SIGINT, 3), (signal.SIGTERM, 2)):
            run = tmp_path / f"run-{at}"

            def child(sig=sig, at=at, run=run):
                real_update, real_step = Trainer.optimizer_step, cls.training_step
                seen = {"step": 0, "updates": 0}

                def training_step(trainer, batch):
                    seen["step"] += 1
                    seen["updates"] = 0
                    out = real_step(trainer, batch)
                    if seen["step"] == at and not seen["updates"]:  # a model without updates
                        os.kill(os.getpid(), sig)
                    return out

                def optimizer_step(trainer, *args, **kwargs):
                    real_update(trainer, *args, **kwargs)
                    seen["updates"] += 1
                    if seen["step"] == at and seen["updates"] == 1:  # after its first update
                        os.kill(os.getpid(), sig)

                Trainer.optimizer_step = optimizer_step
                cls.training_step = training_step
                try:
                    train(self.model, self.dataset, out=run, **kw)
                except Interrupted as stop:
                    sys.exit(stop.exit_code)

            code, err = forked(child)
            assert code == 128 + sig, err
            saved = build.from_record(checkpoint.read_record(run))
            assert checkpoint.load_state(run, saved) == at  # the whole step, none of the next
            resumed = train(
                self.model, None, resume=run, steps=4, device="cpu", progress=False
            ).path
            want = load_file(str(straight / checkpoint.WEIGHTS))
            got = load_file(str(resumed / checkpoint.WEIGHTS))
            for name in want:
                assert torch.equal(want[name], got[name]), f"{name} differs after step {at}"

    def test_sample(self, tmp_path):
        trainer, data = self.make()
        trainer.train(False)
        with torch.no_grad():
            samples = trainer.sample(4, trainer.SampleOptions())
        tensor = samples if torch.is_tensor(samples) else samples[0]
        assert len(tensor) == 4 or tensor.shape[1] == 4
        assert torch.isfinite(tensor.float()).all()


ModelContract = TrainerContract


# --- the component interfaces (gm.plugins.component): what a trainer relies on ---------
def check_transition_operator(op: Any, s: torch.Tensor) -> None:
    """``op.distribution(s, temperature, step)``: draws of ``s``'s shape and dtype, one
    finite log-probability per row, at T = 1 and hotter."""
    for temperature, step in ((1.0, 0), (4.0, 1)):
        d = op.distribution(s, temperature, step)
        x = d.rsample() if d.has_rsample else d.sample()
        assert x.shape == s.shape and x.dtype == s.dtype, (x.shape, s.shape)
        lp = d.log_prob(x)
        assert lp.shape == (s.shape[0],) and torch.isfinite(lp).all(), lp.shape


def check_sequence_generator(gen: Any, x: torch.Tensor) -> None:
    """Teacher-forced and free-running behaviour (B, L, H) / (B, L, O) of the right lengths,
    and a free run whose hidden states carry gradient to the weights (professor forcing
    trains the generator through them)."""
    b = gen.teacher_forced(x)
    assert b.hidden.shape[:2] == x.shape[:2] and b.outputs.shape[:2] == x.shape[:2]
    assert torch.isfinite(b.hidden).all() and torch.isfinite(b.outputs).all()
    nll = gen.nll(b, x)
    assert nll.shape == x.shape[:2] and torch.isfinite(nll).all(), "nll: one value per step"
    if not x.dtype.is_floating_point:  # token probabilities: nats are never negative
        assert (nll >= 0).all()
    steps = x.shape[1] + 1
    samples, free = gen.free_running(x.shape[0], steps, 1.0)
    assert samples.shape[:2] == (x.shape[0], steps) and free.hidden.shape[:2] == samples.shape[:2]
    assert free.hidden.shape[2:] == b.hidden.shape[2:], "both passes' hidden states must match"
    gen.zero_grad(set_to_none=True)
    free.hidden.float().pow(2).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters()), (
        "no gradient reached the weights through the free-running hidden states"
    )
    gen.zero_grad(set_to_none=True)


def check_discriminator(d: torch.nn.Module, behaviour: torch.Tensor) -> None:
    """One finite logit per sequence of (B, L, F) behaviour, with gradient to the behaviour
    (the generator's professor-forcing loss flows through it)."""
    behaviour = behaviour.detach().requires_grad_(True)
    logits = d(behaviour)
    assert logits.shape == (behaviour.shape[0],) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert behaviour.grad is not None and behaviour.grad.abs().sum() > 0


# The three component contracts are parallel on purpose: each names its two factories
# (make_X and its input) and calls its check_X function; only the round trip is shared.
class _ComponentContract:
    """What every component contract checks; ``_make`` builds one component."""

    def _make(self) -> torch.nn.Module:
        raise NotImplementedError("each component contract defines _make")

    def test_safetensors_round_trip(self, tmp_path):
        torch.manual_seed(0)
        a = self._make()
        torch.manual_seed(1)
        _round_trip(a, self._make(), tmp_path)


class TransitionOperatorContract(_ComponentContract):
    """For a transition operator p_T(s'|s): set ``make_operator`` and ``make_state``."""

    def _make(self):
        return self.make_operator()

    def make_operator(self) -> torch.nn.Module:
        raise NotImplementedError("a contract subclass defines make_operator")

    def make_state(self, batch: int = 4) -> torch.Tensor:
        raise NotImplementedError("a contract subclass defines make_state")

    def test_distribution_shapes_and_log_prob(self):
        torch.manual_seed(0)
        check_transition_operator(self.make_operator(), self.make_state())

    def test_seeded_sampling_is_deterministic(self):
        op, s = self.make_operator(), self.make_state()
        draws = []
        for _ in range(2):
            torch.manual_seed(1)
            draws.append(op.distribution(s, 2.0, 1).sample())
        assert torch.equal(*draws)

    def test_heat_spreads_the_distribution(self):
        op, s = self.make_operator(), self.make_state()
        op.eval()
        cold = op.distribution(s, 1.0, 0).entropy()
        hot = op.distribution(s, 8.0, 0).entropy()
        assert (hot > cold).all()


class SequenceGeneratorContract(_ComponentContract):
    """For a sequence generator: set ``make_generator`` and ``make_batch`` (B, L, ...)."""

    def _make(self):
        return self.make_generator()

    def make_generator(self) -> torch.nn.Module:
        raise NotImplementedError("a contract subclass defines make_generator")

    def make_batch(self) -> torch.Tensor:
        raise NotImplementedError("a contract subclass defines make_batch")

    def test_teacher_forced_and_free_running_behaviour(self):
        torch.manual_seed(0)
        check_sequence_generator(self.make_generator(), self.make_batch())

    def test_free_running_length_and_determinism(self):
        g, x = self.make_generator(), self.make_batch()
        runs = []
        for _ in range(2):
            torch.manual_seed(0)
            samples, b = g.free_running(x.shape[0], 2 * x.shape[1])
            assert samples.shape[:2] == (x.shape[0], 2 * x.shape[1])
            assert b.hidden.shape[:2] == (x.shape[0], 2 * x.shape[1])
            runs.append(samples)
        assert torch.equal(*runs)


class DiscriminatorContract(_ComponentContract):
    """For a discriminator: set ``make_discriminator`` and ``make_behaviour`` (B, L, F)."""

    def _make(self):
        return self.make_discriminator()

    def make_discriminator(self) -> torch.nn.Module:
        raise NotImplementedError("a contract subclass defines make_discriminator")

    def make_behaviour(self) -> torch.Tensor:
        raise NotImplementedError("a contract subclass defines make_behaviour")

    def test_one_finite_logit_per_sequence_with_gradient_to_behaviour(self):
        torch.manual_seed(0)
        check_discriminator(self.make_discriminator(), self.make_behaviour())


class DatasetContract:
    """For a registered dataset: set ``name`` (and ``options``, ``data_dir`` if needed)."""

    name: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}

    def data_dir(self, tmp_path) -> str | None:
        return None

    DTYPES: ClassVar[dict[str, tuple[torch.dtype, ...]]] = {
        "image": (torch.uint8,),
        "sequence": (torch.int64,),
        "vector": (torch.float32,),
        "strokes": (torch.float32,),
    }

    def load(self, tmp_path) -> Dataset:
        return load_dataset(self.name, self.data_dir(tmp_path), dict(self.options))

    def test_matches_its_spec(self, tmp_path):
        spec = plugins.get("datasets", self.name.partition(":")[0])
        data = self.load(tmp_path)
        assert data.info.modality == spec.modality
        assert set(data.splits) <= set(spec.splits) or spec.name in ("images", "text", "array")
        for split, t in data.splits.items():
            assert t.dtype in self.DTYPES[spec.modality], f"{split}: {t.dtype}"
            assert len(t) > 0
            if spec.shape:
                for want, got in zip(spec.shape, t.shape[1:], strict=True):
                    assert want is None or want == got

    def test_batches_are_decoded_and_deterministic(self, tmp_path):
        data = self.load(tmp_path)
        split = next(iter(data.splits))
        bs = min(4, len(data.splits[split]))
        a = next(data.batches(split, bs, seed=5))
        b = next(data.batches(split, bs, seed=5))
        assert torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
        if data.info.modality == "image":
            assert a.dtype == torch.float32 and a.min() >= 0 and a.max() <= 1
        assert not math.isnan(float(torch.nan_to_num(a.float()).sum()))


__all__ = [
    "DatasetContract",
    "DiscriminatorContract",
    "ModelContract",
    "SequenceGeneratorContract",
    "TrainerContract",
    "TransitionOperatorContract",
]
