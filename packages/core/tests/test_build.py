"""One build phase (gm.build) and one request check (gm.request): the config shown is the
config that trains, the device reaches it only through the model's declared hooks, the
Python API checks a request as the CLI does, and core's modules import without a cycle."""

import ast
import json
from pathlib import Path

import pytest
import torch

import gm
from gm import build, plugins
from gm import config as configs
from gm.api import as_dataset
from gm.data import DataInfo
from gm.errors import GMError
from gm.request import TrainRequest, check

SRC = Path(gm.__file__).parent
KW = dict(device="cpu", progress=False)


# --- no import cycle among core modules ------------------------------------------------
def _module_imports(path: Path) -> set[str]:
    """The gm modules a core module imports when it is imported (module level only;
    imports inside functions run later and cannot make a cycle at import time)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "gm"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "gm":  # from gm import checkpoint: a module, or gm itself
                for a in node.names:
                    found.add(f"gm.{a.name}" if (SRC / f"{a.name}.py").exists() else "gm")
            elif node.module.startswith("gm."):
                found.add(node.module)
    return found


def _graph() -> dict[str, set[str]]:
    mods = {f"gm.{p.stem}": p for p in SRC.glob("*.py") if p.stem != "__init__"}
    mods["gm"] = SRC / "__init__.py"
    return {
        name: {m for m in _module_imports(p) if m in mods and m != name} for name, p in mods.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return []


def test_core_modules_import_without_a_cycle():
    graph = _graph()
    assert "gm.checkpoint" in graph["gm.build"] and "gm.build" in graph["gm.engine"]
    assert _cycle(graph) == [], " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_run_imports_no_api_and_checkpoint_builds_nothing():
    run = ast.parse((SRC / "run.py").read_text())
    names = {
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(run)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    assert not {"gm.api", "api"} & names
    assert not any(
        isinstance(n, ast.ImportFrom) and n.module == "gm" and any(a.name == "api" for a in n.names)
        for n in ast.walk(run)
    )
    from gm import checkpoint

    for gone in ("build", "make_trainer", "model_spec", "load"):  # building lives in gm.build
        assert not hasattr(checkpoint, gone), gone


# --- the config shown is the config that trains --------------------------------------------
def _strokes() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    pen = (torch.rand(40, 60, 1, generator=g) < 0.1).float()
    return torch.cat([torch.randn(40, 60, 2, generator=g), pen], dim=-1)


def _data_for(spec) -> object:
    kind = (spec.modalities or ("vector",))[0]
    names = {"vector": "swiss-roll", "sequence": "markov-chain"}
    if kind in names:
        return names[kind]
    if kind == "image":
        return as_dataset(torch.rand(40, 1, 8, 8), name="tiny-images")
    return as_dataset(_strokes(), name="strokes")


MODELS = sorted(plugins.registry("models"))


@pytest.mark.parametrize("model", MODELS)
def test_show_config_is_what_config_json_records(model, tmp_path):
    """For every registered model: what --show-config prints (gm.build.show_config) is the
    config the run trains with and records, device-dependent choices included."""
    spec = plugins.get("models", model)
    data = _data_for(spec)
    if not isinstance(data, str) and spec.modalities and data.info.modality not in spec.modalities:
        pytest.skip("no small dataset of its kind at hand")
    sets = {"batch_size": 8}
    own = spec.recipes.get(spec.recipe, {}) if spec.recipe else {}
    if isinstance(own, dict):  # the thesis's 1024-wide nets: narrower (the same either way)
        sets.update({k: 8 for k in ("hidden", "d_hidden", "d_mlp") if k in own})
    request = TrainRequest(model, data, steps=1, overrides=sets, device="cpu")
    shown = json.loads(configs.dumps(build.show_config(check(request))))
    run = gm.train(model, data, steps=1, out=tmp_path / "run", **sets, **KW)
    assert shown == run.record["config"]


def test_the_cli_shows_what_trains_for_a_recipe_named_with_set(tmp_path, capsys):
    """The issue's example: walkback's recipe named with --set on the 2-D toy; --show-config
    used to print the data default's schedule (appendix) and hidden 0."""
    pytest.importorskip("gm_walkback")
    from gm.cli import main

    args = ["train", "walkback", "--dataset", "swiss-roll", "--set", "recipe=algorithm1",
            "--device", "cpu", "--steps", "1", "--out", str(tmp_path / "run")]  # fmt: skip
    for extra in (["--show-config"], []):
        try:
            main([*args, *extra])
        except SystemExit as done:
            assert done.code in (0, None)
        if extra:
            shown = json.loads(capsys.readouterr().out)
    assert shown["schedule"] == "doubling" and shown["hidden"] == 256  # CPU's width
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert shown == recorded


# --- the device reaches the config only through the declared hooks ------------------------
INFOS = {
    "vector": DataInfo("swiss-roll", "vector", (2,)),
    "image": DataInfo("mnist-5k", "image", (1, 28, 28)),
    "sequence": DataInfo("markov-chain", "sequence", (64,), 8),
    "strokes": DataInfo("strokes", "strokes", (60, 3)),
}
CASES = [(m, kind) for m in MODELS for kind in (plugins.get("models", m).modalities or ("vector",))]


