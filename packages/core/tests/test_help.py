"""Help from the config: keys, types, defaults and notes read from the source without torch;
--set typos answered with the closest names before torch is imported; tables that never
cut names."""

import dataclasses
import json
import re
import subprocess
import sys

import pytest
from conftest import gm_run, plain, pty_run

from gm import plugins, schema


def test_schema_reads_the_fields_the_class_has(tiny_plugin):
    # The AST reading must agree with the imported dataclass for every installed model.
    for name, spec in plugins.registry("models").items():
        for attr in ("Config", "SampleOptions", "EvaluateOptions"):
            read = schema.fields(spec, attr)
            assert read is not None, (name, attr)
            cls = getattr(spec.load(), attr)
            real = {f.name: f for f in dataclasses.fields(cls)}
            assert [f.name for f in read] == list(real), (name, attr)
            own = schema.recipe_defaults(spec) if attr == "Config" else {}
            for f in read:  # literal defaults agree (the model's own recipe applied)
                want = own.get(f.name, real[f.name].default)
                if f.default and f.default[0] in "'\"0123456789-TF(":
                    expected = repr(tuple(want) if isinstance(want, list) else want)
                    assert f.default == expected, (name, f.name)


def test_schema_keeps_the_note_and_the_recipe_default():
    fields = {f.name: f for f in schema.fields(plugins.get("models", "gaussian"))}
    assert "split evenly" in fields["batch_size"].note  # the comment beside TrainConfig's field
    assert fields["precision"].type == "auto | fp32 | bf16"


def test_train_help_lists_the_config_without_torch():
    code = (
        "import sys\nfrom gm.cli import main\n"
        "try:\n    main(['train', 'gaussian', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NOTORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().endswith("NOTORCH"), out.stderr
    for key in ("batch_size", "log_every", "checkpoint_every"):
        assert key in out.stdout
    assert "split evenly across torchrun" in out.stdout


def test_set_typo_gets_the_closest_key_before_torch():
    code = (
        "import sys\nfrom gm.cli import main\n"
        "try:\n    main(['train', 'gaussian', '--dataset', 'swiss-roll', '--set', 'stepz=3'])\n"
        "except SystemExit as e:\n    print('EXIT', e.code, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "EXIT 2 False" in out.stdout, out.stdout + out.stderr
    assert "Did you mean 'steps'?" in out.stderr
    extra = gm_run("train", "gaussian", "--dataset", "swiss-roll", "--log-evry", "3")
    assert extra.returncode == 2 and "'log_every'" in extra.stderr


def test_a_key_with_no_close_name_points_at_help_instead_of_listing_every_key():
    out = gm_run("train", "gaussian", "--dataset", "swiss-roll", "--set", "nonexistent=1")
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("gm: error: unknown config key 'nonexistent' for model 'gaussian'")
    assert re.search(r"No valid key is close; gm train gaussian --help lists all \d+\.$", line)


def test_list_models_name_shows_options_and_data():
    out = gm_run("list-models", "gaussian")
    assert out.returncode == 0, out.stderr
    assert "data: vector, image" in out.stdout and "swiss-roll" in out.stdout
    assert "batch_size" in out.stdout
    as_json = json.loads(gm_run("list-models", "gaussian", "--json").stdout)
    assert "swiss-roll" in as_json["datasets"]
    assert {f["name"] for f in as_json["config"]} >= {"steps", "lr"}


LONG = "an-uncommonly-long-dataset-name-for-tables"


@pytest.fixture
def long_named_plugin(tmp_path):
    from conftest import make_dist

    code = (
        "import gm\nfrom gm.specs import DatasetSpec\n"
        "@gm.hookimpl\ndef gm_datasets():\n"
        f"    return [DatasetSpec('{LONG}', 'x:y', 'a summary ' * 12, licence='a long licence name here')]\n"
    )
    return make_dist(tmp_path / "p", "gm-long", "long", "gm_long_names", code)


def test_tables_never_cut_names_in_a_pipe(long_named_plugin):
    out = gm_run("list-datasets", paths=(long_named_plugin,), env={"COLUMNS": "80"})
    assert out.returncode == 0
    assert LONG in out.stdout and "…" not in out.stdout
    licence = [ln.split("│")[5].strip() for ln in out.stdout.splitlines() if ln.count("│") == 7]
    assert "a long licence name here" in " ".join(x for x in licence if x)  # wrapped, not cut


def test_tables_never_cut_names_in_a_terminal(long_named_plugin):
    chunks, code = pty_run(
        "list-datasets", paths=(long_named_plugin,), env={"COLUMNS": "60", "LINES": "50"}
    )
    text = plain("".join(c for _, c in chunks))
    assert code == 0 and LONG in text and "…" not in text


def test_tables_keep_their_right_edge_and_wrap_prose_at_the_width(long_named_plugin):
    out = gm_run("list-datasets", paths=(long_named_plugin,), env={"COLUMNS": "80"})
    rows = [ln.rstrip() for ln in out.stdout.splitlines()[1:] if ln.strip()]
    assert rows and all(ln[-1] in "┓┃┩│┘" for ln in rows), rows  # nothing cropped
    listed = gm_run("plugins").stdout
    assert "gm-core" in listed and " any " not in listed  # no problems: "none"


@pytest.mark.parametrize("columns", [80, 120])
def test_list_models_is_one_line_per_model_at_the_terminal_width(columns):
    from gm import plugins

    out = gm_run("list-models", env={"COLUMNS": str(columns)})
    assert out.returncode == 0, out.stderr
    head, *lines, foot = out.stdout.splitlines()
    assert max(map(len, out.stdout.splitlines())) <= columns
    names = sorted(m["name"] for m in json.loads(gm_run("list-models", "--json").stdout))
    assert sorted(ln.split()[0] for ln in lines) == names  # one line each, nothing else
    assert head.split() == ["model", "data", "summary"] and "gm list-models NAME" in foot
    by_name = {ln.split()[0]: ln for ln in lines}
    assert "vector, image" in by_name["gaussian"]  # the data it takes
    wide = gm_run("list-models", env={"COLUMNS": "400"}).stdout
    summary = plugins.get("models", "gaussian").summary.split(". ")[0]
    assert summary.rstrip(".") in wide and "…" not in wide  # cut only when it must be


def test_a_summary_is_cut_at_its_first_sentence_not_inside_parentheses():
    from gm.cli import _first_sentence

    text = "Improved DDPM (Ho et al. 2020; Nichol & Dhariwal 2021): the baseline. More."
    assert (
        _first_sentence(text)
        == "Improved DDPM (Ho et al. 2020; Nichol & Dhariwal 2021): the baseline"
    )
    assert _first_sentence("One sentence.") == "One sentence"
    assert _first_sentence("Ends at 1.5 not. Here") == "Ends at 1.5 not"


def test_fast_path_switches_show_their_three_values():
    from gm import plugins, schema

    fields = {f.name: f for f in schema.fields(plugins.get("models", "gaussian"))}
    assert fields["compile"].type == fields["fused_optimizer"].type == "auto | on | off"
