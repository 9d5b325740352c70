"""Layering: the core (parse, tape, prims, engine, api) knows nothing of the command
line or of Rich, and no user text is ever run through Python's eval/exec."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jacli"
CORE = ["engine.py", "sweeps.py", "prims.py", "array_prims.py", "tape.py", "parse.py", "api.py",
        "output.py", "batch.py"]
UI_LIBRARIES = {"typer", "rich", "click"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imported_modules(tree: ast.Module) -> list[tuple[str, int]]:
    """(module, level) of every import statement anywhere in the tree (functions too).
    `level` is the number of leading dots of a relative import."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            found.append((module, node.level))
            if node.level and not node.module:      # `from . import render`
                found += [(alias.name, node.level) for alias in node.names]
    return found


def ui_imports(tree: ast.Module) -> list[str]:
    return [module for module, level in imported_modules(tree)
            if level == 0 and module.split(".")[0] in UI_LIBRARIES]


def package_imports(tree: ast.Module) -> set[str]:
    """The jacli modules (file stems) this module imports, relatively or absolutely."""
    names = set()
    for module, level in imported_modules(tree):
        if level == 1 and module:
            names.add(module.split(".")[0])
        elif level == 0 and module.startswith("jacli."):
            names.add(module.split(".")[1])
    return names


def builtin_eval_exec_calls(tree: ast.Module) -> list[int]:
    """Line numbers of calls to the builtins eval or exec (not methods named eval,
    such as Program.eval, and not the package's own jacli.compile)."""
    shadowed = {node.name for node in tree.body
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in {"eval", "exec"} - shadowed:
            lines.append(node.lineno)
        elif (isinstance(func, ast.Attribute) and func.attr in {"eval", "exec"}
              and isinstance(func.value, ast.Name)
              and func.value.id in {"builtins", "__builtins__"}):
            lines.append(node.lineno)
    return lines


# --- the checks themselves can fail --------------------------------------------------------

def test_the_scanners_see_what_they_should():
    tree = ast.parse("import rich.table\nfrom typer import Exit\n"
                     "def f():\n    from .render import x\n    import numpy\n"
                     "eval(text)\nbuiltins.exec(code)\nprogram.eval(point)\n"
                     "jacli.compile(src)\n")
    assert ui_imports(tree) == ["rich.table", "typer"]
    assert package_imports(tree) == {"render"}
    assert builtin_eval_exec_calls(tree) == [6, 7]
    assert builtin_eval_exec_calls(ast.parse("def eval(x):\n    pass\neval(1)\n")) == []


# --- the package ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", CORE)
def test_core_module_does_not_import_typer_or_rich(name):
    path = PACKAGE / name
    assert path.is_file(), f"{path} is missing"
    assert ui_imports(_tree(path)) == [], f"{name} imports a command-line/UI library"


@pytest.mark.parametrize("name", CORE)
def test_core_module_does_not_reach_typer_or_rich_through_the_package(name):
    """Follow imports of other jacli modules: none of them may pull in typer or rich."""
    seen, todo, chain = set(), [name[:-3]], {name[:-3]: name[:-3]}
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = PACKAGE / f"{module}.py"
        if not path.is_file():
            continue
        tree = _tree(path)
        assert ui_imports(tree) == [], (f"{name} imports typer/rich through "
                                        f"{chain[module]} ({ui_imports(tree)})")
        for imported in package_imports(tree):
            chain.setdefault(imported, f"{chain[module]} -> {imported}")
            todo.append(imported)


def test_importing_the_library_loads_neither_typer_nor_rich():
    code = ("import sys, jacli, jacli.engine, jacli.prims, jacli.tape, jacli.parse, jacli.api\n"
            "p = jacli.compile('x^2*y'); p.grad({'x': 1.0, 'y': 2.0})\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_no_builtin_eval_or_exec_anywhere_in_the_package():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) >= len(CORE)
    offenders = {str(p.relative_to(PACKAGE)): lines for p in files
                 if (lines := builtin_eval_exec_calls(_tree(p)))}
    assert offenders == {}, f"calls to eval/exec: {offenders}"


def test_a_one_point_run_loads_no_parser_generator_no_rich_and_no_batch_readers():
    """Start-up time: `jacli grad ... --at ...` parses with the kept LALR tables (no
    Lark), prints plain text (no Rich) and reads no points file (no csv, no json)."""
    code = ("import sys\n"
            "sys.argv = ['jacli', 'grad', 'x^2*y + sin(z)', '--at', 'x=1,y=2,z=3']\n"
            "from jacli.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'lark', 'rich', 'csv', 'json'}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["4.0 1.0 -0.9899924966004454", "[]"]


# --- the command line only parses options and prints -------------------------------------------

#: What streaming points is made of: the readers and chunks of jacli.points, and the batch
#: runner's steps (reading chunks, binding their rows, masking bad rows, scattering results).
STREAMING_NAMES = {"Points", "PointsReader", "CHUNK_ROWS", "RESULT_FLOATS", "FIRST_ROWS"}
STREAMING_CALLS = {"chunks", "bindings", "good_mask", "cut", "run", "run_arrays", "at_table",
                   "scatter", "_scatter"}


def streaming_logic(tree: ast.Module) -> list[str]:
    """Names and calls of the streaming loop's parts in a module, with their lines."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in STREAMING_NAMES:
            found.append(f"{node.lineno}: {node.id}")
        elif isinstance(node, ast.alias) and node.name in STREAMING_NAMES:
            found.append(f"import of {node.name}")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in STREAMING_CALLS:
                found.append(f"{node.lineno}: {name}()")
    return found


def test_the_streaming_scanner_sees_a_chunk_loop():
    tree = ast.parse("from .points import Points, parse_at\n"
                     "for points in job.chunks():\n    values, mask, n = job.bindings(points)\n"
                     "    rows = Points.concat([points])\n")
    assert streaming_logic(tree) == ["import of Points", "2: chunks()", "3: bindings()",
                                     "4: Points"]
    assert streaming_logic(ast.parse("names = text.split(',')\nfor r in job.reports(): "
                                     "write(r)\n")) == []


def test_the_command_line_holds_no_streaming_logic():
    assert streaming_logic(_tree(PACKAGE / "cli.py")) == []


def test_the_batch_runner_loads_neither_typer_nor_rich():
    code = ("import sys, tempfile, os, jacli\n"
            "path = os.path.join(tempfile.mkdtemp(), 'p.csv')\n"
            "open(path, 'w').write('x,y\\n1,2\\n3,oops\\n')\n"
            "chunks = list(jacli.compile('x*y').stream(path, 'grad'))\n"
            "print(chunks[0].jacobian[0].tolist(), chunks[0].bad_rows)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', "
            "'click')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "[]"
    assert result.stdout.splitlines()[0].startswith("[[2.0, 1.0]] {1: ")
