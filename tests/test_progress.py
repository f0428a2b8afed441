"""Whole-stage progress: the ETA arithmetic, and bars that know their total."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jmrn.clip_selection import train_ranker
from jmrn.progress import StageBar, StageClock, announce_total, format_duration


class Recorder:
    """A progress callback that records the total it is told and every call after it."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.calls: list[tuple[int, int | None]] = []  # (items done, total known then)

    def set_total(self, total: int) -> None:
        self.total = total

    def __call__(self, done: int) -> None:
        self.calls.append((done, self.total))


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("seconds, text", [
    (0, "0:00"), (41, "0:41"), (232, "3:52"), (59.6, "1:00"), (3599, "59:59"),
    (3600, "1:00:00"), (3723, "1:02:03"), (-5, "0:00"),
])  # fmt: skip
def test_durations_read_as_clock_times(seconds, text):
    assert format_duration(seconds) == text


def test_remaining_time_is_the_mean_of_each_kind_times_the_steps_left():
    clock = FakeClock()
    stage = StageClock("train@jmrn", clock)
    stage.record("epoch", 10.0)
    stage.record("epoch", 14.0)  # mean 12 s per epoch
    stage.record("evaluation", 3.0)
    assert stage.remaining({"epoch": 5, "evaluation": 2}) == (66.0, True)
    # a kind not measured yet: what is known, flagged as a lower bound
    assert stage.remaining({"epoch": 1, "export": 1}) == (12.0, False)
    assert stage.remaining({"epoch": 0, "export": 0}) == (0.0, True)
    clock.now += 41
    assert stage.status({"epoch": 5, "evaluation": 2}) == \
        "0:41 elapsed, ETA 1:06 for train@jmrn"  # fmt: skip
    assert stage.status({"epoch": 19, "export": 1}) == "0:41 elapsed, ETA >3:48 for train@jmrn"


def test_recorded_steps_and_elapsed_time_follow_the_clock():
    clock = FakeClock()
    stage = StageClock("clip_train", clock)
    clock.now += 7.5
    stage.record("epoch", 7.5)
    clock.now += 2.5
    stage.record("epoch", 2.5)
    assert stage.remaining({"epoch": 3}) == (15.0, True)
    assert stage.elapsed() == 10.0


def test_a_bar_given_its_total_shows_the_time_left(capsys):
    with StageBar("heatmaps tiny", "video") as bar:
        announce_total(bar, 4)
        for _ in range(4):
            bar(1)
        assert bar.bar.total == 4 and bar.bar.n == 4
    err = capsys.readouterr().err
    assert "4/4" in err and "100%" in err and "<" in err  # [elapsed<remaining, rate]
    with StageBar("ingest tiny", "video") as bar:  # no total: a bare count, no time left
        bar(4)
    err = capsys.readouterr().err
    assert "4video" in err and "/4" not in err and "<" not in err


def test_announcing_a_total_to_a_plain_callback_is_harmless():
    seen = []
    announce_total(seen.append, 7)
    announce_total(None, 7)
    assert seen == []


def test_the_ranker_reports_its_epochs_against_a_total():
    rng = np.random.default_rng(0)
    clip_video = np.repeat(np.arange(6), 4)
    oracle = np.tile([True, False, False, False], 6)
    features = rng.normal(size=(24, 5)) + oracle[:, None]

    recorder = Recorder()
    _, losses = train_ranker(features, clip_video, oracle, hidden=8, dropout=0.0, lr=1e-2,
                             weight_decay=0.0, epochs=5, batch_pairs=4, seed=0,
                             progress=recorder)  # fmt: skip
    assert recorder.calls == [(1, 5)] * 5 and len(losses) == 5


def test_dataset_stages_announce_their_total_before_the_first_item(tmp_path):
    """ingest, heatmaps, clip_heatmaps, logits: a bar told its total shows the time left."""
    from conftest import TINY_SETTINGS

    from jmrn import synthetic
    from jmrn.heatmaps import Grid
    from jmrn.heatmaps_file import HeatmapsFile, build_heatmaps
    from jmrn.ingest import ingest
    from jmrn.models import build_model
    from jmrn.predict import predict

    raw = tmp_path / "raw"
    synthetic.write(raw / "synthetic.pkl", synthetic.generate(seed=1, videos_per_class=1))
    (raw / "classes.txt").write_text("\n".join(synthetic.CLASS_NAMES) + "\n")
    bars = {name: Recorder() for name in ("ingest", "heatmaps", "clips", "logits")}
    report = ingest("pyskl", raw, tmp_path / "keypoints.h5", dataset="t", layout="coco17_neck",
                    options={"class_names": raw / "classes.txt"}, n_jobs=1,
                    progress=bars["ingest"])  # fmt: skip
    videos = build_heatmaps(tmp_path / "keypoints.h5", tmp_path / "heatmaps.h5",
                            Grid(height=16, width=22), n_jobs=1, progress=bars["heatmaps"])
    clips = build_heatmaps(tmp_path / "keypoints.h5", tmp_path / "clips.h5",
                           Grid(height=16, width=22), clips=(16, 8), n_jobs=1,
                           progress=bars["clips"])  # fmt: skip
    with HeatmapsFile(tmp_path / "heatmaps.h5") as hf:
        joints, classes = len(hf.joint_names), len(hf.class_names)
    model = build_model(TINY_SETTINGS["model"], joints, classes, 3).eval()
    predict(model, tmp_path / "heatmaps.h5", np.arange(7), TINY_SETTINGS,
            torch.device("cpu"), batch_size=4, progress=bars["logits"])  # fmt: skip
    expected = {"ingest": report["videos_read"], "heatmaps": videos["videos"],
                "clips": clips["clips"], "logits": 7}  # fmt: skip
    assert expected["ingest"] == expected["heatmaps"] == 10 and expected["clips"] > 10
    for name, bar in bars.items():
        assert bar.total == expected[name], name
        assert all(total == expected[name] for _, total in bar.calls), name  # known first
        assert sum(done for done, _ in bar.calls) == expected[name], name
