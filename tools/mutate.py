"""Mutation check: does a test command catch small, plausible mistakes in a file?

    python tools/mutate.py FILE [FILE ...] --test "python -m pytest -x -q TESTS" \\
        [--only NAME ...] [--max N] [--seed S] [--report OUT.md] [--list]

Each mutant changes one expression of FILE, the kind of slip that passes review: an operator
swapped (``+``/``-``, ``*``/``/``, ``<``/``<=``, ``==``/``!=``, ``and``/``or``), a sign dropped
(``-x`` -> ``x``), a term dropped (``a + b`` -> ``a``, ``a - b`` -> ``a``), a number changed
(``n`` -> ``n + 1``, ``x`` -> ``2 x``, ``0.0`` -> ``1.0``), a reduction swapped (``.mean`` /
``.sum``, ``.max`` / ``.min``), ``.detach()`` dropped, ``True``/``False`` swapped. Only the
mutated expression's text is replaced, so the rest of the file stays byte for byte; docstrings,
annotations and f-strings are never mutated. The test command runs once on the unchanged file
(it must pass), then once per mutant with a timeout of 3x that run plus 30 s: a failing run
*kills* the mutant, a passing one lets it *survive* (a mistake the tests cannot see). The file
is restored after every run, also on Ctrl-C. ``--only`` keeps mutants inside the named
functions or classes; ``--max`` samples that many mutants (seeded), because every mutant costs
one test run.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SWAP_BINOP = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.Pow: ast.Mult,
    ast.FloorDiv: ast.Mult,
}
SWAP_CMP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
SWAP_ATTR = {"mean": "sum", "sum": "mean", "max": "min", "min": "max", "amax": "amin"}


@dataclass(frozen=True)
class Mutant:
    path: Path
    line: int
    start: tuple[int, int]  # (line, col) of the replaced text, 1-based line
    end: tuple[int, int]
    before: str
    after: str

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, f-strings and what they hold."""
    skip: set[int] = set()

    def mark(node):
        for sub in ast.walk(node):
            skip.add(id(sub))

    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            mark(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.returns is not None:
                mark(node.returns)
            for a in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                if a.annotation is not None:
                    mark(a.annotation)
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
        if docstring and isinstance(first.value.value, str):
            mark(first)
    return skip


def _variants(node: ast.AST) -> list[ast.AST]:
    """Mutated copies of ``node`` itself (its children untouched)."""
    out: list[ast.AST] = []
    if isinstance(node, ast.BinOp):
        if type(node.op) in SWAP_BINOP:
            out.append(ast.BinOp(node.left, SWAP_BINOP[type(node.op)](), node.right))
        if isinstance(node.op, (ast.Add, ast.Sub)):
            out.append(node.left)  # a term dropped
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        out.append(node.operand)
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in SWAP_CMP:
        out.append(ast.Compare(node.left, [SWAP_CMP[type(node.ops[0])]()], node.comparators))
    elif isinstance(node, ast.BoolOp):
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        out.append(ast.BoolOp(other, node.values))
    elif isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool):
            out.append(ast.Constant(not v))
        elif isinstance(v, int):
            out.append(ast.Constant(v + 1))
        elif isinstance(v, float):
            out.append(ast.Constant(v * 2 if v else 1.0))
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "detach" and not node.args:
            out.append(node.func.value)
        elif node.func.attr in SWAP_ATTR:
            func = ast.Attribute(node.func.value, SWAP_ATTR[node.func.attr], node.func.ctx)
            out.append(ast.Call(func, node.args, node.keywords))
    return out


