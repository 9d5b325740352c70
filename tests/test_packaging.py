"""The grammar ships inside the package: found from a wheel as from the editable install."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import jacli

ROOT = Path(__file__).resolve().parents[1]


def test_editable_install_finds_the_grammar_in_grammar_dir():
    from importlib import resources
    grammar = resources.files("jacli.grammar").joinpath("jacli.lark")
    assert grammar.is_file()
    assert grammar.read_text() == (ROOT / "grammar" / "jacli.lark").read_text()


def test_a_wheel_carries_the_grammar_and_works_from_it(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
         "--quiet", "-w", str(tmp_path / "dist")], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("jacli-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "jacli/grammar/jacli.lark" in names and "jacli/grammar/jacli_lalr.py" in names

    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)   # a wheel is installed by unpacking it
    probe = ("import jacli, sys; assert jacli.__file__.startswith(sys.argv[1]), jacli.__file__;"
             "print(jacli.compile('x^2*y').grad({'x': 3.0, 'y': 2.0}).gradient.tolist());"
             "print('lark' in sys.modules)")   # the kept tables match the shipped grammar
    env = dict(os.environ, PYTHONPATH=str(target))
    run = subprocess.run([sys.executable, "-c", probe, str(target)], capture_output=True,
                         text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["[12.0,", "9.0]", "False"]
    assert jacli.__file__.startswith(str(ROOT))   # this process still uses the checkout
