"""Plugin discovery through real entry points (tiny dist-info folders on sys.path): whatever a
plugin does wrong is a warning naming its distribution, and gm goes on without that part."""

import json

import pytest
from conftest import TINY, error_lines, gm_run, make_dist

GOOD_DATASET = """
import gm
from gm.specs import DatasetSpec

@gm.hookimpl
def gm_datasets():
    return [DatasetSpec("{name}", "gm.builtins.toy:circle", modality="vector", shape=(2,))]
"""

# distribution -> (entry point, module source): one of each way a plugin can be broken
BAD = {
    "gm-garbage": (
        "garbage",
        "import gm\n\n@gm.hookimpl\ndef gm_models():\n    return ['not a spec', 42]\n",
    ),
    "gm-number": ("number", "import gm\n\n@gm.hookimpl\ndef gm_datasets():\n    return 42\n"),
    "gm-raiser": (
        "raiser",
        "import gm\n\n@gm.hookimpl\ndef gm_datasets():\n    raise RuntimeError('db down')\n",
    ),
    "gm-exiter": ("exiter", "import sys\nsys.exit(3)\n"),
    "gm-typo": ("typo", "import gm\n\n@gm.hookimpl\ndef gm_model():\n    return []\n"),
    "gm-broken": ("broken", "raise ImportError('no module named shiny')\n"),
    "gm-unloadable": (
        "unloadable",
        "import gm\nfrom gm.specs import ModelSpec, TrainerSpec\n\n@gm.hookimpl\ndef gm_models():\n"
        "    return [ModelSpec('ghost', trainer='ghost')]\n\n"
        "@gm.hookimpl\ndef gm_trainers():\n"
        "    return [TrainerSpec('ghost', 'gm_nowhere.trainer:Ghost')]\n",
    ),
    "gm-polish": (
        "polish",
        "import gm\nfrom gm.specs import CommandSpec\n\n@gm.hookimpl\ndef gm_commands():\n"
        '    return [CommandSpec("polish", "gm_missing_module:polish", "broken verb")]\n',
    ),
}


@pytest.fixture(scope="module")
def bad_paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    paths = [
        make_dist(root / entry, dist, entry, f"gm_{entry}_plugin", code)
        for dist, (entry, code) in BAD.items()
    ]
    # the same entry-point name from a second distribution
    paths.append(make_dist(root / "twin", "gm-twin", "garbage", "gm_twin_plugin", "x = 1\n"))
    return (TINY, *paths)


def only_warnings(out):
    assert "Traceback" not in out.stderr, out.stderr
    assert [ln for ln in error_lines(out) if not ln.startswith("step ")] == [], out.stderr


@pytest.mark.parametrize(
    "args", [["--help"], ["plugins", "--json"], ["list-models", "--json"], ["list-datasets"]]
)
def test_listing_survives_every_kind_of_broken_plugin(bad_paths, args):
    out = gm_run(*args, paths=bad_paths)
    assert out.returncode == 0, out.stderr
    only_warnings(out)
    if args[0] == "list-models":
        names = {m["name"] for m in json.loads(out.stdout)}
        assert {"tiny", "gaussian", "ghost"} <= names  # good plugins' records are all there
    if args[0] == "plugins":
        rows = {r["distribution"]: r for r in json.loads(out.stdout)}
        for dist in BAD:
            if dist not in ("gm-unloadable", "gm-polish"):
                assert rows[dist]["problems"], dist  # gm plugins shows what is wrong
        assert "unknown hook" in rows["gm-typo"]["problems"][0]
        assert "sys.exit(3)" in rows["gm-exiter"]["problems"][0]
        assert "db down" in rows["gm-raiser"]["problems"][0]
        assert "'not a spec'" in rows["gm-garbage"]["problems"][0]
        assert rows["gm-tiny"]["problems"] == [] and rows["gm-tiny"]["hooks"] == [
            "gm_models",
            "gm_trainers",
        ]
        warned = out.stderr
        for dist in [*BAD, "gm-twin"]:
            if dist != "gm-unloadable":
                assert dist in warned, dist  # every warning names the distribution


