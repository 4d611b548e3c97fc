"""Progress on every step: the bar moves between log rows (seen on a real pseudo-terminal),
plain timestamped lines in a pipe, metrics rows with time and lr from the first step, a
summary line; loggers get every row."""

import json
import re
import time

import pytest
from conftest import gm_run, plain, pty_run

import gm
from gm import engine, plugins
from gm import progress as show


def rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow  # 4 s (durations run, 1 thread, load 4-7)
def test_bar_moves_before_the_first_log_row_on_a_terminal(tmp_path):
    steps = 600
    chunks, code = pty_run(
        "train",
        "gaussian",
        "--dataset",
        "swiss-roll",
        "--steps",
        str(steps),
        "--set",
        f"log_every={steps}",
        "--out",
        str(tmp_path / "r"),
        "--device",
        "cpu",
        "--threads",
        "1",
        env={"COLUMNS": "120"},
    )
    text = plain("".join(c for _, c in chunks))
    assert code == 0, text[-2000:]
    counts = {int(m) for m in re.findall(rf"(\d+)/{steps}\b", text)}
    between = [c for c in counts if 1 < c < steps]
    # drawn at least three times between step 1 and the only regular row (step 600)
    assert len(between) >= 3, sorted(counts)
    assert "gm: trained 600 steps" in text


@pytest.mark.slow  # 7 s (durations run, 1 thread, load 4-7)
def test_plain_timestamped_lines_without_a_terminal(tmp_path):
    out = gm_run(
        "train",
        "gaussian",
        "--dataset",
        "swiss-roll",
        "--steps",
        "20",
        "--set",
        "log_every=10",
        "--out",
        str(tmp_path / "r"),
        "--device",
        "cpu",
    )
    assert out.returncode == 0, out.stderr
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
    lines = out.stderr.splitlines()
    assert any(re.match(stamp + r"train 10/20  loss ", ln) for ln in lines)
    (summary,) = [ln for ln in lines if "gm: trained" in ln]
    assert re.match(
        stamp + r"gm: trained 20 steps in [\d.]+ s .*best loss [-\d.]+ at step \d+", summary
    )
    assert "\x1b[" not in out.stderr  # no terminal codes in a log


def test_rows_have_time_and_lr_and_start_at_step_one(tmp_path):
    run = gm.train(
        "gaussian",
        "swiss-roll",
        steps=12,
        out=tmp_path / "r",
        device="cpu",
        progress=False,
        log_every=5,
        lr=0.01,
    ).path
    got = rows(run)
    assert [r["step"] for r in got] == [1, 5, 10, 12]
    assert all(r["lr"] == 0.01 for r in got)
    times = [r["time"] for r in got]
    assert times == sorted(times) and times[0] >= 0


def test_a_row_after_first_row_seconds_when_log_every_is_far(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "FIRST_ROW_S", 0.0)  # "10 s" passes at once
    run = gm.train(
        "gaussian",
        "swiss-roll",
        steps=30,
        out=tmp_path / "r",
        device="cpu",
        progress=False,
        log_every=20,
    ).path
    assert [r["step"] for r in rows(run)] == [1, 2, 20, 30]  # one timed row, not one a step


def test_resume_continues_the_time_axis(tmp_path):
    kw = dict(device="cpu", progress=False)
    run = gm.train("gaussian", "swiss-roll", steps=10, out=tmp_path / "r", **kw, log_every=5).path
    before = rows(run)[-1]["time"]
    gm.train("gaussian", None, steps=20, resume=run, **kw)
    after = [r for r in rows(run) if r["step"] > 10]
    assert after and all(r["time"] > before for r in after)


def test_progress_is_silent_unless_enabled(capsys):
    with show.bar(10, "x") as b:
        for _ in range(10):
            b.advance()
    show.status("nothing")
    time.sleep(2 * show.STATUS_DELAY_S)
    assert capsys.readouterr().err == ""
    with show.enabled():
        show.status("quick")  # ends before the delay: never shown
        show.line("next")
        show.status("loading")
        time.sleep(2 * show.STATUS_DELAY_S)
        for _ in show.track(range(3), 3, "decode"):
            pass
    err = capsys.readouterr().err
    assert "gm: loading ..." in err and "quick" not in err and "next" in err
    assert "decode" not in err  # a loop of under a second leaves no line in a log


