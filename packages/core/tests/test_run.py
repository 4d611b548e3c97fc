"""The run object (gm.run) and the training request (gm.request): one way to reopen a run for
every verb, and one record of what a training asks for, whoever asks (the CLI flags or
gm.train), checked in one place."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import gm
from gm import build, checkpoint, cli, engine
from gm.data import in_data_units, to_data_units
from gm.errors import GMError
from gm.request import TrainRequest
from gm.run import Run

KW = dict(device="cpu", progress=False)


def gm_verb(*args: str):
    """The gm command line in this process (its errors raised, no signal handlers set)."""
    import typer

    return typer.main.get_command(cli.build_app()).main(args=list(args), prog_name="gm",
                                                       standalone_mode=False)  # fmt: skip


@pytest.fixture(scope="module")
def gaussian_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "g"
    return gm.train("gaussian", "swiss-roll", steps=30, out=out, seed=3,
                        data_options={"n": 600}, lr=0.05, **KW)  # fmt: skip


def _weights(trainer):
    return {
        f"{m}.{k}": v for m, mod in trainer.modules().items() for k, v in mod.state_dict().items()
    }


def test_open_restores_the_saved_weights_and_the_record(gaussian_run):
    opened = Run.open(gaussian_run)
    saved = load_file(str(gaussian_run / checkpoint.WEIGHTS))
    got = _weights(opened.trainer)
    assert got.keys() == saved.keys() and all(torch.equal(got[k], saved[k]) for k in saved)
    assert opened.record == json.loads((gaussian_run / checkpoint.CONFIG).read_text())
    assert opened.model == "gaussian" and opened.record["seed"] == 3
    assert not any(m.training for m in opened.trainer.modules().values())  # ready to sample
    # a fresh trainer differs from the trained one: the weights really came from the file
    fresh = build.from_record(opened.record)
    assert any(not torch.equal(v, _weights(fresh)[k]) for k, v in got.items())
    # the Python API and checkpoint.load reopen it the same way
    for other in (gm.load(gaussian_run, device="cpu").trainer, Run.open(gaussian_run).trainer):
        assert all(torch.equal(v, _weights(other)[k]) for k, v in got.items())
    data = opened.dataset()  # the run's own dataset, with its own options
    assert (
        data.info.name == "swiss-roll" and len(data.raw("train")) == 600
    )  # n=600, not the default


def test_sample_and_evaluate_verbs_see_the_run_as_run_open_does(gaussian_run, tmp_path, capsys):
    opened = Run.open(gaussian_run)
    engine.seed_everything(5)
    with torch.no_grad():
        expect = to_data_units(
            opened.trainer.sample(7, opened.trainer.SampleOptions()), opened.trainer.info
        )
    gm_verb("sample", str(gaussian_run), "-n", "7", "--seed", "5", "--device", "cpu",
              "--out", str(tmp_path / "s.npy"))  # fmt: skip
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), expect.numpy())
    engine.seed_everything(0)
    metrics = opened.trainer.evaluate(opened.dataset(), "test", opened.trainer.EvaluateOptions())
    expect = in_data_units(metrics, opened.dataset().info, opened.trainer.DENSITY_METRICS)
    capsys.readouterr()
    gm_verb("evaluate", str(gaussian_run), "--json", "--device", "cpu")
    assert json.loads(capsys.readouterr().out) == expect
    assert gm.load(gaussian_run, device="cpu").evaluate() == metrics


def test_a_verb_the_model_lacks_is_one_line_and_writes_nothing(gaussian_run, tmp_path, monkeypatch):
    from gm import run as runs

    monkeypatch.setattr(runs, "model_capabilities", lambda model: ())  # as a model declares
    with pytest.raises(GMError, match=r"^model 'gaussian' does not generate samples"):
        gm_verb("sample", str(gaussian_run), "--out", str(tmp_path / "s.png"))
    with pytest.raises(GMError, match=r"^model 'gaussian' has no evaluation"):
        gm_verb("evaluate", str(gaussian_run))
    assert not list(tmp_path.iterdir())


def test_training_draws_pictures_only_for_a_model_that_samples(tmp_path, monkeypatch):
    from gm import run as runs

    real = runs.model_capabilities
    gm.train("gaussian", "swiss-roll", steps=3, out=tmp_path / "a", **KW)
    monkeypatch.setattr(
        runs, "model_capabilities", lambda m: tuple(c for c in real(m) if c != "sample")
    )
    gm.train("gaussian", "swiss-roll", steps=3, out=tmp_path / "b", **KW)
    assert (tmp_path / "a" / "samples.png").exists() and not (
        tmp_path / "b" / "samples.png"
    ).exists()


def test_the_cli_flags_and_gm_train_make_the_same_request(tmp_path, monkeypatch):
    seen = []
    real = engine._execute

    def execute(request):
        seen.append(request)
        return real(request)

    monkeypatch.setattr(engine, "_execute", execute)
    out = tmp_path / "r"
    gm_verb("train", "gaussian", "--dataset", "swiss-roll", "--steps", "4", "--out", str(out),
              "--set", "lr=0.02", "--seed", "9", "--device", "cpu", "--data-option", "n=300")  # fmt: skip
    # the flags as given (values are parsed against the config, as --set always was)
    expect = TrainRequest("gaussian", "swiss-roll", steps=4, out=out, overrides={"lr": "0.02"},
                          device="cpu", seed=9, data_options={"n": "300"})  # fmt: skip
    assert seen[-1] == expect
    # what the request asked for is what the run records
    record = Run(out).record
    assert (record["seed"], record["data_options"], record["config"]["lr"]) == (
        9,
        {"n": "300"},
        0.02,
    )
    assert record["config"]["steps"] == 4
    # the Python keywords make the same request and the same record
    gm.train("gaussian", "swiss-roll", steps=4, out=out.with_name("p"), lr=0.02,
                 device="cpu", seed=9, data_options={"n": "300"})  # fmt: skip
    assert seen[-1] == TrainRequest("gaussian", "swiss-roll", steps=4, out=out.with_name("p"),
                                    overrides={"lr": 0.02}, device="cpu", seed=9,
                                    data_options={"n": "300"})  # fmt: skip
    assert Run(out.with_name("p")).record == record
    # a resume asks only for more steps; the run's own model, data and seed apply
    gm_verb("train", "gaussian", "--resume", str(out), "--steps", "6", "--device", "cpu")
    assert seen[-1] == TrainRequest("gaussian", "swiss-roll", steps=6, resume=out, device="cpu",
                                    seed=9, data_options={"n": "300"})  # fmt: skip
    assert [r["step"] for r in Run(out).metrics][-1] == 6 and Run(out).record["seed"] == 9


def test_a_request_is_one_normal_form():
    a = TrainRequest("m", "d", out="x", resume="y", overrides=None, report_to=["tensorboard"])
    assert a.out == Path("x") and a.resume == Path("y") and a.overrides == {}
    assert a.report_to == ("tensorboard",)
    with pytest.raises(AttributeError):
        a.steps = 3  # frozen: built once, handed down


def test_metrics_file_keeps_rows_up_to_a_step_and_knows_the_time_spent(tmp_path):
    from gm.run import MetricsFile

    metrics = MetricsFile(tmp_path / "metrics.jsonl")
    assert metrics.rows() == [] and metrics.elapsed() == 0.0  # no file yet
    for step, t in ((1, 1.0), (2, 2.5), (3, 4.0)):
        metrics.append({"step": step, "loss": 0.5, "time": t})
    with metrics.path.open("a") as f:
        f.write('{"step": 4, "lo')  # a write cut short
    metrics.keep_until(2)
    assert [r["step"] for r in metrics.rows()] == [1, 2] and metrics.elapsed() == 2.5
    metrics.append({"step": 3})  # a row without a time says none was spent
    assert metrics.elapsed() == 0.0


def test_a_run_is_its_folder_and_loads_its_data_once(gaussian_run, tmp_path):
    assert Run(gaussian_run) == Run(str(gaussian_run)) and Run(gaussian_run) != Run(tmp_path)
    assert len({Run(gaussian_run), Run(gaussian_run)}) == 1
    opened = Run.read(gaussian_run)
    assert opened.trainer is None  # the record only, no weights read
    assert opened.dataset() is opened.dataset()
    other = opened.dataset("circle")
    assert other.info.name == "circle" and opened.dataset().info.name == "swiss-roll"