def mutants(path: Path, only: list[str]) -> list[Mutant]:
    source = path.read_text()
    tree = ast.parse(source)
    skip = _skipped_nodes(tree)
    inside: dict[int, str] = {}
    for scope in ast.walk(tree):
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for sub in ast.walk(scope):
                inside.setdefault(id(sub), "")
                inside[id(sub)] += f" {scope.name}"
    found = []
    for node in ast.walk(tree):
        if id(node) in skip or not hasattr(node, "end_lineno"):
            continue
        if only and not set(only) & set(inside.get(id(node), "").split()):
            continue
        before = ast.get_source_segment(source, node)
        if before is None:
            continue
        for variant in _variants(node):
            after = ast.unparse(variant)
            if isinstance(node, (ast.BinOp, ast.BoolOp, ast.Compare, ast.UnaryOp)):
                after = f"({after})"
            found.append(
                Mutant(
                    path,
                    node.lineno,
                    (node.lineno, node.col_offset),
                    (node.end_lineno, node.end_col_offset),
                    before,
                    after,
                )
            )
    return found


def apply(source: str, m: Mutant) -> str:
    lines = source.splitlines(keepends=True)
    offset = [0]
    for ln in lines:
        offset.append(offset[-1] + len(ln.encode()))
    raw = source.encode()
    a = offset[m.start[0] - 1] + m.start[1]  # ast columns are UTF-8 byte offsets
    b = offset[m.end[0] - 1] + m.end[1]
    return (raw[:a] + m.after.encode() + raw[b:]).decode()


def run(command: str, timeout: float) -> str:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        r = subprocess.run(
            command,
            shell=True,
            capture_output=True,
            timeout=timeout,
            env=env,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    return "survived" if r.returncode == 0 else "killed"


def _drop_pyc(path: Path) -> None:
    for pyc in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        pyc.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--test", required=True, help="shell command; exit 0 = tests pass")
    p.add_argument("--only", nargs="*", default=[], help="function or class names to mutate in")
    p.add_argument("--max", type=int, default=0, help="sample at most this many mutants")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", type=Path, help="write the results as a markdown table")
    p.add_argument("--list", action="store_true", help="list the mutants and stop")
    args = p.parse_args(argv)

    pool = [m for f in args.files for m in mutants(f, args.only)]
    chosen = pool
    if args.max and len(pool) > args.max:
        chosen = random.Random(args.seed).sample(pool, args.max)
    chosen = sorted(chosen, key=lambda m: (str(m.path), m.start))
    if args.list:
        for m in chosen:
            print(f"{m.where()}: {m.before}  ->  {m.after}")
        print(f"{len(chosen)} of {len(pool)} mutants")
        return 0

    start = time.perf_counter()
    if run(args.test, timeout=3600) != "survived":
        print("the test command fails on the unchanged files; fix that first", file=sys.stderr)
        return 2
    baseline = time.perf_counter() - start
    budget = 3 * baseline + 30
    print(f"{len(chosen)} of {len(pool)} mutants; unchanged run {baseline:.0f} s", flush=True)

    originals = {f: f.read_text() for f in args.files}
    results = []
    try:
        for i, m in enumerate(chosen, 1):
            m.path.write_text(apply(originals[m.path], m))
            _drop_pyc(m.path)
            outcome = run(args.test, budget)
            m.path.write_text(originals[m.path])
            _drop_pyc(m.path)
            results.append((m, outcome))
            print(
                f"[{i}/{len(chosen)}] {outcome:8s} {m.where()}: {m.before} -> {m.after}", flush=True
            )
    finally:
        for f, text in originals.items():
            f.write_text(text)
            _drop_pyc(f)

    survivors = [m for m, o in results if o == "survived"]
    killed = sum(o != "survived" for _, o in results)
    print(f"\nkilled {killed} of {len(results)}; {len(survivors)} survived")
    for m in survivors:
        print(f"  survived {m.where()}: {m.before} -> {m.after}")
    if args.report:
        rows = "\n".join(
            f"| `{m.where()}` | `{m.before}` | `{m.after}` | {o} |" for m, o in results
        )
        args.report.write_text(
            f"Command: `{args.test}`\n\nKilled {killed} of {len(results)} "
            f"(sampled from {len(pool)}).\n\n| where | before | after | outcome |\n"
            f"|---|---|---|---|\n{rows}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
