"""The clip classifier started from the video model's weights (``clips.init: video``, issue 24
§2): the weights it starts from, and the checks that refuse a video model that does not fit."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import TINY_SETTINGS
from test_train import run


def settings(**train) -> dict:
    s = copy.deepcopy(TINY_SETTINGS)
    s["train"].update(epochs=1, **train)
    return s


@pytest.fixture(scope="module")
def video_model(tiny_heatmaps, tmp_path_factory):
    out = tmp_path_factory.mktemp("video")
    run(tiny_heatmaps, out, settings())
    return out / "model.pt"


def weights(path) -> dict:
    return torch.load(path, weights_only=True)["model"]


def test_it_starts_from_the_video_models_weights(tiny_clip_heatmaps, video_model, tmp_path):
    # lr 0: the weights never move, so the published clip model holds the ones it started
    # from; with the same seed, scratch starts where the video model started before training
    run(tiny_clip_heatmaps, tmp_path / "init", settings(lr=0.0), init_from=video_model)
    run(tiny_clip_heatmaps, tmp_path / "scratch", settings(lr=0.0))
    video, init = weights(video_model), weights(tmp_path / "init" / "model.pt")
    scratch = weights(tmp_path / "scratch" / "model.pt")
    for name in ("extractor.0.weight", "select_fc.weight", "fc.weight"):  # trained by the video
        assert torch.equal(init[name], video[name]), name
        assert not torch.equal(scratch[name], video[name]), name


def test_a_video_model_that_saw_the_validation_videos_is_refused(tiny_heatmaps,
                                                                 tiny_clip_heatmaps, tmp_path):
    other_seed = tmp_path / "video_seed_1"
    run(tiny_heatmaps, other_seed, settings(seed=1))
    with pytest.raises(ValueError, match="held out other videos for model selection"):
        run(tiny_clip_heatmaps, tmp_path / "clip", settings(), init_from=other_seed / "model.pt")
    assert not (tmp_path / "clip" / "model.pt").exists()


def test_another_network_or_a_video_file_is_refused(tiny_heatmaps, tiny_clip_heatmaps,
                                                    video_model, tmp_path):
    wider = settings()
    wider["model"]["c_dim"] = 8
    with pytest.raises(ValueError, match=r"model.pt: model settings .* differ"):
        run(tiny_clip_heatmaps, tmp_path / "wider", wider, init_from=video_model)
    with pytest.raises(ValueError, match="not a clip file"):
        run(tiny_heatmaps, tmp_path / "video", settings(), init_from=video_model)
