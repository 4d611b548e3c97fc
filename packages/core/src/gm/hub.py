"""The Hugging Face Hub: a run folder is already Hub-shaped (``config.json`` +
``model.safetensors``), so pushing uploads it with a generated model card, and every verb
that takes a RUN also takes ``hf://OWNER/NAME`` or ``OWNER/NAME`` (downloaded once into the
Hub's own cache; ``HF_HUB_OFFLINE=1`` reads that cache without the network).

Nothing here imports torch.
"""

from __future__ import annotations

import json
import re
import shutil
from functools import cache
from pathlib import Path
from typing import Any

from gm.errors import GMError, GMFault

PREFIX = "hf://"
CARD = "README.md"
# What a model repo holds: enough to load, sample and plot; never the resume state.
FILES = ("config.json", "model.safetensors", "metrics.jsonl", "samples.png")
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def repo_id(run: str | Path) -> str | None:
    """The Hub repo a RUN argument names, or None for a local path.

    ``hf://a/b`` always names a repo (also as ``hf:/a/b``, what ``Path`` makes of it); a
    bare ``a/b`` does when no such local path exists.
    """
    text = str(run)
    for prefix in (PREFIX, "hf:/"):
        if text.startswith(prefix):
            return text[len(prefix) :].strip("/")
    if not Path(text).exists() and _REPO.match(text):
        return text
    return None


def _need_hub() -> None:
    import importlib.util

    if importlib.util.find_spec("huggingface_hub") is None:
        raise GMError("the Hugging Face Hub needs huggingface_hub: pip install 'gm-core[hub]'.")


@cache
def download(repo: str) -> Path:
    """The local snapshot of a model repo (from the cache when it is there)."""
    if not _REPO.match(repo):
        raise GMError(f"{repo!r} is not a Hub repo id; it looks like OWNER/NAME.")
    _need_hub()
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from gm import progress

    progress.status(f"fetching {repo} from the Hugging Face Hub")
    try:
        path = snapshot_download(repo, allow_patterns=[*FILES, CARD])
    except LocalEntryNotFoundError:
        raise GMError(
            f"{repo} is not a local run folder, and the Hub model {repo} is not in the cache "
            "and cannot be downloaded now (offline?); check the name, or unset HF_HUB_OFFLINE."
        ) from None
    except network_errors() as err:
        raise GMError(
            f"{repo} is not a local run folder, and the Hub model {repo} could not be fetched "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})."
        ) from None
    return Path(path)


def resolve(run: str | Path) -> Path:
    """A RUN argument as a local folder: itself, or the Hub snapshot it names."""
    repo = repo_id(run)
    return download(repo) if repo is not None else Path(run)


def default_out(run: str | Path, name: str) -> Path:
    """Where a verb writes by default: inside the run folder, never the working folder."""
    if repo_id(run) is not None:
        raise GMError(f"{run} is a Hub model; say where to write with --out FILE.")
    return Path(run) / name


# --- pushing ----------------------------------------------------------------------
def _rows(run: Path) -> list[dict[str, Any]]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _dataset_facts(name: str) -> tuple[str, str]:
    """(licence, Hub dataset id or '') of a registered dataset; ('', '') if unknown."""
    from gm import plugins

    try:
        spec = plugins.get("datasets", name.partition(":")[0])
    except GMError:
        return "", ""
    found = re.search(r"Hub ([\w.-]+/[\w.-]+)", spec.source)
    return spec.licence, found.group(1) if found else ""