def test_loops_below_their_threshold_or_outside_a_verb_draw_nothing(monkeypatch, capsys):
    monkeypatch.setattr(show, "HEARTBEAT_S", 0.0)  # a line at every step of a drawn bar
    with show.bar(5, "library use") as b:  # not inside a verb
        b.goto(3, "loss 1")
    monkeypatch.setattr(show, "_tty", lambda: True)
    with show.bar(5, "library use") as b:  # nor on a terminal
        b.goto(3, "loss 1")
    with show.enabled(), show.bar(5, "on a terminal") as b:
        b.goto(5, "loss 1")
    drawn = capsys.readouterr()
    assert drawn.out == ""  # stdout is the verb's result (gm evaluate --json > m.json)
    assert "on a terminal" in drawn.err and "library use" not in drawn.err
    monkeypatch.setattr(show, "_tty", lambda: False)
    with show.enabled():
        for _ in show.track(range(4), 4, "short chain", min_total=5):
            pass
        for _ in show.track(range(5), 5, "long chain", min_total=5):
            pass
    err = capsys.readouterr().err
    assert "library use" not in err and "short chain" not in err and "long chain 5/5" in err


def test_status_lines_of_slow_steps_and_the_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(show, "STATUS_DELAY_S", 0.0)  # every step counts as slow
    gm.train("gaussian", "swiss-roll", steps=4, out=tmp_path / "r", device="cpu",
                 log_every=2)  # fmt: skip
    time.sleep(0.2)
    err = capsys.readouterr().err
    assert "gm: loading dataset swiss-roll ..." in err
    assert "gm: building gaussian (vector data, shape (2,)) ..." in err
    assert re.search(r"gm: trained 4 steps in [\d.]+ s .*best loss", err)


def test_tensorboard_logger_gets_every_row(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = gm.train(
        "gaussian",
        "swiss-roll",
        steps=10,
        out=tmp_path / "r",
        device="cpu",
        progress=False,
        log_every=5,
        report_to=("tensorboard",),
    ).path
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    logged = [(e.step, e.value) for e in acc.Scalars("loss")]
    assert logged == [(r["step"], pytest.approx(r["loss"])) for r in rows(run)]


@pytest.mark.slow  # 4 s (durations run, 1 thread, load 4-7)
def test_mlflow_logger_gets_the_config_and_every_row_in_a_local_file_store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "store").as_uri()  # file:/...: offline, in tmp_path
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "newcomer")
    run = gm.train("gaussian", "swiss-roll", steps=10, out=tmp_path / "r", device="cpu",
                       progress=False, log_every=5, report_to=("mlflow",)).path  # fmt: skip
    client = MlflowClient(tracking_uri=uri)
    (found,) = client.search_runs([client.get_experiment_by_name("newcomer").experiment_id])
    assert found.info.status == "FINISHED" and found.data.tags["gm.model"] == "gaussian"
    assert found.data.params["lr"] == "0.02" and found.data.params["steps"] == "10"
    history = client.get_metric_history(found.info.run_id, "loss")
    logged = sorted((m.step, m.value) for m in history)
    assert logged == [(r["step"], pytest.approx(r["loss"])) for r in rows(run)]
    # a resume logs on into the same MLflow run: one curve
    gm.train("gaussian", None, resume=run, steps=15, device="cpu", progress=False,
                 report_to=("mlflow",))  # fmt: skip
    (again,) = client.search_runs([found.info.experiment_id])
    steps = sorted(m.step for m in client.get_metric_history(again.info.run_id, "loss"))
    assert again.info.run_id == found.info.run_id and steps == [r["step"] for r in rows(run)]
    assert steps[-1] == 15


