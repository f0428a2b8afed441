"""Atomic writes under faults: stale temporary files, unwritable outputs, bad checkpoints."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import PROJECT_ROOT

from jmrn import io as jio
from jmrn.io import WriteError, atomic_path, remove_stale_temp_files, resume_checkpoint, write_json


def dead_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(proc.stdout)
    with pytest.raises(ProcessLookupError):  # not reused since: the test would mean nothing
        os.kill(pid, 0)
    return pid


# --- stale temporary files ---------------------------------------------------------------


def test_a_new_write_removes_the_stale_temp_files_of_its_target_only(tmp_path):
    stale = tmp_path / f".out.json.{dead_pid()}.0123abcd.tmp"
    live = tmp_path / f".out.json.{os.getpid()}.89abcdef.tmp"  # a write in progress
    other_target = tmp_path / f".other.json.{dead_pid()}.0123abcd.tmp"
    lookalike = tmp_path / f".out.json.{dead_pid()}.notmine.tmp"
    for f in (stale, live, other_target, lookalike):
        f.write_text("partial")
    write_json(tmp_path / "out.json", {"a": 1})
    assert json.loads((tmp_path / "out.json").read_text()) == {"a": 1}
    assert not stale.exists()
    assert live.exists() and other_target.exists() and lookalike.exists()


def test_the_temp_file_of_a_sigkilled_writer_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "keypoints.h5"
    script = ("import os, signal, sys\nfrom jmrn.io import atomic_path\n"
              "with atomic_path(sys.argv[1]) as tmp:\n"
              "    tmp.write_bytes(b'half a file')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    proc = subprocess.run([sys.executable, "-c", script, str(target)], env=env)
    assert proc.returncode == -9
    left = list(tmp_path.glob(".keypoints.h5.*.tmp"))
    assert len(left) == 1 and not target.exists()  # the fault is planted
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keypoints.h5"]
    assert target.read_bytes() == b"whole file"


def test_remove_stale_temp_files_in_a_missing_folder_is_a_no_op(tmp_path):
    assert remove_stale_temp_files(tmp_path / "nowhere" / "out.json") == []


# --- unwritable outputs --------------------------------------------------------------------


def test_a_parent_that_is_a_file_gives_one_clear_error(tmp_path):
    blocker = tmp_path / "reports"
    blocker.write_text("a file where the folder should be")
    for target in (blocker / "ingest.json", blocker / "synthetic" / "ingest.json"):
        with pytest.raises(WriteError, match=rf"^cannot write {target}: ") as caught:
            write_json(target, {})
        assert isinstance(caught.value, OSError)
        assert str(blocker) in str(caught.value)


def test_a_read_only_folder_gives_one_clear_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes")
        for target in (folder / "out.json", folder / "sub" / "out.json"):
            with pytest.raises(WriteError, match=rf"^cannot write {target}: .*Permission denied"):
                write_json(target, {})
    finally:
        folder.chmod(0o755)


def test_a_failed_rename_gives_one_clear_error_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out.json"
    target.mkdir()  # a folder in the way: os.replace fails
    with pytest.raises(WriteError, match=rf"^cannot write {target}: "):
        write_json(target, {})
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_write_errors_in_the_body_name_the_output_but_input_errors_pass_unchanged(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(WriteError, match=rf"^cannot write {target}: No space left on device$"):
        with atomic_path(target):  # as h5py reports it: no file name in the error
            raise OSError(errno.ENOSPC, "Can't write data (file write failed)")
    with pytest.raises(WriteError, match=rf"^cannot write {target}: Permission denied$"):
        with atomic_path(target) as tmp:  # as open() reports it
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp))
    with pytest.raises(FileNotFoundError) as caught:
        with atomic_path(target):  # an input that is missing is not a write failure
            open(tmp_path / "missing_input.h5")
    assert not isinstance(caught.value, WriteError)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_cleanup_does_not_hide_the_first_error(tmp_path, monkeypatch):
    def refuse(self, missing_ok=False):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(ValueError, match="the real problem"):
        with atomic_path(tmp_path / "out.json"):
            raise ValueError("the real problem")


# --- checkpoints -----------------------------------------------------------------------


def make_modules(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return {"model": model, "optimizer": optimizer}


KEY = {"settings": "s1", "data": "d1"}


def save_checkpoint(path: Path, modules: dict, **changes) -> dict:
    saved = {"version": 1, "fingerprint": KEY, "epoch": 2, "history": [1, 2],
             **{name: m.state_dict() for name, m in modules.items()}, **changes}  # fmt: skip
    jio.save_torch(path, saved)
    return saved


def load(path: Path, modules: dict, lines: list) -> dict | None:
    return resume_checkpoint(path, modules, fingerprint=KEY, version=1,
                             state_keys=("epoch", "history"), log=lines.append)  # fmt: skip


def test_a_good_checkpoint_is_resumed(tmp_path):
    path = tmp_path / "m.checkpoint.pt"
    trained = make_modules(0)
    save_checkpoint(path, trained)
    fresh, lines = make_modules(1), []
    saved = load(path, fresh, lines)
    assert saved is not None and saved["epoch"] == 2 and lines == []
    assert torch.equal(fresh["model"].weight, trained["model"].weight)
    assert load(tmp_path / "absent.pt", make_modules(1), lines) is None and lines == []


@pytest.mark.parametrize("damage, why", [
    (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "cannot read it"),
    (lambda p: p.write_bytes(b""), "cannot read it"),
    (lambda p: p.write_text("not a checkpoint"), "cannot read it"),
    (lambda p: jio.save_torch(p, torch.zeros(3)), "it holds a Tensor, not a checkpoint"),
    (lambda p: jio.save_torch(p, {"version": 1, "fingerprint": KEY}), "it lacks ['model'"),
    (lambda p: save_checkpoint(p, make_modules(0), version=2), "format version 2, not 1"),
    (lambda p: save_checkpoint(p, make_modules(0), fingerprint={"settings": "s0", "data": "d1"}),
     "made with other settings"),
    (lambda p: save_checkpoint(p, {"model": torch.nn.Linear(3, 5), "optimizer":
                                   make_modules(0)["optimizer"]}), "its model does not fit"),
    # fitting weights plus an unknown one: load_state_dict copies the weights, then fails
    (lambda p: save_checkpoint(p, {}, model={**make_modules(0)["model"].state_dict(),
                                             "extra": torch.zeros(1)},
                               optimizer=make_modules(0)["optimizer"].state_dict()),
     "its model does not fit"),
])  # fmt: skip
def test_a_bad_checkpoint_is_ignored_with_one_line_naming_it(tmp_path, damage, why):
    path = tmp_path / "jmrn.checkpoint.pt"
    save_checkpoint(path, make_modules(0))
    damage(path)
    modules, lines = make_modules(1), []
    before = {k: v.clone() for k, v in modules["model"].state_dict().items()}
    assert load(path, modules, lines) is None
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith(f"train: ignoring {path}: ") and why in lines[0]
    assert lines[0].endswith("training starts over")
    after = modules["model"].state_dict()  # the fresh weights, untouched
    assert all(torch.equal(before[k], after[k]) for k in before)
