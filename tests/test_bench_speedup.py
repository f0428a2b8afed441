"""bench/speedup.py (issue 24 §3): the FLOP count behind its "fraction of the GEMM rate", and
its quick run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "bench"))  # for speedup, as `pytest` runs without the root on the path

from speedup import checkouts, step_flops  # noqa: E402


def test_step_flops_are_the_convolutions_multiply_adds_forward_and_backward():
    conv = torch.nn.Conv2d(3, 8, 3, 1, 1)
    forward = 2 * 2 * 8 * 10 * 12 * 3 * 9  # 2 per multiply-add: batch, cout, h, w, cin, k^2
    x = torch.rand(2, 3, 10, 12)
    assert step_flops(lambda: conv(x).sum().backward()) == 2 * forward  # + weight gradient
    x = x.requires_grad_()
    assert step_flops(lambda: conv(x).sum().backward()) == 3 * forward  # + input gradient


def test_quick_rates_run_and_report_a_fraction_of_the_gemm_rate(tmp_path):
    out = tmp_path / "speedup.json"
    subprocess.run([sys.executable, "bench/speedup.py", "--quick", "--only", "rates", "--out",
                    str(out)], cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    rates = json.loads(out.read_text())["rates"]
    for model in ("jmrn", "potion"):
        step = rates["fp32"][model]
        assert rates["fp32"]["gemm_gflops"] > 0 and step["step_seconds"] > 0
        # quick sizes time noise, not the machine: only that every figure is there
        assert step["step_gflop"] > 0 and step["fraction_of_gemm"] > 0


def test_quick_refuses_the_long_measurements():
    done = subprocess.run([sys.executable, "bench/speedup.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "--only rates" in done.stderr


def test_old_and_new_are_temporary_worktrees_of_their_commits(tmp_path, monkeypatch):
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=tmp_path, capture_output=True, text=True,
                              check=True).stdout  # fmt: skip

    git("init", "-q")
    for text in ("old", "new"):
        (tmp_path / "params.yaml").write_text(text)
        git("add", "params.yaml")
        git("commit", "-qm", text)
    monkeypatch.chdir(tmp_path)
    with checkouts("HEAD~1") as trees:
        assert {v: (tree / "params.yaml").read_text() for v, tree in trees.items()} == {
            "old": "old", "new": "new"}  # fmt: skip
    for tree in trees.values():
        assert not tree.exists() and str(tree) not in git("worktree", "list")
    with pytest.raises(SystemExit, match="not in this clone"), checkouts("f" * 40):
        pass
