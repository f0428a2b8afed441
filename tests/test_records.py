"""check_video: the checks every format shares, each with a planted bad value."""

from __future__ import annotations

import numpy as np
import pytest

from jmrn.layouts import convert, get_layout
from jmrn.records import (
    MAX_CONFIDENCE,
    Skipped,
    Video,
    check_placeholder_xy,
    check_video,
    image_size_problem,
)

HEIGHT, WIDTH = 256, 340


def video(frames=10, persons=1, joints=17, conf=0.9, labels=(0,), size=(HEIGHT, WIDTH), seed=0):
    """Joints uniformly inside a 340x256 frame."""
    rng = np.random.default_rng(seed)
    kp = np.empty((frames, persons, joints, 3), np.float32)
    kp[..., 0] = rng.uniform(0, WIDTH, kp.shape[:3])
    kp[..., 1] = rng.uniform(0, HEIGHT, kp.shape[:3])
    kp[..., 2] = conf
    return Video("v", kp, size, labels, "file.json")


def check(v, **kw):
    return check_video(v, v.keypoints.shape[2], 3, False, **kw)


def test_clean_video_passes_untouched_with_zero_counts():
    v = video()
    out = check(v)
    assert isinstance(out, Video)
    np.testing.assert_array_equal(out.keypoints, v.keypoints)
    assert out.stats == {"detected": 170, "outside": 0, "clipped": 0, "placeholders": 0,
                         "frames": 10, "empty_frames": 0}  # fmt: skip


def test_joints_outside_the_frame_are_set_missing_and_counted():
    v = video()
    kp = v.keypoints
    kp[0, 0, 0, 0] = 1e30  # far right
    kp[1, 0, 5, 1] = 3e38  # far below (float32 max is 3.4e38)
    kp[2, 0, 3, 0] = -0.1 * WIDTH - 1  # just beyond the 10% tolerance on the left
    kp[3, 0, 4, 1] = HEIGHT * 1.1 + 0.5  # just beyond it at the bottom
    kp[4, 0, 6, 0] = -0.1 * WIDTH  # on the tolerance border: inside
    kp[5, 0, 7, 1] = HEIGHT * 1.1  # on the border: inside
    out = check(v)
    assert isinstance(out, Video)
    assert out.stats["outside"] == 4 and out.stats["detected"] == 170
    for t, j in [(0, 0), (1, 5), (2, 3), (3, 4)]:
        assert (out.keypoints[t, 0, j] == 0).all()  # missing: conf 0, x = y = 0
    assert out.keypoints[4, 0, 6, 0] == pytest.approx(-34.0)
    assert out.keypoints[5, 0, 7, 1] == pytest.approx(HEIGHT * 1.1)
    assert np.abs(out.keypoints[..., :2]).max() <= WIDTH * 1.1


def test_frame_tolerance_zero_is_the_frame_itself():
    v = video()
    v.keypoints[0, 0, 0, 0] = WIDTH + 0.5
    assert check(v).stats["outside"] == 0
    assert check(v, frame_tolerance=0.0).stats["outside"] == 1


def test_too_many_joints_outside_is_a_skip_that_blames_the_image_size():
    v = video()  # 170 detected joints
    v.keypoints[:, :, :4, 0] += WIDTH * 1.2  # 40 joints pushed out to the right
    out = check(v)
    assert isinstance(out, Skipped)
    assert out.reason == ("40 of 170 detected joints outside the 340x256 frame (tolerance 10%): "
                          "wrong source.image_size?")
    assert isinstance(check(v, max_outside_fraction=0.25), Video)  # 40/170 = 0.235
    assert check(v, max_outside_fraction=0.25).stats["outside"] == 40


def test_normalised_coordinates_read_as_pixels_of_a_wrong_size_are_caught():
    v = video(size=(26, 34))  # pixels of 340x256 declared as a 34x26 frame
    out = check(v)
    assert isinstance(out, Skipped) and "34x26 frame" in out.reason


def test_confidences_slightly_above_one_are_clipped_and_counted():
    v = video()
    v.keypoints[0, 0, :3, 2] = [1.05, 1.1, MAX_CONFIDENCE]
    out = check(v)
    assert isinstance(out, Video) and out.stats["clipped"] == 3
    assert out.keypoints[..., 2].max() == 1.0
    np.testing.assert_array_equal(out.keypoints[0, 0, :3, :2], v.keypoints[0, 0, :3, :2])


def test_confidence_far_above_one_is_not_a_probability():
    v = video()
    v.keypoints[3, 0, 2, 2] = 50
    out = check(v)
    assert isinstance(out, Skipped)
    assert out.reason == "confidence 50 above 1.2: not a probability"
    v.keypoints[3, 0, 2, 2] = 1.21
    assert check(v).reason == "confidence 1.21 above 1.2: not a probability"


