"""A model's settings read from its source, without importing it (so without torch).

``gm train MODEL --help``, ``gm list-models NAME`` and the check of ``--set`` keys need the
config dataclass of a model: its keys, types, defaults and the note written beside each
field. Importing the trainer module would import torch (seconds), so this reads the
module's source with :mod:`ast`: the trainer class named by the model's target, its
``Config`` (or ``SampleOptions`` / ``EvaluateOptions``) attribute, found on the class or
its bases, and that dataclass's fields, bases first. Anything it cannot follow gives
``None`` and callers fall back to importing the class.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
from functools import cache
from typing import Any

from gm.specs import ModelSpec


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    type: str  # the annotation as written
    default: str  # the default as written (or as the model's recipe overrides it)
    note: str  # the comment beside the field: the paper's note, units, what 0 means


@cache
def _module(name: str) -> ast.Module | None:
    try:
        spec = importlib.util.find_spec(name)  # imports parent packages only (cheap ones)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    with open(spec.origin, encoding="utf-8") as f:
        source = f.read()
    tree = ast.parse(source)
    tree.lines = source.splitlines()  # type: ignore[attr-defined]
    return tree


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.rsplit(".", node.level)[0]
    return f"{base}.{node.module}" if node.module else base


def _find_class(module: str, name: str, depth: int = 0) -> tuple[str, ast.ClassDef] | None:
    """The class statement ``name`` refers to in ``module``, following ``from x import``."""
    tree = _module(module)
    if tree is None or depth > 8:
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return module, node
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _find_class(_absolute(module, node), alias.name, depth + 1)
    return None


def _base_names(cls: ast.ClassDef) -> list[str]:
    return [
        b.id if isinstance(b, ast.Name) else b.attr
        for b in cls.bases
        if isinstance(b, (ast.Name, ast.Attribute))
    ]


def _class_attr(module: str, cls: ast.ClassDef, attr: str) -> tuple[str, ast.ClassDef] | None:
    """The class assigned to ``attr`` in ``cls`` or in its nearest base that assigns it."""
    for node in cls.body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign) and node.value
            else []
        )
        value = getattr(node, "value", None)
        if any(isinstance(t, ast.Name) and t.id == attr for t in targets) and isinstance(
            value, ast.Name
        ):
            return _find_class(module, value.id)
    for base in _base_names(cls):
        found = _find_class(module, base)
        if found is not None:
            hit = _class_attr(*found, attr)
            if hit is not None:
                return hit
    return None


def _note(tree: ast.Module, node: ast.AnnAssign) -> str:
    lines: list[str] = tree.lines  # type: ignore[attr-defined]
    tail = lines[node.end_lineno - 1][node.end_col_offset :]  # type: ignore[operator]
    if "#" in tail:
        return tail.split("#", 1)[1].strip()
    above: list[str] = []
    i = node.lineno - 2
    while i >= 0 and lines[i].strip().startswith("#"):
        above.insert(0, lines[i].strip().lstrip("#").strip())
        i -= 1
    return " ".join(above) if len(above) > 1 else ""  # one line above is a section title


def _type(node: ast.expr) -> str:
    """``Literal['a', 'b']`` -> ``a | b``; a fast-path ``Switch`` -> ``auto | on | off``;
    anything else as written."""
    if ast.unparse(node).split(".")[-1] == "Switch":  # gm.config.Switch, however imported
        return "auto | on | off"
    if isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("Literal"):
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        return " | ".join(str(ast.literal_eval(i)) for i in items)
    return ast.unparse(node)


def _default(node: ast.expr | None) -> str:
    if node is None:
        return ""
    if (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", "")) == "field"
    ):
        for kw in node.keywords:
            if kw.arg == "default":
                return _default(kw.value)
            if kw.arg == "default_factory":
                return ast.unparse(kw.value) + "()"
    try:
        return repr(ast.literal_eval(node))
    except (ValueError, SyntaxError, TypeError):
        return ast.unparse(node)


def _fields(module: str, cls: ast.ClassDef, depth: int = 0) -> dict[str, Field] | None:
    if depth > 8:
        return None
    out: dict[str, Field] = {}
    for base in reversed(_base_names(cls)):
        if base in ("object", "Generic"):
            continue
        found = _find_class(module, base)
        if found is None:
            return None  # a base we cannot read: its fields would be missing
        inherited = _fields(*found, depth + 1)
        if inherited is None:
            return None
        out.update(inherited)
    tree = _module(module)
    assert tree is not None
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            kind = _type(node.annotation)
            if kind.startswith(("ClassVar", "typing.ClassVar")):
                continue
            name = node.target.id
            note = _note(tree, node) or (out[name].note if name in out else "")
            out[name] = Field(name, kind, _default(node.value), note)
    return out


@cache
def _read(target: str, attr: str) -> tuple[Field, ...] | None:
    module, _, name = target.partition(":")
    found = _find_class(module, name)
    if found is None:
        return None
    options = _class_attr(*found, attr)
    if options is None:
        return None
    fields = _fields(*options)
    return None if fields is None else tuple(fields.values())


def recipe_defaults(spec: Any) -> dict[str, Any]:
    """The defaults a model's own recipe sets, where they do not depend on the data."""
    if not isinstance(spec, ModelSpec) or not spec.recipe:
        return {}
    found = spec.recipes[spec.recipe]
    return {"recipe": spec.recipe, **(found if isinstance(found, dict) else {})}


def fields(spec: Any, attr: str = "Config") -> list[Field] | None:
    """The fields of a model's ``Config`` (with the recipe's defaults applied), its
    ``SampleOptions`` or its ``EvaluateOptions``; None when the source cannot be followed."""
    try:
        found = _read(spec.trainer_target() if isinstance(spec, ModelSpec) else spec.target, attr)
    except (OSError, SyntaxError):
        return None
    if found is None:
        return None
    defaults = recipe_defaults(spec) if attr == "Config" else {}
    return [
        dataclasses.replace(f, default=repr(defaults[f.name])) if f.name in defaults else f
        for f in found
    ]


def docstring(target: str) -> str:
    """The docstring of the class ``"module:Class"`` names, read from the source (no
    import); empty when it has none or the source cannot be followed."""
    module, _, name = target.partition(":")
    try:
        found = _find_class(module, name)
    except (OSError, SyntaxError):
        return ""
    return (ast.get_docstring(found[1]) or "") if found else ""


def imported_fields(spec: Any, attr: str = "Config") -> list[Field]:
    """The same list from the imported class (imports torch): the fallback."""
    cls = getattr(spec.load(), attr)
    hints = __import__("typing").get_type_hints(cls)
    defaults = recipe_defaults(spec) if attr == "Config" else {}
    out = []
    for f in dataclasses.fields(cls):
        value = (
            defaults[f.name]
            if f.name in defaults
            else f.default
            if f.default is not dataclasses.MISSING
            else f.default_factory()  # type: ignore[misc]
            if f.default_factory is not dataclasses.MISSING
            else ""
        )
        kind = getattr(hints[f.name], "__name__", str(hints[f.name]))
        out.append(Field(f.name, kind, repr(value), ""))
    return out


def model_fields(spec: Any, attr: str = "Config") -> list[Field]:
    found = fields(spec, attr)
    return found if found is not None else imported_fields(spec, attr)