def test_without_a_tracking_uri_mlflow_writes_inside_the_run_folder(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    run = gm.train("gaussian", "swiss-roll", steps=3, out=tmp_path / "r", device="cpu",
                       progress=False, report_to=("mlflow",)).path  # fmt: skip
    assert (run / "mlruns").is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_unknown_logger_is_one_line_with_close_names():
    out = gm_run("train", "gaussian", "--dataset", "swiss-roll", "--report-to", "tensorbord")
    assert out.returncode == 2 and "Did you mean 'tensorboard'?" in out.stderr
    assert "tensorboard" in plugins.registry("loggers")


def test_a_long_status_step_says_it_is_alive_in_a_log(monkeypatch, capsys):
    monkeypatch.setattr(show, "STATUS_DELAY_S", 0.02)
    monkeypatch.setattr(show, "HEARTBEAT_S", 0.1)
    with show.enabled():
        show.status("evaluating")  # a step with no loop of its own
        time.sleep(0.45)
        show.line("done")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("gm: evaluating ...")
    assert sum("gm: evaluating ... still running, 0:00" in ln for ln in lines) >= 2
    assert lines[-1].endswith("done")  # nothing after the step ended
    assert "" not in lines  # no blank line closing a status in a log


def test_a_status_line_counts_up_in_place_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(show, "_tty", lambda: True)
    monkeypatch.setattr(show, "STATUS_DELAY_S", 0.02)
    monkeypatch.setattr(show, "TICK_S", 0.05)
    with show.enabled():
        show.status("compiling")
        time.sleep(0.3)
        show.line("next")
    err = capsys.readouterr().err
    assert err.startswith("gm: compiling ...\r\x1b[Kgm: compiling ... 0:00")
    assert err.endswith("0:00\nnext\n")  # the open line is closed before the next one
    with show.enabled():
        show.status("quick")  # over before it shows
        show.settle()
    assert capsys.readouterr().err == ""  # not even a newline


def test_a_loop_inside_a_bar_is_silent_and_old_numbers_name_their_step(monkeypatch, capsys):
    monkeypatch.setattr(show, "_tty", lambda: True)  # rich allows one live display at a time
    with show.enabled(), show.bar(3, "train") as outer:
        for _ in show.track(range(5), 5, "log-likelihood"):  # validation inside training
            pass
        outer.goto(1)
    assert "log-likelihood" not in capsys.readouterr().err
    monkeypatch.setattr(show, "_tty", lambda: False)
    monkeypatch.setattr(show, "HEARTBEAT_S", 0.0)
    with show.enabled(), show.bar(20, "train") as b:
        b.goto(10, "loss 0.5")
        b.goto(13)  # the loss is read only at log rows
    lines = capsys.readouterr().err.splitlines()
    assert "train 10/20  loss 0.5  " in lines[0] and "train 13/20  loss 0.5 (step 10)" in lines[1]


def test_a_loop_of_more_than_a_second_ends_with_a_line_in_a_log(capsys):
    with show.enabled():
        for _ in show.track(range(3), 3, "decode"):
            time.sleep(0.36)
    (last,) = capsys.readouterr().err.splitlines()
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d decode 3/3 ", last)


def test_a_first_step_that_compiles_says_so(monkeypatch, capsys):
    monkeypatch.setattr(show, "HEARTBEAT_S", 0.0)  # a line at every step
    with show.enabled():
        for _ in show.track(range(4), 4, "chain", first="compiling (torch.compile, once)"):
            pass
    lines = capsys.readouterr().err.splitlines()
    assert "chain 0/4  compiling (torch.compile, once)" in lines[0]
    assert [int(re.search(r"chain (\d)/4", ln)[1]) for ln in lines] == [0, 1, 2, 3, 4]
    assert not any("compiling" in ln for ln in lines[1:])  # the wait is over after step 1


@pytest.mark.slow  # 9 s (durations run, 1 thread, load 4-7)
def test_a_third_party_logger_plugin_gets_every_row_and_is_closed(tmp_path):
    """W&B or MLflow as a plugin: a distribution registering a logger through gm_loggers."""
    from conftest import make_dist

    code = (
        "import json\nimport gm\nfrom pathlib import Path\nfrom gm.specs import LoggerSpec\n"
        "class Lines:\n"
        "    def __init__(self, run, record):\n"
        "        self.f = open(Path(run).parent / 'seen.jsonl', 'w')\n"
        "        self.f.write(json.dumps({'model': record['gm_model']}) + '\\n')\n"
        "    def log(self, step, row):\n"
        "        self.f.write(json.dumps({'at': step, **row}) + '\\n')\n"
        "    def close(self):\n"
        "        self.f.write('closed\\n')\n        self.f.close()\n"
        "@gm.hookimpl\ndef gm_loggers():\n"
        "    return [LoggerSpec('lines', 'gm_lines_logger:Lines', 'rows as JSON lines')]\n"
    )
    dist = make_dist(tmp_path / "p", "gm-lines-logger", "lines", "gm_lines_logger", code)
    run = tmp_path / "r"
    out = gm_run(
        *("train", "gaussian", "--dataset", "swiss-roll", "--steps", "6", "--set", "log_every=3"),
        *("--out", str(run), "--device", "cpu", "--report-to", "lines"),
        paths=(dist,),
    )
    assert out.returncode == 0, out.stderr
    *seen, last = (run.parent / "seen.jsonl").read_text().splitlines()
    assert json.loads(seen[0]) == {"model": "gaussian"} and last == "closed"
    logged = [json.loads(x) for x in seen[1:]]
    assert [r.pop("at") for r in logged] == [1, 3, 6]
    assert logged == rows(run)  # the very rows of metrics.jsonl


def _interrupted_run(tmp_path, sig):
    """A tiny run far from its first regular row, stopped by a real signal."""
    import subprocess
    import sys

    from conftest import TINY, env_with

    run = tmp_path / "r"
    sets = {"sleep": "0.01", "log_every": "100000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gm", "train", "tiny", "--dataset", "swiss-roll", "--out",
         str(run), *(a for k, v in sets.items() for a in ("--set", f"{k}={v}")),
         "--steps", "100000", "--device", "cpu"],
        env=env_with(TINY), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 60
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # some steps more, far from step 100000
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    return run, err


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
@pytest.mark.slow  # 22 s (durations run, 1 thread, load 4-7)
def test_an_interrupt_writes_the_row_of_the_interrupted_step(tmp_path, sig):
    """Before, the steps since the last row were never logged: an interrupt between rows
    left metrics.jsonl at step 1 (or the timed row) and the plot with one point."""
    import signal

    run, err = _interrupted_run(tmp_path, getattr(signal, sig))
    first, last = rows(run)  # step 1, then the interrupted step
    saved = json.loads((run / "trainer_state.json").read_text())["step"]
    assert first["step"] == 1 and last["step"] == saved > 1 and f"after step {saved}" in err
    assert set(first) == set(last) == {"step", "loss", "time", "lr", "steps_per_s"}
    out = gm_run("plot", str(run), "--out", str(tmp_path / "c.png"))
    assert out.returncode == 0, out.stderr
    from gm.plotting import curves

    # the curve of the two rows is a line (a single row would be a dot only)
    line = curves([("r", rows(run))], "loss")
    dot = curves([("r", rows(run)[:1])], "loss")
    import numpy as np

    def blue(img):
        return int((np.asarray(img) == (0, 114, 178)).all(-1).sum())

    assert blue(line) > 3 * blue(dot)


@pytest.mark.slow  # 9 s (durations run, 1 thread, load 4-7)
def test_the_progress_loss_is_a_running_mean_fresh_at_each_redraw(tmp_path):
    """Between rows (log_every far away) the line shows the mean loss of the steps since
    the last row, read when it redraws: it changes between redraws, not one stale number."""
    steps = 3000
    chunks, code = pty_run(
        "train", "gaussian", "--dataset", "swiss-roll", "--steps", str(steps),
        "--set", f"log_every={steps}", "--set", "lr=0.001", "--out", str(tmp_path / "r"),
        "--device", "cpu", "--threads", "1", env={"COLUMNS": "160"},
    )  # fmt: skip
    text = plain("".join(c for _, c in chunks))
    assert code == 0, text[-2000:]
    shown = re.findall(rf"(\d+)/{steps}\s+loss (\S+)", text)
    between = {loss for done, loss in shown if 1 < int(done) < steps}
    assert len(between) >= 3, shown[:20]  # several different values, none "(step 1)"
    assert "(step 1)" not in text
    logged = rows(tmp_path / "r")
    assert [r["step"] for r in logged][:: len(logged) - 1] == [1, steps]


def test_the_live_numbers_are_the_mean_of_the_steps_since_the_last_row():
    import torch

    loop = engine._TrainingLoop.__new__(engine._TrainingLoop)  # only its sums and count
    loop.sums, loop.count = {}, 0
    assert loop.live() is None  # just after a row: the row's numbers stay
    loop.sums = {k: torch.tensor(v) for k, v in
                 {"loss": 6.0, "nll": 3.0, "kl": 1.5, "extra": 9.0}.items()}  # fmt: skip
    loop.count = 3
    assert loop.live() == "loss 2  nll 1  kl 0.5"  # the first three, each / 3 steps


def test_max_time_stops_at_a_step_boundary_saved_and_resumable(tmp_path, tiny_plugin):
    from gm import api

    run = api.train("tiny", "swiss-roll", steps=100_000, out=tmp_path / "r", device="cpu",
                    progress=False, max_time="0.5s", sleep=0.01, log_every=100_000)  # fmt: skip
    state = json.loads((run.path / "trainer_state.json").read_text())
    last = rows(run.path)[-1]
    assert 1 < state["step"] == last["step"] < 100_000  # stopped early, the step saved
    assert 0.5 <= last["time"] < 30 and (run.path / "samples.png").exists()
    again = gm.train("tiny", None, resume=run.path, steps=state["step"] + 3,
                         device="cpu", progress=False).path  # fmt: skip
    assert json.loads((again / "trainer_state.json").read_text())["step"] == state["step"] + 3


@pytest.mark.slow  # 7 s (durations run, 1 thread, load 4-7)
def test_max_time_on_the_command_line_exits_0_with_the_summary(tmp_path):
    out = gm_run(
        "train", "gaussian", "--dataset", "swiss-roll", "--steps", "10000000", "--max-time",
        "1s", "--out", str(tmp_path / "r"), "--device", "cpu", "--threads", "1",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert re.search(r"gm: trained \d+ steps in 1\.\d s", out.stderr)
    assert "stopped at --max-time (1 s) after step" in out.stderr
    assert "trained gaussian; run folder" in out.stdout


@pytest.mark.parametrize(
    "text,seconds",
    [("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400), ("1.5h", 5400), ("2d", 172800),
     (0.25, 0.25)],
)  # fmt: skip
def test_durations(text, seconds):
    from gm.config import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10x", "m", "1h30", "-5m", "0", "nan", "inf", "1m 2q", ""])
def test_bad_durations_are_one_line(text):
    from gm.config import parse_duration
    from gm.errors import GMError

    with pytest.raises(GMError, match="--max-time"):
        parse_duration(text)


def test_no_host_sync_between_log_rows(tmp_path, monkeypatch):
    """The bar moves every step, but the loss is read only at log rows: twice the steps
    with the same rows and checkpoints read the device exactly as often."""
    import torch

    monkeypatch.setattr(engine, "FIRST_ROW_S", 1e9)
    reads = []
    for name in ("item", "__bool__", "__float__", "tolist"):
        real = getattr(torch.Tensor, name)

        def counted(self, *a, _real=real, **kw):
            reads.append(1)
            return _real(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def count(steps: int) -> int:
        reads.clear()
        gm.train(
            "gaussian", "swiss-roll", steps=steps, out=tmp_path / f"r{steps}", device="cpu",
            progress=False, log_every=steps // 2, checkpoint_every=10**9,
        )  # fmt: skip
        return len(reads)

    assert count(40) == count(80)  # rows at 1, 20, 40 and at 1, 40, 80


def test_a_timed_step_stops_counting_when_it_ends(monkeypatch, capsys):
    monkeypatch.setattr(show, "STATUS_DELAY_S", 0.02)
    monkeypatch.setattr(show, "HEARTBEAT_S", 0.05)
    with show.enabled():
        with show.timed("inpainting"):  # shown, but over in under a second: no "done" line
            time.sleep(0.2)
        seen = capsys.readouterr().err
        time.sleep(0.3)  # later work: the status must not go on
    assert "gm: inpainting ..." in seen and capsys.readouterr().err == ""