@pytest.mark.parametrize("label, shown", [
    (1.7, "1.7"), ("3", "'3'"), (None, "None"), (True, "True"), (False, "False"),
    (float("nan"), "nan"), (np.float64(2.0), "2.0"), (np.bool_(True), "True"),
])  # fmt: skip
def test_a_label_that_is_not_an_integer_is_a_skip_naming_it(label, shown):
    out = check(video(labels=(label,)))
    assert isinstance(out, Skipped)
    assert out.reason == f"label is not an integer: {shown}"


def test_integer_labels_of_any_integer_type_pass():
    for label in (2, np.int64(2), np.int32(2), np.uint8(2)):
        out = check(video(labels=(label,)))
        assert isinstance(out, Video) and out.labels == (2,) and type(out.labels[0]) is int


def test_placeholder_xy_removes_exactly_the_joints_at_that_pixel():
    v = video()
    v.keypoints[:, 0, 9, :2] = 1.0  # left_wrist at (1, 1) in all 10 frames
    v.keypoints[0, 0, 2, :2] = (1.0, 2.0)  # same x, other y: a real detection
    out = check(v, placeholder_xy=(1, 1))
    assert out.stats["placeholders"] == 10 and out.stats["detected"] == 160
    assert (out.keypoints[:, 0, 9] == 0).all()
    np.testing.assert_array_equal(out.keypoints[0, 0, 2, :2], [1.0, 2.0])
    assert check(v).stats["placeholders"] == 0  # off by default
    assert (check(v).keypoints[:, 0, 9, :2] == 1).all()


def test_a_video_of_placeholders_only_has_no_joint_detected():
    v = video()
    v.keypoints[..., :2] = 1.0
    out = check(v, placeholder_xy=[1, 1])
    assert isinstance(out, Skipped)
    assert out.reason == "no joint detected in any frame (170 at placeholder_xy removed)"


@pytest.mark.parametrize("value, problem", [
    (240, "is 240, expected (height, width)"),
    ((240, 320, 3), "has 3 values (240, 320, 3), expected (height, width)"),
    ((0, 320), "is (0, 320), expected two positive integers"),
    ((-240, 320), "is (-240, 320), expected two positive integers"),
    ((240.5, 320), "is (240.5, 320), expected two positive integers"),
    ("240x320", "is '240x320', expected (height, width)"),
])  # fmt: skip
def test_invalid_image_size(value, problem):
    assert image_size_problem(value) == problem
    out = check(video(size=value))
    assert isinstance(out, Skipped) and out.reason == f"invalid image size: image_size {problem}"


def test_integral_float_image_size_is_accepted():
    out = check(video(size=(256.0, np.float32(340))))
    assert isinstance(out, Video) and out.image_size == (256, 340)


@pytest.mark.parametrize("value", [[1], [1, float("inf")], "1,1", [True, 1], [1, "1"], 3])
def test_placeholder_xy_setting_is_validated(value):
    with pytest.raises(ValueError, match=r"ingest\.placeholder_xy must be null or \[x, y\]"):
        check_placeholder_xy(value)


def test_placeholder_xy_setting_accepts_null_and_two_numbers():
    assert check_placeholder_xy(None) is None
    assert check_placeholder_xy([1, 2.5]) == (1.0, 2.5)


def test_layout_conversion_of_a_huge_coordinate_cannot_overflow():
    """A 3e38 shoulder would make the derived neck inf; it is removed first."""
    v = video()
    v.keypoints[:, 0, 5, 0] = 3e38  # left_shoulder of every frame
    out = check(v)
    neck = convert(out.keypoints, get_layout("coco17"), get_layout("coco17_neck"))
    assert np.isfinite(neck).all() and (neck[..., 17, 2] == 0).all()


@pytest.mark.parametrize("empty, reason", [
    ([5, 6, 7, 8, 9], None),  # half empty, one run as long as the content: kept
    ([0, 2, 4, 6, 8, 9], "mostly empty frames (6 of 10 frames have no detected joint; more "
                         "than 0.5 of them)"),
    ([0, 1, 2, 3, 4, 5], "a gap of 6 empty frames longer than its 4 frames with a pose "
                         "(frames 0..5 of 10: a stray frame number?)"),  # leading
    ([4, 5, 6, 7, 8, 9], "a gap of 6 empty frames longer than its 4 frames with a pose "
                         "(frames 4..9 of 10: a stray frame number?)"),  # trailing
])  # fmt: skip
def test_empty_frames_are_counted_and_a_mostly_empty_video_is_skipped(empty, reason):
    v = video(frames=10, persons=2)
    v.keypoints[empty, ..., 2] = 0
    out = check(v)
    if reason is None:
        assert isinstance(out, Video) and out.stats["empty_frames"] == len(empty)
        assert out.stats["frames"] == 10
    else:
        assert isinstance(out, Skipped) and out.reason == reason


def test_frames_emptied_by_tidying_count_as_empty():
    v = video(frames=10)
    v.keypoints[:3, ..., 0] = 10 * WIDTH  # every joint far outside in frames 0-2
    out = check(v, max_outside_fraction=0.5)
    assert out.stats["outside"] == 3 * 17 and out.stats["empty_frames"] == 3
