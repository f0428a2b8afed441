"""JHMDB ``joint_positions.mat`` reader: the real files as they are, and small trees in tmp."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from jmrn.layouts import get_layout
from jmrn.readers import get_reader, jhmdb
from jmrn.records import ReadError, Skipped, Video, check_video

REAL = ("joint_positions.mat", "joint_positions_resaved.mat")


def pos_img(frames: int, offset: float = 0.0) -> np.ndarray:
    """A synthetic (2, 15, T) pos_img whose values encode (axis, joint, frame)."""
    axis, joint, frame = np.meshgrid(np.arange(2), np.arange(15), np.arange(frames),
                                      indexing="ij")  # fmt: skip
    return (offset + 100 * axis + 5 * joint + frame / 10).astype(np.float64)


def write_mat(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, data)
    return path


def write_split(raw: Path, cls: str, k: int, lines: list[str]) -> None:
    (raw / "splits").mkdir(parents=True, exist_ok=True)
    (raw / "splits" / f"{cls}_test_split{k}.txt").write_text("\n".join(lines) + "\n")


def make_tree(raw: Path) -> Path:
    """2 classes x 2 videos, synthetic pos_img of 3..6 frames, two split numbers."""
    frames = {("jump", "jump_a"): 3, ("jump", "jump_b"): 4, ("clap", "clap_a"): 5,
              ("clap", "clap_b"): 6}  # fmt: skip
    for (cls, vid), t in frames.items():
        # Other variables before and after, no pos_world: only pos_img may be relied on.
        write_mat(raw / "joint_positions" / cls / vid / "joint_positions.mat",
                  {"scale": np.array([[1.5]]), "pos_img": pos_img(t, offset=t),
                   "viewpoint": "E"})  # fmt: skip
    # JHMDB's split files have a trailing space on each line.
    write_split(raw, "jump", 1, ["jump_a.avi 1 ", "jump_b.avi 2 "])
    write_split(raw, "clap", 1, ["clap_a.avi 1 ", "clap_b.avi 2 ", ""])
    write_split(raw, "jump", 2, ["jump_a.avi 2", "jump_b.avi 1"])
    write_split(raw, "clap", 2, ["clap_a.avi 1", "clap_b.avi 2"])
    return raw


def load_all(index) -> dict[str, Video | Skipped]:
    return {e["video_id"]: jhmdb.load(pickle.loads(pickle.dumps(e))) for e in index.entries}


def test_dispatch():
    assert get_reader("jhmdb_mat") is jhmdb


@pytest.mark.parametrize("name", REAL)
def test_real_file_keypoints_are_pos_img(shared_data: Path, tmp_path: Path, name: str):
    real = shared_data / "formats" / "jhmdb_mat" / name
    video_dir = tmp_path / "joint_positions" / "catch" / "Goal_Keeping_Tips_catch_f_cm_np1_fr_med_2"
    video_dir.mkdir(parents=True)
    shutil.copyfile(real, video_dir / "joint_positions.mat")
    write_split(tmp_path, "catch", 1, ["Goal_Keeping_Tips_catch_f_cm_np1_fr_med_2.avi 2"])
    index = jhmdb.index(tmp_path, {})
    assert index.layout == "jhmdb15" and index.class_names == ["catch"]
    assert index.splits == {"train1": [], "test1": ["Goal_Keeping_Tips_catch_f_cm_np1_fr_med_2"]}
    (video,) = load_all(index).values()
    assert isinstance(video, Video)
    expected = scipy.io.loadmat(real)["pos_img"].transpose(2, 1, 0)
    assert video.keypoints.shape == (40, 1, 15, 3) and video.keypoints.dtype == np.float32
    np.testing.assert_allclose(video.keypoints[:, 0, :, :2], expected, rtol=1e-6)
    np.testing.assert_allclose(video.keypoints[0, 0, 0], (286.5, 106.5, 1.0))
    assert (video.keypoints[..., 2] == 1).all()
    assert video.image_size == (240, 320) and video.labels == (0,) and video.boxes is None
    assert video.source == str(video_dir / "joint_positions.mat")
    assert isinstance(check_video(video, get_layout("jhmdb15").num_joints, 1, False), Video)


def test_real_files_identical(shared_data: Path, tmp_path: Path):
    for k, name in enumerate(REAL):
        video_dir = tmp_path / "joint_positions" / "catch" / f"v{k}"
        video_dir.mkdir(parents=True)
        shutil.copyfile(shared_data / "formats" / "jhmdb_mat" / name,
                        video_dir / "joint_positions.mat")  # fmt: skip
    write_split(tmp_path, "catch", 1, ["v0.avi 1", "v1.avi 2"])
    videos = load_all(jhmdb.index(tmp_path, {}))
    np.testing.assert_array_equal(videos["v0"].keypoints, videos["v1"].keypoints)


def test_tree_classes_labels_splits(tmp_path: Path):
    raw = make_tree(tmp_path)
    index = jhmdb.index(raw, {})
    assert index.layout == "jhmdb15" and index.multi_label is False and index.parallel
    assert index.class_names == ["clap", "jump"]
    assert index.splits == {
        "train1": ["clap_a", "jump_a"], "test1": ["clap_b", "jump_b"],
        "train2": ["clap_a", "jump_b"], "test2": ["clap_b", "jump_a"],
    }  # fmt: skip
    videos = load_all(index)
    assert sorted(videos) == ["clap_a", "clap_b", "jump_a", "jump_b"]
    for vid, label, frames in (("clap_a", 0, 5), ("clap_b", 0, 6), ("jump_a", 1, 3),
                               ("jump_b", 1, 4)):  # fmt: skip
        video = videos[vid]
        assert isinstance(video, Video), video
        assert video.labels == (label,) and video.keypoints.shape == (frames, 1, 15, 3)
        np.testing.assert_allclose(video.keypoints[..., :2],
                                   pos_img(frames, frames).transpose(2, 1, 0)[:, None],
                                   rtol=1e-6)  # fmt: skip
        # frame 2, joint 3: x = offset + 15 + 0.2, y = x + 100
        np.testing.assert_allclose(video.keypoints[2, 0, 3], (frames + 15.2, frames + 115.2, 1),
                                   rtol=1e-6)  # fmt: skip


def test_class_names_and_image_size_options(tmp_path: Path):
    raw = make_tree(tmp_path)
    names = tmp_path / "classes.txt"
    names.write_text("wave\njump\n")  # no "clap": its videos have no label
    index = jhmdb.index(raw, {"class_names": str(names), "image_size": [480, 640]})
    assert index.class_names == ["wave", "jump"]
    videos = load_all(index)
    assert videos["jump_a"].labels == (1,) and videos["jump_a"].image_size == (480, 640)
    assert isinstance(videos["clap_a"], Skipped)
    assert "unknown label" in videos["clap_a"].reason and "clap" in videos["clap_a"].reason


@pytest.mark.parametrize("size", [[240], "big", [0, 320]])
def test_bad_image_size_option(tmp_path: Path, size):
    with pytest.raises(ReadError, match="image_size"):
        jhmdb.index(make_tree(tmp_path), {"image_size": size})


def _damage(path: Path, how: str, real: Path | None) -> None:
    if how == "not a mat":
        path.write_text("pos_img = [1 2 3]\n")
    elif how == "empty":
        path.write_bytes(b"")
    elif how.startswith("truncated"):
        data = real.read_bytes() if real is not None else path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if how.endswith("half") else data[:100])


@pytest.mark.parametrize("how", ["not a mat", "empty", "truncated half", "truncated 100"])
def test_damaged_mat_skipped(tmp_path: Path, how: str):
    raw = make_tree(tmp_path)
    mat = raw / "joint_positions" / "jump" / "jump_a" / "joint_positions.mat"
    _damage(mat, how, None)
    videos = load_all(jhmdb.index(raw, {}))
    assert isinstance(videos["jump_a"], Skipped), how
    assert videos["jump_a"].source == str(mat)
    assert isinstance(videos["jump_b"], Video)


@pytest.mark.parametrize("name", REAL)
@pytest.mark.parametrize("how", ["truncated half", "truncated 100"])
def test_truncated_real_mat_skipped(shared_data: Path, tmp_path: Path, name: str, how: str):
    raw = make_tree(tmp_path)
    mat = raw / "joint_positions" / "jump" / "jump_a" / "joint_positions.mat"
    _damage(mat, how, shared_data / "formats" / "jhmdb_mat" / name)
    skipped = load_all(jhmdb.index(raw, {}))["jump_a"]
    assert isinstance(skipped, Skipped)
    assert "truncated" in skipped.reason or "cannot read" in skipped.reason


def test_matlab_v73_skipped(tmp_path: Path):
    h5py = pytest.importorskip("h5py")
    raw = make_tree(tmp_path)
    mat = raw / "joint_positions" / "jump" / "jump_a" / "joint_positions.mat"
    with h5py.File(mat, "w", userblock_size=512) as f:
        f["pos_img"] = pos_img(3).T  # MATLAB v7.3 = HDF5 with a 512-byte MATLAB header
    with open(mat, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116))
        f.seek(124)
        f.write(b"\x00\x02IM")
    skipped = load_all(jhmdb.index(raw, {}))["jump_a"]
    assert isinstance(skipped, Skipped) and "v7.3" in skipped.reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"pos_world": pos_img(3)}, "no 'pos_img'"),
        ({"pos_img": pos_img(3)[0]}, "shape"),
        ({"pos_img": np.zeros((3, 15, 4))}, "shape"),
        ({"pos_img": pos_img(3) * 1j}, "pos_img is not numeric (dtype complex128)"),
    ],
)
def test_bad_pos_img_skipped(tmp_path: Path, data: dict, reason: str):
    raw = make_tree(tmp_path)
    write_mat(raw / "joint_positions" / "jump" / "jump_a" / "joint_positions.mat", data)
    skipped = load_all(jhmdb.index(raw, {}))["jump_a"]
    assert isinstance(skipped, Skipped) and reason in skipped.reason


def test_video_dir_without_mat_skipped(tmp_path: Path):
    raw = make_tree(tmp_path)
    (raw / "joint_positions" / "jump" / "jump_a" / "joint_positions.mat").unlink()
    skipped = load_all(jhmdb.index(raw, {}))["jump_a"]
    assert isinstance(skipped, Skipped) and "joint_positions.mat" in skipped.reason


def test_split_video_absent_on_disk_stays_listed(tmp_path: Path):
    raw = make_tree(tmp_path)
    write_split(raw, "jump", 1, ["jump_a.avi 1", "jump_b.avi 2", "jump_gone.avi 2"])
    index = jhmdb.index(raw, {})
    assert "jump_gone" in index.splits["test1"]
    assert "jump_gone" not in {e["video_id"] for e in index.entries}


def test_split_mark_zero_is_in_neither(tmp_path: Path):
    raw = make_tree(tmp_path)
    write_split(raw, "jump", 1, ["jump_a.avi 1", "jump_b.avi 0"])
    splits = jhmdb.index(raw, {}).splits
    assert "jump_b" not in splits["train1"] + splits["test1"]


@pytest.mark.parametrize("line", ["jump_b.avi", "jump_b.avi 3", "jump_b.avi 1 extra", "1 jump_b"])
def test_malformed_split_line(tmp_path: Path, line: str):
    raw = make_tree(tmp_path)
    write_split(raw, "jump", 1, ["jump_a.avi 1", line])
    with pytest.raises(ReadError, match=r"jump_test_split1\.txt, line 2"):
        jhmdb.index(raw, {})


def test_missing_joint_positions_dir(tmp_path: Path):
    raw = make_tree(tmp_path)
    shutil.rmtree(raw / "joint_positions")
    with pytest.raises(ReadError, match="joint_positions"):
        jhmdb.index(raw, {})
    with pytest.raises(ReadError, match="does not exist"):
        jhmdb.index(tmp_path / "nowhere", {})


def test_no_videos(tmp_path: Path):
    raw = make_tree(tmp_path)
    shutil.rmtree(raw / "joint_positions")
    (raw / "joint_positions" / "jump").mkdir(parents=True)
    with pytest.raises(ReadError, match="no video"):
        jhmdb.index(raw, {})


def test_missing_splits(tmp_path: Path):
    raw = make_tree(tmp_path)
    (raw / "splits" / "clap_test_split2.txt").unlink()
    with pytest.raises(ReadError, match=r"split 2.*clap"):
        jhmdb.index(raw, {})
    shutil.rmtree(raw / "splits")
    with pytest.raises(ReadError, match="splits"):
        jhmdb.index(raw, {})
    (raw / "splits").mkdir()
    with pytest.raises(ReadError, match="test_split"):
        jhmdb.index(raw, {})


def test_duplicate_video_id(tmp_path: Path):
    raw = make_tree(tmp_path)
    write_mat(raw / "joint_positions" / "clap" / "jump_a" / "joint_positions.mat",
              {"pos_img": pos_img(3)})  # fmt: skip
    with pytest.raises(ReadError, match="jump_a"):
        jhmdb.index(raw, {})