def card(run: str | Path, repo: str, *, license: str = "other") -> str:
    """The model card (``README.md``) for a run pushed to ``repo``."""
    run = Path(run)
    record = json.loads((run / "config.json").read_text())
    model, dataset = record["gm_model"], record["dataset"]
    data_licence, data_repo = _dataset_facts(dataset)
    rows = _rows(run)
    last = rows[-1] if rows else {}
    plugin = record.get("plugin", "")
    front = [
        "---",
        "library_name: gm",
        f"license: {license}",
        "tags:",
        "- gm",
        f"- {model}",
        "- generative",
        *(["datasets:", f"- {data_repo}"] if data_repo else []),
        "---",
    ]
    versions = f"gm-core {record.get('gm_core_version', '?')}"
    if plugin and plugin != "gm-core":
        versions += f", {plugin} {record.get('plugin_version', '?')}"
    # the hub extra: loading hf://OWNER/NAME needs huggingface_hub
    install = "'gm-core[hub]'" + (f" {plugin}" if plugin and plugin != "gm-core" else "")
    lines = [
        *front,
        "",
        f"# {model} on {dataset}",
        "",
        f"A `{model}` model trained with gm ({versions}) on `{dataset}`"
        + (f" (data licence: {data_licence})" if data_licence else "")
        + f", seed {record.get('seed', 0)}, {last.get('step', '?')} steps.",
        "",
        "## Use",
        "",
        "```bash",
        f"pip install {install}",
        f"gm sample hf://{repo} -n 64 --out samples.png",
        "```",
        "",
        "```python",
        "import gm",
        "",
        f'model = gm.load("hf://{repo}")',
        "samples = model.sample(16)",
        "```",
        "",
    ]
    if (run / "samples.png").exists():
        lines += ["## Samples", "", "![samples](samples.png)", ""]
    if last:
        lines += ["## Training metrics (last logged step)", "", "| metric | value |", "|---|---|"]
        lines += [
            f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |"
            for k, v in last.items()
        ]
        key = "loss" if "loss" in last else None
        if key:
            best = min(rows, key=lambda r: r.get(key, float("inf")))
            lines += ["", f"Best {key}: {best[key]:.6g} at step {best['step']}."]
        lines.append("")
    lines += ["## Config", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | `{v!r}` |" for k, v in record["config"].items()]
    lines += [
        "",
        f"Licence of these weights: {license}"
        + (f"; they are trained on data licensed {data_licence}." if data_licence else "."),
        "The gm code is MIT-licensed.",
        "",
    ]
    return "\n".join(lines)


def prepare(run: str | Path, repo: str, folder: Path, *, license: str = "other") -> list[str]:
    """Write what a push uploads into ``folder``; returns the file names (sorted)."""
    run = Path(run)
    if not (run / "config.json").exists() or not (run / "model.safetensors").exists():
        raise GMError(f"{run} is not a trained run folder (config.json and model.safetensors).")
    if not _REPO.match(repo):
        raise GMError(f"{repo!r} is not a Hub repo id; give OWNER/NAME.")
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (run / name).exists():
            shutil.copy2(run / name, folder / name)
    (folder / CARD).write_text(card(run, repo, license=license))
    return sorted(p.name for p in folder.iterdir())


def push(
    run: str | Path, repo: str, *, private: bool = False, license: str = "other"
) -> tuple[str, list[str]]:
    """Create (or reuse) the model repo and upload the run; returns (url, files)."""
    import tempfile

    _need_hub()
    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory() as tmp:
        files = prepare(run, repo, Path(tmp), license=license)
        api = HfApi()
        try:
            api.create_repo(repo, private=private, exist_ok=True)
            info = api.upload_folder(
                repo_id=repo, folder_path=tmp, commit_message=f"gm push {Path(run).name}"
            )
        except network_errors() as err:
            first = str(err).splitlines()[0] if str(err) else ""
            raise GMFault(
                f"could not push to the Hub model {repo} ({type(err).__name__}: {first}); "
                "check the network and your token (hf auth login), then push again."
            ) from None
    return str(getattr(info, "commit_url", f"https://huggingface.co/{repo}")), files


def network_errors() -> tuple[type[Exception], ...]:
    """What the Hub client raises when the network or the server fails: OSError, and the
    base error of the HTTP library under it (the parent of its HfHubHTTPError)."""
    from huggingface_hub.errors import HfHubHTTPError

    base = [c for c in HfHubHTTPError.__mro__[1:] if c.__name__ == "HTTPError"]
    return (OSError, *base)