@pytest.mark.slow  # 10 s (durations run, 2 threads, load 7)
def test_training_works_beside_broken_plugins(bad_paths, tmp_path):
    out = gm_run(
        "train", "tiny", "--dataset", "circle", "--steps", "2", "--out", str(tmp_path / "r"),
        "--device", "cpu", paths=bad_paths,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    only_warnings(out)


@pytest.mark.slow  # 5 s (durations run, 2 threads, load 7)
def test_a_model_whose_code_cannot_load_is_one_line(bad_paths):
    out = gm_run("train", "ghost", "--dataset", "circle", "--device", "cpu", paths=bad_paths)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = error_lines(out)
    assert "'ghost'" in line and "gm-unloadable" in line and "gm_nowhere" in line


def test_duplicate_names_are_listed_once_and_refused_by_name(tmp_path):
    a = make_dist(
        tmp_path / "a", "gm-alpha", "alpha", "gm_alpha_plugin", GOOD_DATASET.format(name="ring")
    )
    b = make_dist(
        tmp_path / "b", "gm-beta", "beta", "gm_beta_plugin", GOOD_DATASET.format(name="ring")
    )
    out = gm_run("list-datasets", "--json", paths=(a, b))
    assert out.returncode == 0 and "gm-alpha" in out.stderr and "gm-beta" in out.stderr
    assert [d["name"] for d in json.loads(out.stdout)].count("ring") == 1
    out = gm_run("train", "gaussian", "--dataset", "ring", paths=(a, b))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = error_lines(out)
    assert "gm-alpha" in line and "gm-beta" in line and "GM_DISABLE_PLUGINS" in line


def test_disable_and_load_plugins_select(tmp_path):
    a = make_dist(
        tmp_path / "a", "gm-alpha", "alpha", "gm_alpha_plugin", GOOD_DATASET.format(name="ring")
    )
    names = lambda out: {d["name"] for d in json.loads(out.stdout)}  # noqa: E731
    assert "ring" in names(gm_run("list-datasets", "--json", paths=(a,)))
    assert "ring" not in names(
        gm_run("list-datasets", "--json", paths=(a,), env={"GM_DISABLE_PLUGINS": "gm-alpha"})
    )
    only = gm_run("list-models", "--json", paths=(a, TINY), env={"GM_LOAD_PLUGINS": "alpha"})
    assert "tiny" not in {m["name"] for m in json.loads(only.stdout)}


def test_registry_checks_records_in_process(tmp_path, monkeypatch):
    """The same boundary without a subprocess: a garbage record is dropped with a warning."""
    import warnings

    from gm import plugins

    d = make_dist(
        tmp_path / "g", "gm-garbage", "garbage", "gm_garbage_plugin", BAD["gm-garbage"][1]
    )
    monkeypatch.syspath_prepend(str(d))
    plugins.reset()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            models = plugins.registry("models")
        assert "gaussian" in models and all(isinstance(k, str) for k in models)
        texts = [str(w.message) for w in caught if issubclass(w.category, plugins.PluginWarning)]
        assert any("gm-garbage" in t and "'not a spec'" in t for t in texts)
        assert any("gm-garbage" in t and "42" in t for t in texts)
    finally:
        plugins.reset()


COMPONENT_PLUGIN = """
import gm
from gm.specs import CapabilitySpec, FastPathSpec, ModelSpec, TransitionOperatorSpec

@gm.hookimpl
def gm_capabilities():
    return [CapabilitySpec("juggle", summary="gm juggle", lacks="drops every ball")]

@gm.hookimpl
def gm_fast_paths():
    return [
        FastPathSpec("warp", summary="a plugin's own path", devices=("cpu",)),
        FastPathSpec("compile", summary="core's name: ignored", devices=("cpu",)),
        FastPathSpec("bad-devices", devices="cpu"),
    ]

@gm.hookimpl
def gm_transition_operators():
    return [
        TransitionOperatorSpec("plain", "gm_parts_impl:Plain", "has build"),
        TransitionOperatorSpec("no-build", "gm_parts_impl:NoBuild", "lacks build"),
    ]

@gm.hookimpl
def gm_models():
    return [
        ModelSpec("orphan", trainer="no-such-trainer"),
        ModelSpec("wrong-can", trainer="gaussian", capabilities=("fly",)),
        ModelSpec(
            "can-all", trainer="gaussian", capabilities=("sample", "evaluate", "juggle")
        ),
    ]
"""

COMPONENT_IMPL = """
class Plain:
    @classmethod
    def build(cls, config, info):
        return cls()

class NoBuild:
    pass
"""


def test_components_come_from_the_registry_and_models_from_their_trainer(tmp_path, monkeypatch):
    import warnings

    from gm import plugins
    from gm.errors import GMError

    d = make_dist(tmp_path / "p", "gm-parts", "parts", "gm_parts_plugin", COMPONENT_PLUGIN)
    (d / "gm_parts_impl.py").write_text(COMPONENT_IMPL)
    monkeypatch.syspath_prepend(str(d))
    plugins.reset()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cls = plugins.component("transition_operators", "plain")
            models = plugins.registry("models")
        assert cls.__name__ == "Plain" and cls.build(None, None).__class__ is cls
        with pytest.raises(GMError, match="no build"):
            plugins.component("transition_operators", "no-build")
        with pytest.raises(GMError, match="unknown transition operator 'plian'.*'plain'"):
            plugins.component("transition_operators", "plian")
        with pytest.raises(ValueError, match="kind must be one of"):
            plugins.component("models", "gaussian")
        # a model's trainer class is the registered trainer's
        from gm.builtins.gaussian import GaussianTrainer

        assert plugins.load(plugins.get("models", "gaussian")) is GaussianTrainer
        with pytest.raises(GMError, match="unknown trainer 'no-such-trainer'"):
            plugins.load(models["orphan"])
        # an undeclared capability is a malformed record: dropped with a warning
        assert "wrong-can" not in models and "can-all" in models
        texts = [str(w.message) for w in caught if issubclass(w.category, plugins.PluginWarning)]
        assert any("gm-parts" in t and "wrong-can" in t for t in texts), texts
    finally:
        plugins.reset()


def test_a_plugins_capabilities_and_fast_paths_are_core_s(tmp_path, monkeypatch):
    """Core keeps the mechanism, plugins bring the vocabulary: a capability a plugin
    declares is one models may list and verbs refuse in its words; a fast path it
    declares follows its own "auto" row; core's rows cannot be redefined."""
    import torch

    from gm import fastpath, plugins, run
    from gm.errors import GMError
    from gm.specs import ModelSpec

    d = make_dist(tmp_path / "p", "gm-parts", "parts", "gm_parts_plugin", COMPONENT_PLUGIN)
    monkeypatch.syspath_prepend(str(d))
    plugins.reset()
    try:
        with pytest.warns(plugins.PluginWarning, match="bad-devices"):
            plugins.registry("fast_paths")
        assert "juggle" in plugins.capabilities() and "juggle" not in run._LACKS
        assert "juggle" in plugins.get("models", "can-all").capabilities
        every = ModelSpec("every", trainer="gaussian", capabilities=plugins.capabilities())
        assert plugins._is_model(every)  # declaring all of them is allowed
        assert run.lacks("gaussian", "juggle") == (
            "model 'gaussian' drops every ball; models that can: can-all."
        )
        cpu, cuda = torch.device("cpu"), torch.device("cuda")
        assert fastpath.use("auto", "warp", cpu) and not fastpath.use("auto", "warp", cuda)
        assert fastpath.faster_on()["compile"] == ("cuda",)  # core's row wins
        assert not fastpath.use("auto", "compile", cpu)
        assert "bad-devices" not in fastpath.faster_on()
        with pytest.raises(GMError, match="unknown capability 'jugle'. Did you mean 'juggle'"):
            plugins.get("capabilities", "jugle")
    finally:
        plugins.reset()


def test_every_hook_is_read_by_core():
    """A hook nobody reads invites plugins to register parts that have no effect."""
    import ast
    from pathlib import Path

    import gm
    from gm import hookspecs, plugins

    src = Path(gm.__file__).parent
    readers = {
        "transition_operators": "component",
        "sequence_generators": "component",
        "discriminators": "component",
        "trainers": "ModelSpec.load",
    }
    for kind, hook in plugins.KINDS.items():
        assert hasattr(hookspecs, hook)
        if kind in readers:
            continue
        uses = [
            p for p in src.rglob("*.py") if p.name != "plugins.py" and f'"{kind}"' in p.read_text()
        ]
        assert uses, f"nothing in core reads the {hook} registry"
    tree = ast.parse((src / "specs.py").read_text())
    assert any(isinstance(n, ast.Constant) and n.value == "trainers" for n in ast.walk(tree)), (
        "ModelSpec.load must read the trainers registry"
    )


PARTS_PLUGIN = """
import gm
from gm.specs import (DiscriminatorSpec, SequenceGeneratorSpec, TrainerSpec,
                      TransitionOperatorSpec)

@gm.hookimpl
def gm_transition_operators():
    return [TransitionOperatorSpec("hop", "gm_kit_impl:Hop", "one hop. Then more")]

@gm.hookimpl
def gm_sequence_generators():
    return [SequenceGeneratorSpec("chatter", "gm_kit_impl:Chatter")]  # no summary: docstring

@gm.hookimpl
def gm_discriminators():
    return [DiscriminatorSpec("judge", "gm_kit_impl:Judge", "a fair judge")]

@gm.hookimpl
def gm_trainers():
    return [TrainerSpec("coach", "gm_kit_impl:Coach", "trains the team")]
"""

PARTS_IMPL = """
raise ImportError("listing must read the source, not import it")

class Chatter:
    \"\"\"Talks in tokens (Smith et al. 2020). Second sentence.\"\"\"
"""


def test_list_components_lists_every_kind_with_plugin_and_first_sentence(tmp_path):
    d = make_dist(tmp_path / "kit", "gm-kit", "kit", "gm_kit_plugin", PARTS_PLUGIN)
    (d / "gm_kit_impl.py").write_text(PARTS_IMPL)
    out = gm_run("list-components", "--json", paths=(d,))
    assert out.returncode == 0, out.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(out.stdout)}
    assert rows[("transition-operators", "hop")] == {
        "kind": "transition-operators",
        "name": "hop",
        "plugin": "gm-kit",
        "summary": "one hop",
    }
    assert (
        rows[("sequence-generators", "chatter")]["summary"] == "Talks in tokens (Smith et al. 2020)"
    )
    assert rows[("discriminators", "judge")]["plugin"] == "gm-kit"
    assert rows[("trainers", "coach")]["summary"] == "trains the team"
    assert rows[("trainers", "gaussian")]["plugin"] == "gm-core"
    assert ("models", "gaussian") in rows and ("datasets", "swiss-roll") in rows
    one = gm_run("list-components", "sequence_generators", paths=(d,))
    assert one.returncode == 0, one.stderr
    lines = one.stdout.splitlines()
    assert lines[0].startswith("sequence-generators") and "--set generator=NAME" in lines[0]
    assert any(ln.split()[:2] == ["chatter", "gm-kit"] for ln in lines[1:]), one.stdout
    assert "hop" not in one.stdout


def test_list_components_refuses_an_unknown_kind_in_one_line():
    out = gm_run("list-components", "discriminator")
    assert out.returncode == 2
    assert error_lines(out) == [
        "gm: error: unknown kind of component 'discriminator'; choose one of "
        "transition-operators, sequence-generators, discriminators, trainers, models, "
        "datasets. Did you mean 'discriminators'?"
    ]
