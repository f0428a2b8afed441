"""bench/gpu_check.py --device cpu --quick: the GPU check's code, run in seconds on a CPU,
gives a verdict for every check and one JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1] / "bench"))  # for gpu_check

import gpu_check  # noqa: E402


def test_the_quick_cpu_run_checks_everything_and_writes_one_json(tmp_path, capsys,
                                                                 monkeypatch):  # fmt: skip
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    out = tmp_path / "gpu_check.json"
    gpu_check.main(["--device", "cpu", "--quick", "--out", str(out)])
    result = json.loads(out.read_text())
    checks = result["checks"]
    assert list(checks) == ["folded", "bf16", "loader", "torchrun", "train"]
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.split(" ")[0] in checks]  # fmt: skip
    assert len(lines) == 5 and all(" PASS " in line or " FAIL " in line for line in lines)
    # the code paths work; the speeds of one step of a tiny network, or the loader's share
    # on 30 tiny videos, are not meaningful, so only the runs must pass here
    for name in ("torchrun", "train"):
        assert checks[name]["pass"], checks[name]
    for name in ("folded", "bf16"):
        assert all(rate > 0 for rate in checks[name]["inputs_per_second"].values())
    assert checks["torchrun"]["backend"] == "gloo" and checks["train"]["epochs"] == 1
    assert set(checks["loader"]["fraction_outside_model"]) == {"0", "4"}
    assert result["quick"] and result["data"] == "synthetic"
