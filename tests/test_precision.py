"""compute.precision (jmrn.precision): what each setting resolves to on each device, the
one-line errors, and that training and inference run in the resolved precision."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import TINY_SETTINGS
from test_train import run

from jmrn import precision
from jmrn.config import ParamsError, check_params, load_params

CPU = torch.device("cpu")


@pytest.fixture
def cpuinfo(tmp_path):
    def write(flags: str):
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n\n"
                        f"processor\t: 1\nflags\t\t: fpu sse2 avx2 {flags}\n")  # fmt: skip
        return path

    return write


def test_fp32_is_fp32_everywhere(cpuinfo):
    assert precision.resolve("fp32", CPU, cpuinfo("avx512_bf16"))[0] == "fp32"


def test_auto_is_bf16_on_a_cpu_with_bf16_units_and_says_why(cpuinfo, tmp_path):
    used, why = precision.resolve("auto", CPU, cpuinfo("avx512f avx512_bf16"))
    assert used == "bf16" and why == "compute.precision is auto: the CPU has avx512_bf16"
    assert precision.resolve("auto", CPU, cpuinfo("amx_bf16 amx_tile"))[0] == "bf16"
    for path in (cpuinfo("avx512f"), tmp_path / "no such file"):
        used, why = precision.resolve("auto", CPU, path)
        assert used == "fp32" and why == "compute.precision is auto: the CPU has no bf16 units"


def test_explicit_bf16_needs_bf16_units(cpuinfo, tmp_path):
    assert precision.resolve("bf16", CPU, cpuinfo("amx_bf16")) == (
        "bf16", "compute.precision is bf16: the CPU has amx_bf16")
    for path in (cpuinfo("avx512f"), tmp_path / "no such file"):
        with pytest.raises(ValueError, match="^compute.precision = 'bf16': this CPU has neither"):
            precision.resolve("bf16", CPU, path)
    with pytest.raises(ValueError, match="not on mps"):
        precision.resolve("bf16", torch.device("mps"))
    with pytest.raises(ValueError, match="one of auto | fp32 | bf16"):
        precision.resolve("fp16", CPU)


def test_autocast_runs_the_forward_in_the_resolved_precision():
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(2, 8)
    with precision.autocast(CPU, "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with precision.autocast(CPU, "fp32"):
        assert layer(x).dtype == torch.float32
    with pytest.raises(ValueError, match="not resolved"):
        precision.autocast(CPU, "auto")


def test_params_accept_the_three_settings_and_nothing_else():
    params = load_params()
    for value in ("auto", "fp32", "bf16"):
        check_params({**params, "compute": {**params["compute"], "precision": value}})
    with pytest.raises(ParamsError, match="compute.precision = 'fp16'"):
        check_params({**params, "compute": {**params["compute"], "precision": "fp16"}})


@pytest.mark.skipif(not precision.cpu_bf16_flags(), reason="this CPU has no bf16 units")
def test_training_in_bf16_records_it_and_moves_the_figures_a_little(tiny_heatmaps, tmp_path):
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"]["epochs"] = 2
    fp32 = run(tiny_heatmaps, tmp_path / "fp32", settings, precision="fp32")
    bf16 = run(tiny_heatmaps, tmp_path / "bf16", settings, precision="bf16")
    assert fp32["precision"]["used"] == "fp32" and bf16["precision"]["used"] == "bf16"
    assert "the CPU has" in bf16["precision"]["reason"]
    assert bf16["train"]["loss"] != fp32["train"]["loss"]  # it did run in bf16
    assert bf16["train"]["loss"] == pytest.approx(fp32["train"]["loss"], rel=0.05)


def test_bf16_on_a_cpu_without_it_stops_training_before_any_work(tiny_heatmaps, tmp_path,
                                                                   monkeypatch):  # fmt: skip
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda cpuinfo="": [])
    with pytest.raises(ValueError, match="this CPU has neither AVX512-BF16 nor AMX"):
        run(tiny_heatmaps, tmp_path, precision="bf16")
    assert not (tmp_path / "train.json").exists()