@pytest.mark.parametrize(("model", "kind"), CASES)
def test_the_device_enters_only_through_resolve_config_and_the_recipe(model, kind, monkeypatch):
    """Resolving for "cuda" touches no GPU; with the model's two device hooks (its recipe's
    function and resolve_config) told "cpu", the configs for "cpu" and "cuda" are equal:
    nothing else (default_config, the machine) chooses by device."""
    info = INFOS[kind]

    def no_gpu(*a, **k):
        raise AssertionError("resolving a config must not touch CUDA")

    monkeypatch.setattr(torch.cuda, "is_available", no_gpu)
    monkeypatch.setattr(torch.cuda, "init", no_gpu)
    cpu, cuda = (build.resolve(model, info, d)[1] for d in ("cpu", "cuda"))
    real_recipe = build.recipe
    cls = plugins.load(plugins.get("models", model))
    real_resolve = cls.resolve_config.__func__

    monkeypatch.setattr(
        build, "recipe", lambda s, n, i, d: real_recipe(s, n, i, torch.device("cpu"))
    )
    monkeypatch.setattr(cls, "resolve_config", classmethod(
        lambda c, cfg, i, d: real_resolve(c, cfg, i, torch.device("cpu"))))  # fmt: skip
    blind = [build.resolve(model, info, d)[1] for d in ("cpu", "cuda")]
    assert blind[0] == blind[1] == cpu
    assert type(cuda) is type(cpu)


def test_walkback_chooses_by_device_in_its_hooks_only():
    """The hooks do choose: walkback's width (resolve_config) and its CPU image setup (the
    recipe) differ by device, and in no other field."""
    pytest.importorskip("gm_walkback")
    from gm_walkback import recipes

    toy = [build.resolve("walkback", INFOS["vector"], d)[1] for d in ("cpu", "cuda")]
    assert (toy[0].hidden, toy[1].hidden) == (256, 4096)
    differ = {f for f in vars(toy[0]) if getattr(toy[0], f) != getattr(toy[1], f)}
    assert differ == {"hidden", "unet_width"}
    image = [build.resolve("walkback", INFOS["image"], d)[1] for d in ("cpu", "cuda")]
    assert (image[0].network, image[1].network) == ("mlp", "conv")
    differ = {f for f in vars(image[0]) if getattr(image[0], f) != getattr(image[1], f)}
    assert differ and differ <= {*recipes.CPU_IMAGE, "steps", "hidden", "unet_width"}


# --- one request check, for the CLI and the API -----------------------------------------
def test_the_api_refuses_data_the_model_does_not_train_on(tmp_path):
    with pytest.raises(GMError, match=r"model 'gaussian' trains on vector/image data; "
                       r"dataset 'markov-chain' is sequence data"):  # fmt: skip
        gm.train("gaussian", "markov-chain", out=tmp_path / "a", **KW)
    tokens = torch.randint(0, 5, (30, 12))
    with pytest.raises(GMError, match="dataset 'tensor' is sequence data"):
        gm.train("gaussian", tokens, out=tmp_path / "b", **KW)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_cli_refuses_it_with_the_same_line():
    from conftest import gm_run

    out = gm_run("train", "gaussian", "--dataset", "markov-chain", "--device", "cpu")
    assert out.returncode == 2
    assert "model 'gaussian' trains on vector/image data; dataset 'markov-chain' is sequence" in (
        out.stderr
    )


def test_resume_rules_are_checked_before_anything_is_built(tmp_path):
    run = gm.train("gaussian", "swiss-roll", steps=2, out=tmp_path / "r", seed=4, **KW)
    for given in ({"seed": 1}, {"lr": 0.1}, {"data": "circle"}, {"out": tmp_path / "x"}):
        kw = {"data": None, **given}
        data = kw.pop("data")
        with pytest.raises(GMError, match="only --steps may change"):
            gm.train("gaussian", data, resume=run, steps=4, **{**KW, **kw})
    with pytest.raises(GMError, match="already at step 2; give --steps above 2"):
        gm.train("gaussian", resume=run, **KW)
    checked = check(TrainRequest("gaussian", resume=run.path, steps=3))
    assert (checked.dataset, checked.seed) == ("swiss-roll", 4)  # the run's own
    assert not (tmp_path / "x").exists()


def test_a_recipe_the_model_does_not_have_is_one_line():
    with pytest.raises(GMError, match="model 'gaussian' has no recipe 'fast'; it has no recipes"):
        check(TrainRequest("gaussian", "swiss-roll", overrides={"recipe": "fast"}))


def test_loading_a_run_of_a_model_not_installed_names_its_plugin(tmp_path):
    run = gm.train("gaussian", "swiss-roll", steps=1, out=tmp_path / "r", **KW)
    record = json.loads((run / "config.json").read_text())
    record.update(gm_model="ghost", plugin="gm-ghost")
    (run / "config.json").write_text(json.dumps(record))
    with pytest.raises(
        GMError, match="model 'ghost', which is not installed; pip install gm-ghost"
    ):
        gm.load(run, device="cpu")
    with pytest.raises(GMError, match="pip install gm-ghost"):
        build.from_record(record)


def test_a_run_is_checked_against_its_weights_on_the_meta_device_first(tmp_path, tiny_plugin, monkeypatch):  # fmt: skip
    """A config edited to another size is refused from the weights file's header and a build
    on the meta device, before any real build (a huge size never allocates)."""
    run = gm.train("tiny", "circle", steps=1, out=tmp_path / "r", **KW)
    record = json.loads((run / "config.json").read_text())
    record["config"]["width"] += 1
    (run / "config.json").write_text(json.dumps(record))
    cls = plugins.load(plugins.get("models", "tiny"))
    built, real = [], cls.__init__

    def init(self, config, info, device="cpu"):
        built.append(torch.device(device).type)
        real(self, config, info, device)

    monkeypatch.setattr(cls, "__init__", init)
    with pytest.raises(GMError, match="does not match its config.json"):
        gm.load(run, device="cpu")
    assert built == ["meta"]
