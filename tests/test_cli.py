"""Stage scripts end a bad-input error with one line on stderr (a bug keeps its traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import PROJECT_ROOT

HINT = "(set JMRN_DEBUG=1 for the full traceback)"


def run_python(args: list[str], cwd: Path, debug: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != "JMRN_DEBUG"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    if debug is not None:
        env["JMRN_DEBUG"] = debug
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_ingest_with_a_missing_raw_dir_prints_one_line(tmp_path):
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["datasets"][params["dataset"]]["raw_dir"] = "no_such_raw_dir"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stage = str(PROJECT_ROOT / "stages" / "ingest.py")

    proc = run_python([stage], tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line.split("\r")[-1] for line in proc.stderr.splitlines()]  # past progress bars
    errors = [line for line in lines if line.startswith("ingest: error: ")]
    assert len(errors) == 1 and "no_such_raw_dir" in errors[0]
    assert lines[-1] == HINT and lines[-2] == errors[0]

    for debug in ("1", "yes"):
        proc = run_python([stage], tmp_path, debug=debug)
        assert proc.returncode == 1
        assert "Traceback" in proc.stderr and "ReadError" in proc.stderr
        assert "no_such_raw_dir" in proc.stderr and HINT not in proc.stderr


def script_raising(tmp_path: Path, error: str) -> Path:
    script = tmp_path / "stage.py"
    script.write_text("from jmrn.cli import concise_errors\n"
                      f"concise_errors('demo')\nraise {error}\n")  # fmt: skip
    return script


def test_input_errors_are_one_line_and_bugs_keep_their_traceback(tmp_path):
    concise = {
        "FileNotFoundError(2, 'No such file or directory', 'in.h5')":
            "demo: error: [Errno 2] No such file or directory: 'in.h5'",
        "OSError()": "demo: error: OSError",
        "FloatingPointError('epoch 3: the loss is nan; lower train.lr')":
            "demo: error: epoch 3: the loss is nan; lower train.lr",
        "__import__('jmrn.records').records.ReadError('bad.pkl: not a pickle')":
            "demo: error: bad.pkl: not a pickle",
        "__import__('jmrn.io').io.WriteError('cannot write out.json: Permission denied')":
            "demo: error: cannot write out.json: Permission denied",
    }  # fmt: skip
    for error, line in concise.items():
        proc = run_python([str(script_raising(tmp_path, error))], tmp_path, debug="0")
        assert proc.returncode == 1, error
        assert proc.stderr.splitlines() == [line, HINT], error
    for bug in ("KeyError('compute')", "TypeError('bad operand')", "AttributeError('x')"):
        proc = run_python([str(script_raising(tmp_path, bug))], tmp_path)
        assert proc.returncode == 1, bug
        assert "Traceback" in proc.stderr and bug.split("(")[0] in proc.stderr, bug
        assert HINT not in proc.stderr, bug


def project_params(tmp_path: Path, dataset: str = "jhmdb14_gt", **changes) -> dict:
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["dataset"] = dataset
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[last] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return params


def error_lines(proc) -> list[str]:
    return [line.split("\r")[-1] for line in proc.stderr.splitlines()]


def test_a_missing_device_stops_the_train_stage_with_one_line(tmp_path):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("the machine has CUDA")
    project_params(tmp_path, **{"compute.device": "cuda:7"})
    proc = run_python([str(PROJECT_ROOT / "stages" / "train.py"), "jmrn"], tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert error_lines(proc)[-2].startswith("train@jmrn: error: compute.device = 'cuda:7': "
                                            "this machine has cpu only")  # fmt: skip


def test_a_params_file_of_nested_aliases_is_one_line(tmp_path):
    text = (PROJECT_ROOT / "params.yaml").read_text()
    lol = ["&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lol += [f"&{b} [" + ", ".join([f"*{a}"] * 9) + "]"
            for a, b in zip("abcdefgh", "bcdefghi", strict=True)]
    (tmp_path / "params.yaml").write_text(text + "\nlaughs: [" + ", ".join(lol) + "]\n")
    proc = run_python([str(PROJECT_ROOT / "stages" / "ingest.py")], tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert error_lines(proc)[-2].startswith("ingest: error: params.yaml: the file expands to ")


def test_the_ingest_stage_warns_of_split_entries_naming_absent_videos(tmp_path, real_jhmdb):
    import pickle

    raw = tmp_path / "raw"
    raw.mkdir()
    anns = real_jhmdb["annotations"][:40:4]  # 10 videos of several classes
    ids = [a["frame_dir"] for a in anns]
    split = {"train1": ids[:7] + ["not_a_video"], "test1": ids[7:]}
    (raw / "j.pkl").write_bytes(pickle.dumps({"split": split, "annotations": anns}))
    (raw / "classes.txt").write_text("\n".join(f"c{k}" for k in range(14)) + "\n")
    project_params(tmp_path, **{"datasets.jhmdb14_gt.raw_dir": str(raw),
                                "datasets.jhmdb14_gt.source.file": "j.pkl",
                                "datasets.jhmdb14_gt.source.class_names": str(raw / "classes.txt"),
                                "compute.n_jobs": 1})  # fmt: skip
    proc = run_python([str(PROJECT_ROOT / "stages" / "ingest.py")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ("warning: ingest jhmdb14_gt: 1 split entries name videos that are not in the data: "
            "1 in split 'train1' (e.g. 'not_a_video')") in proc.stdout.splitlines()
