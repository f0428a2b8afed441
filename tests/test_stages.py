"""Stages run as modules, so a checkout (or a queued experiment's temporary copy) runs its own
``jmrn``, not the one an editable install or PYTHONPATH points at."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml
from conftest import PROJECT_ROOT


def test_every_stage_command_runs_a_module_of_stages():
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    commands = {name: (s.get("do") or s)["cmd"] for name, s in stages.items()}
    wrong = {n: c for n, c in commands.items() if not c.startswith("python -m stages.")}
    assert wrong == {}


def test_a_stage_module_imports_the_jmrn_of_the_checkout_it_runs_in(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages/__init__.py").write_text("")
    (tmp_path / "stages/probe.py").write_text("import jmrn\nprint(jmrn.__file__)\n")
    (tmp_path / "jmrn").mkdir()
    (tmp_path / "jmrn/__init__.py").write_text("")
    # the installed project comes first on PYTHONPATH, as an editable install's path would
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    out = subprocess.run([sys.executable, "-m", "stages.probe"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert out.strip() == str(tmp_path / "jmrn/__init__.py")
