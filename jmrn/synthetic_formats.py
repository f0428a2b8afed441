"""The built-in synthetic data written out in every raw format the readers accept.

Reader tests and the ingest benchmark need datasets in each real on-disk format whose true
keypoints are known, of any size, without downloading anything. Each writer takes the dict of
``jmrn.synthetic.generate`` (COCO-17 pixels, several persons) and lays it out as that format's
public release does (the samples in ../shared/data/formats):

- ``write_pyskl_multisplit``: PYSKL's HMDB51-style pickle, splits ``train1..K``/``test1..K``;
- ``write_openpose_folders``: OpenPose ``--write_json`` frame files (COCO-18 or BODY_25) per
  ``<class>/<video>/`` folder, plus HMDB's ``splits/<class>_test_split<k>.txt`` files;
- ``write_stgcn_json``: ST-GCN's Kinetics-skeleton ``<split>/<video>.json`` + label files;
- ``write_custom_layout_pickle``: a PYSKL pickle of a 13-joint skeleton no layout in
  ``jmrn.layouts`` describes (int32 pixels), with its ``skeleton.yaml``;
- ``write_jhmdb_mat``: JHMDB's ``joint_positions/<class>/<video>/joint_positions.mat`` tree
  with its split files.

Everything is a function of ``data`` and ``seed``: the same arguments give the same files.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import yaml

from jmrn.layouts import COCO17, OPENPOSE18, OPENPOSE_BODY25, Layout, convert
from jmrn.synthetic import CLASS_NAMES, write

PYSKL_KEYS = ("frame_dir", "label", "img_shape", "original_shape", "total_frames",
              "keypoint", "keypoint_score")  # fmt: skip
OPENPOSE_LAYOUTS = {OPENPOSE18.name: OPENPOSE18, OPENPOSE_BODY25.name: OPENPOSE_BODY25}
FEET = ("big_toe", "small_toe", "heel")
# The empty per-person lists of a real --write_json file (only the body model was run).
_OPENPOSE_EMPTY = ("face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d",
                   "pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d",
                   "hand_right_keypoints_3d")  # fmt: skip
OVERSHOOT_FRACTION = 0.02  # share of confidences scaled by (1 + overshoot)

# COCO-17 plus feet copied from the ankles: lets ``convert`` build BODY_25 (mid_hip derived).
_COCO17_FEET = Layout(
    "coco17_feet",
    COCO17.joints + tuple(f"{side}_{part}" for side in ("left", "right") for part in FEET),
    COCO17.groups,
)

# A skeleton that is not built in: made-up names, derived from COCO-17 by linear combinations.
SYNTHETIC13_JOINTS = (
    "head_top", "neck", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
    "l_hand", "r_hand", "pelvis", "l_knee", "r_knee", "l_foot", "r_foot",
)  # fmt: skip
SYNTHETIC13_FLIP_PAIRS = [
    ["l_shoulder", "r_shoulder"], ["l_elbow", "r_elbow"], ["l_hand", "r_hand"],
    ["l_knee", "r_knee"], ["l_foot", "r_foot"],
]  # fmt: skip
SYNTHETIC13_GROUPS = {
    "head": ["head_top"],
    "left_arm": ["l_shoulder", "l_elbow", "l_hand"],
    "right_arm": ["r_shoulder", "r_elbow", "r_hand"],
    "left_lower_leg": ["l_knee", "l_foot"],
    "right_lower_leg": ["r_knee", "r_foot"],
}
# joint -> {COCO-17 joint: weight}; a joint is present only where all its parents are.
_SYNTHETIC13_FROM_COCO = {
    # top of the head: the nose pushed on away from the neck (shoulder midpoint) by 0.7x
    "head_top": {"nose": 1.7, "left_shoulder": -0.35, "right_shoulder": -0.35},
    "neck": {"left_shoulder": 0.5, "right_shoulder": 0.5},
    "l_shoulder": {"left_shoulder": 1.0}, "r_shoulder": {"right_shoulder": 1.0},
    "l_elbow": {"left_elbow": 1.0}, "r_elbow": {"right_elbow": 1.0},
    # middle of the hand: a quarter of the forearm beyond the wrist
    "l_hand": {"left_wrist": 1.25, "left_elbow": -0.25},
    "r_hand": {"right_wrist": 1.25, "right_elbow": -0.25},
    "pelvis": {"left_hip": 0.5, "right_hip": 0.5},
    "l_knee": {"left_knee": 1.0}, "r_knee": {"right_knee": 1.0},
    "l_foot": {"left_ankle": 1.0}, "r_foot": {"right_ankle": 1.0},
}  # fmt: skip


def _class_names(data: dict, class_names: list[str] | None) -> list[str]:
    """The names of the labels (synthetic's by default); a renaming must cover every label."""
    names = list(class_names) if class_names is not None else list(CLASS_NAMES)
    top = max(int(a["label"]) for a in data["annotations"])
    if top >= len(names):
        raise ValueError(f"class_names has {len(names)} names, the data has label {top}")
    if len(set(names)) != len(names):
        raise ValueError("class_names names a class twice")
    return names


def _xyc(ann: dict) -> np.ndarray:
    """(M, T, 17, 3) float64 x, y, confidence of one generated annotation."""
    score = np.asarray(ann["keypoint_score"], np.float64)[..., None]
    return np.concatenate([np.asarray(ann["keypoint"], np.float64), score], axis=-1)


def _write_classes(path: Path, names: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(names) + "\n")


def split_marks(
    labels: np.ndarray,
    num_splits: int,
    *,
    test_fraction: float = 0.3,
    unused_fraction: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """(num_splits, N) int8 marks in HMDB's code (1 train, 2 test, 0 unused), by label.

    HMDB51 draws 70 train and 30 test videos per class, three times, and leaves the rest
    unused; this does the same in proportion, with a different draw per split (seeded), and at
    least one train and one test video in every class of two or more videos.
    """
    labels = np.asarray(labels)
    marks = np.ones((num_splits, len(labels)), dtype=np.int8)
    for k in range(num_splits):
        rng = np.random.default_rng((seed, 1, k))
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            n = len(members)
            n_unused = min(round(unused_fraction * n), max(n - 2, 0))
            used = n - n_unused
            n_test = round(test_fraction * used)
            if used >= 2:
                n_test = min(max(n_test, 1), used - 1)
            marks[k, members[:n_test]] = 2
            marks[k, members[n_test : n_test + n_unused]] = 0
    return marks


def write_pyskl_multisplit(
    data: dict,
    out_dir: str | Path,
    splits: int = 3,
    *,
    name: str = "synthetic_multisplit",
    test_fraction: float = 0.3,
    seed: int = 0,
    class_names: list[str] | None = None,
) -> dict:
    """``out_dir/<name>.pkl`` like PYSKL's HMDB51 release, and ``out_dir/classes.txt``.

    Split k (``train<k>``/``test<k>``) is its own stratified draw (``split_marks``) covering
    every video. Annotations keep only the keys of the release (no ``active_frames``).
    """
    out_dir = Path(out_dir)
    names = _class_names(data, class_names)
    annotations = [{k: a[k] for k in PYSKL_KEYS if k in a} for a in data["annotations"]]
    ids = np.array([a["frame_dir"] for a in annotations])
    marks = split_marks([a["label"] for a in annotations], splits, test_fraction=test_fraction,
                        seed=seed)  # fmt: skip
    split = {}
    for k in range(splits):
        split[f"train{k + 1}"] = ids[marks[k] == 1].tolist()
        split[f"test{k + 1}"] = ids[marks[k] == 2].tolist()
    pickle_path = out_dir / f"{name}.pkl"
    write(pickle_path, {"split": split, "annotations": annotations})
    _write_classes(out_dir / "classes.txt", names)
    return {"pickle": pickle_path, "classes": out_dir / "classes.txt", "videos": len(ids),
            "splits": {k: len(v) for k, v in split.items()}}  # fmt: skip


def openpose_keypoints(
    ann: dict,
    layout: str = "openpose18",
    image_size: tuple[int, int] | None = None,
    feet: str = "ankle",
) -> np.ndarray:
    """(M, T, V, 3) float64 of one annotation in an OpenPose layout, in ``image_size`` pixels.

    Neck and mid-hip are the shoulder / hip midpoints (``jmrn.layouts.convert``). BODY_25's
    feet, which COCO-17 lacks, are the ankle's position and confidence (``feet="ankle"``) or
    missing, 0, 0, 0 (``feet="missing"``). Coordinates are rescaled from the annotation's
    ``img_shape`` to ``image_size`` (H, W) when that is given.
    """
    if layout not in OPENPOSE_LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(OPENPOSE_LAYOUTS)}, got {layout!r}")
    if feet not in ("ankle", "missing"):
        raise ValueError(f"feet must be 'ankle' or 'missing', got {feet!r}")
    xyc = _xyc(ann)
    if image_size is not None:
        height, width = ann["img_shape"]
        xyc[..., :2] *= (image_size[1] / width, image_size[0] / height)
    if layout == OPENPOSE18.name:
        return convert(xyc, COCO17, OPENPOSE18)
    ankles = xyc[..., [COCO17.index("left_ankle"), COCO17.index("right_ankle")], :]
    foot = np.repeat(ankles, len(FEET), axis=-2)  # left x3, right x3, as in _COCO17_FEET
    if feet == "missing":
        foot = np.zeros_like(foot)
    return convert(np.concatenate([xyc, foot], axis=-2), _COCO17_FEET, OPENPOSE_BODY25)


def _overshoot(conf: np.ndarray, overshoot: float, rng: np.random.Generator) -> np.ndarray:
    """Scale a random ~2% of the detected confidences by (1 + overshoot), as real OpenPose
    output sometimes exceeds 1; the draw happens whatever ``overshoot`` is (stable files)."""
    hit = (rng.random(conf.shape) < OVERSHOOT_FRACTION) & (conf > 0)
    return np.where(hit, conf * (1.0 + overshoot), conf)


def _flat_values(person: np.ndarray) -> list:
    """(V, 3) as OpenPose's flat list, a missing value written ``0`` as OpenPose does."""
    return [v if v else 0 for v in person.ravel().tolist()]


def _write_openpose_frames(folder: Path, video: str, kp: np.ndarray, present: np.ndarray,
                           extra: dict | None = None) -> None:
    """One OpenPose ``--write_json`` file per frame of ``kp`` (M, T, V, 3) in ``folder``,
    compact JSON as OpenPose writes it, holding the persons ``present`` (M, T) in that frame
    (with ``extra`` fields each)."""
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(kp.shape[1]):
        people = [{"person_id": [-1], "pose_keypoints_2d": _flat_values(kp[m, t]), **(extra or {})}
                  for m in np.flatnonzero(present[:, t])]  # fmt: skip
        text = json.dumps({"version": 1.3, "people": people}, separators=(",", ":"))
        (folder / f"{video}_{t:012d}_keypoints.json").write_text(text)


def write_openpose_folders(
    data: dict,
    out_dir: str | Path,
    layout: str = "openpose18",
    *,
    image_size: tuple[int, int] = (240, 320),
    hmdb_splits: int = 3,
    test_fraction: float = 0.3,
    unused_fraction: float = 0.0,
    overshoot: float = 0.0,
    feet: str = "ankle",
    seed: int = 0,
    class_names: list[str] | None = None,
    frame_sizes: dict[str, tuple[int, int]] | None = None,
) -> dict:
    """OpenPose ``--write_json`` output: ``<video>_<t:012d>_keypoints.json`` files in
    ``out_dir/<class>/<video>/``.

    One file per frame (0-based, contiguous, also where nobody is detected), compact JSON as
    OpenPose writes it: ``{"version": 1.3, "people": [{"person_id": [-1],
    "pose_keypoints_2d": [x0, y0, c0, ...], <empty face/hand/3d lists>}]}``; x, y rounded to
    0.001 px, c to 1e-6. A person with no detected joint in a frame is left out of that
    frame's ``people``. With ``hmdb_splits`` > 0, HMDB's own split files are written too:
    ``out_dir/splits/<class>_test_split<k>.txt``, a line ``<video>.avi <mark> `` per video of
    the class (1 train, 2 test, 0 unused; sorted, with HMDB's trailing space).
    ``overshoot`` > 0 scales ~2% of the confidences by (1 + overshoot) to exercise clipping.
    ``frame_sizes`` ({video: (H, W)}) gives some videos frames of their own size instead of
    ``image_size`` and writes them to ``out_dir/frame_sizes.csv`` as the ffprobe loop of the
    README does (header ``video_id,width,height``), for ``source.frame_sizes``.
    """
    out_dir = Path(out_dir)
    names = _class_names(data, class_names)
    frame_sizes = dict(frame_sizes or {})
    frame_files = 0
    for i, ann in enumerate(data["annotations"]):
        size = frame_sizes.get(str(ann["frame_dir"]), image_size)
        kp = openpose_keypoints(ann, layout, size, feet)
        rng = np.random.default_rng((seed, 2, i))
        kp[..., 2] = np.round(_overshoot(kp[..., 2], overshoot, rng), 6)
        kp[..., :2] = np.round(kp[..., :2], 3)
        present = (np.asarray(ann["keypoint_score"]) > 0).any(axis=-1)  # (M, T)
        video = str(ann["frame_dir"])
        _write_openpose_frames(out_dir / names[int(ann["label"])] / video, video, kp, present,
                               {key: [] for key in _OPENPOSE_EMPTY})  # fmt: skip
        frame_files += kp.shape[1]
    if frame_sizes:
        (out_dir / "frame_sizes.csv").write_text("video_id,width,height\n" + "".join(
            f"{video},{w},{h}\n" for video, (h, w) in sorted(frame_sizes.items())))
    if hmdb_splits > 0:
        write_hmdb_splits(data, out_dir / "splits", hmdb_splits, seed=seed, class_names=names,
                          test_fraction=test_fraction, unused_fraction=unused_fraction)  # fmt: skip
    return {"videos": len(data["annotations"]), "frame_files": frame_files, "layout": layout}


def write_hmdb_splits(
    data: dict,
    split_dir: str | Path,
    num_splits: int = 3,
    *,
    test_fraction: float = 0.3,
    unused_fraction: float = 0.0,
    seed: int = 0,
    class_names: list[str] | None = None,
) -> list[Path]:
    """HMDB51's ``<class>_test_split<k>.txt`` files (k = 1..num_splits) of ``split_marks``."""
    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    names = _class_names(data, class_names)
    labels = np.array([int(a["label"]) for a in data["annotations"]])
    videos = np.array([str(a["frame_dir"]) for a in data["annotations"]])
    marks = split_marks(labels, num_splits, test_fraction=test_fraction,
                        unused_fraction=unused_fraction, seed=seed)  # fmt: skip
    paths = []
    for k in range(num_splits):
        for label in np.unique(labels):
            rows = np.flatnonzero(labels == label)
            rows = rows[np.argsort(videos[rows], kind="stable")]
            path = split_dir / f"{names[label]}_test_split{k + 1}.txt"
            path.write_text("".join(f"{videos[r]}.avi {marks[k, r]} \n" for r in rows))
            paths.append(path)
    return paths


def write_stgcn_json(
    data: dict,
    out_dir: str | Path,
    *,
    image_size: tuple[int, int] = (256, 340),
    split_names: dict[str, str] | None = None,
    class_names: list[str] | None = None,
    empty_videos: int = 0,
    no_skeleton: int = 0,
    decimals: int = 3,
    first_frame_index: int = 0,
    seed: int = 0,
) -> dict:
    """ST-GCN's Kinetics-skeleton layout: ``out_dir/<split>/<video>.json`` + ``<split>_label.json``.

    A video file is ``{"data": [{"frame_index": i, "skeleton": [{"pose": [x/W, y/H, ...] (36),
    "score": [c, ...] (18)}]}], "label": name, "label_index": k}``: COCO-17 converted to
    OpenPose-18, normalised by the frame size and rounded to ``decimals`` as in the release
    (a reader de-normalises with ``image_size``, so coordinates come back rescaled from the
    generated frame to it). ``split_names`` maps the data's splits to folder names (default
    train -> kinetics_train, test -> kinetics_val); ``class_names`` renames the classes.
    Two kinds of unusable video (seeded picks, disjoint), each for one skip path of a reader:
    ``empty_videos`` get ``"data": []`` (a real empty file, e.g. the shared ``ta_chi.json``)
    but ``has_skeleton`` true, so only the frames say so; ``no_skeleton`` videos keep their
    frames but are labelled ``has_skeleton`` false, so only the flag says so. (In the release
    the two go together.) Returns the counts and the ids of both kinds.
    """
    out_dir = Path(out_dir)
    split_names = split_names or {"train": "kinetics_train", "test": "kinetics_val"}
    names = _class_names(data, class_names)
    annotations = data["annotations"]
    if empty_videos + no_skeleton > len(annotations):
        raise ValueError(f"empty_videos + no_skeleton = {empty_videos + no_skeleton} is more "
                         f"than the {len(annotations)} videos")  # fmt: skip
    pick = np.random.default_rng((seed, 3)).permutation(len(annotations))
    empty = {str(annotations[i]["frame_dir"]) for i in pick[:empty_videos]}
    no_skel = {str(annotations[i]["frame_dir"])
               for i in pick[empty_videos : empty_videos + no_skeleton]}  # fmt: skip
    split_of = {str(v): split_names.get(s, s) for s, ids in data["split"].items() for v in ids}
    labels: dict[str, dict] = {folder: {} for folder in dict.fromkeys(split_of.values())}
    for ann in annotations:
        video = str(ann["frame_dir"])
        if video not in split_of:
            continue  # in no split: the release has no folder for it
        folder, label = split_of[video], int(ann["label"])
        frames = []
        if video not in empty:
            kp = openpose_keypoints(ann, OPENPOSE18.name)
            height, width = ann["img_shape"]
            pose = np.round(kp[..., :2] / (width, height), decimals)
            score = np.round(kp[..., 2], decimals)
            present = (np.asarray(ann["keypoint_score"]) > 0).any(axis=-1)  # (M, T)
            for t in range(kp.shape[1]):
                skeleton = [{"pose": _flat_values(pose[m, t]), "score": _flat_values(score[m, t])}
                            for m in np.flatnonzero(present[:, t])]  # fmt: skip
                frames.append({"frame_index": first_frame_index + t, "skeleton": skeleton})
        path = out_dir / folder / f"{video}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"data": frames, "label": names[label], "label_index": label}))
        labels[folder][video] = {"has_skeleton": video not in no_skel,
                                 "label": names[label], "label_index": label}  # fmt: skip
    for folder, entries in labels.items():
        (out_dir / f"{folder}_label.json").write_text(json.dumps(entries))
    return {"videos": sum(len(v) for v in labels.values()), "splits": list(labels),
            "image_size": tuple(image_size), "empty": sorted(empty),
            "no_skeleton": sorted(no_skel)}  # fmt: skip


def synthetic13_keypoints(xyc: np.ndarray) -> np.ndarray:
    """(..., 17, 3) COCO-17 -> (..., 13, 3) ``SYNTHETIC13_JOINTS``; a joint derived from
    several COCO joints is there only where all are (confidence: their minimum)."""
    weights = np.zeros((len(SYNTHETIC13_JOINTS), COCO17.num_joints))
    for j, name in enumerate(SYNTHETIC13_JOINTS):
        for parent, w in _SYNTHETIC13_FROM_COCO[name].items():
            weights[j, COCO17.index(parent)] = w
    parent = weights != 0
    xy = np.einsum("jv,...vc->...jc", weights, xyc[..., :2])
    conf = np.where(parent, xyc[..., None, :, 2], np.inf).min(axis=-1)
    present = conf > 0
    return np.concatenate([np.where(present[..., None], xy, 0.0),
                           np.where(present, conf, 0.0)[..., None]], axis=-1)  # fmt: skip


def write_custom_layout_pickle(
    data: dict,
    out_dir: str | Path,
    *,
    name: str = "synthetic13",
    class_names: list[str] | None = None,
) -> dict:
    """A 13-joint dataset no built-in layout describes: ``<name>.pkl``, ``classes.txt`` and
    ``skeleton.yaml`` (name, joints in array order, flip_pairs, PAA groups).

    The pickle stores ``keypoint`` as int32 pixels (rounded; some real files store integers)
    and ``keypoint_score`` float32; missing joints are 0, 0 with score 0.
    """
    out_dir = Path(out_dir)
    names = _class_names(data, class_names)
    annotations = []
    for ann in data["annotations"]:
        kp = synthetic13_keypoints(_xyc(ann))
        new = {k: ann[k] for k in PYSKL_KEYS if k in ann}
        new["keypoint"] = np.rint(kp[..., :2]).astype(np.int32)
        new["keypoint_score"] = kp[..., 2].astype(np.float32)
        annotations.append(new)
    pickle_path = out_dir / f"{name}.pkl"
    write(pickle_path, {"split": {k: list(v) for k, v in data["split"].items()},
                        "annotations": annotations})  # fmt: skip
    _write_classes(out_dir / "classes.txt", names)
    skeleton = {"name": name, "joints": list(SYNTHETIC13_JOINTS),
                "flip_pairs": SYNTHETIC13_FLIP_PAIRS, "groups": SYNTHETIC13_GROUPS}  # fmt: skip
    yaml_path = out_dir / "skeleton.yaml"
    yaml_path.write_text(
        "# Skeleton of the keypoint arrays in " + pickle_path.name + " (jmrn.synthetic_formats)\n"
        + yaml.safe_dump(skeleton, sort_keys=False, default_flow_style=None, width=100)
    )
    return {"pickle": pickle_path, "classes": out_dir / "classes.txt", "skeleton": yaml_path,
            "videos": len(annotations)}  # fmt: skip


# JHMDB's puppet joints from COCO-17 (weights per COCO joint), as for the 13-joint skeleton.
_JHMDB15_FROM_COCO = {
    "neck": {"left_shoulder": 0.5, "right_shoulder": 0.5},
    "belly": {"left_shoulder": 0.25, "right_shoulder": 0.25, "left_hip": 0.25, "right_hip": 0.25},
    "face": {"nose": 1.0},
}  # fmt: skip


def write_jhmdb_mat(data: dict, out_dir: str | Path, num_splits: int = 3, *,
                    seed: int = 0) -> dict:  # fmt: skip
    """JHMDB's own release: ``joint_positions/<class>/<video>/joint_positions.mat`` with
    ``pos_img`` float64 (2, 15, T) pixels of the actor (person 0), and HMDB-style split files
    ``splits/<class>_test_split<k>.txt``. The puppet has no missing joints, so a joint the
    generator dropped takes its mean position over the frames where it is present."""
    import scipy.io

    from jmrn.layouts import JHMDB15

    out_dir = Path(out_dir)
    names = _class_names(data, None)
    for ann in data["annotations"]:
        coco = _xyc(ann)[0]  # (T, 17, 3), the actor
        xy = np.zeros((len(coco), JHMDB15.num_joints, 2))
        present = np.ones((len(coco), JHMDB15.num_joints), bool)
        for j, joint in enumerate(JHMDB15.joints):
            parents = _JHMDB15_FROM_COCO.get(joint, {joint: 1.0})
            for parent, w in parents.items():
                xy[:, j] += w * coco[:, COCO17.index(parent), :2]
                present[:, j] &= coco[:, COCO17.index(parent), 2] > 0
        mean = (xy * present[..., None]).sum(0) / np.maximum(present.sum(0), 1)[:, None]
        xy = np.where(present[..., None], xy, mean)
        video_dir = out_dir / "joint_positions" / names[ann["label"]] / str(ann["frame_dir"])
        video_dir.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(video_dir / "joint_positions.mat", {"pos_img": xy.transpose(2, 1, 0)})
    write_hmdb_splits(data, out_dir / "splits", num_splits, seed=seed)
    return {"videos": len(data["annotations"]), "classes": names}


def write_charades(data: dict, out_dir: str | Path, *, keypoints: str = "openpose",
                   second_label: float = 0.4, no_action: int = 2, seed: int = 0) -> dict:
    """Charades' official layout: ``Charades_v1_classes.txt`` (``c000 <name>``), the train
    and test CSVs (``id,subject,scene,quality,relevance,verified,script,objects,descriptions,
    actions,length``, actions ``"c003 1.20 5.00;c007 0.00 3.10"``), and keypoints as OpenPose
    folders ``openpose/<id>/`` (COCO-18, 240x320) or a PYSKL pickle without labels.

    Multi-label: every video keeps its class and, with probability ``second_label``, gets a
    second random one; ``no_action`` training videos have an empty ``actions`` cell. Returns
    the multi-hot targets by video id."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = _class_names(data, None)
    (out_dir / "Charades_v1_classes.txt").write_text(
        "".join(f"c{k:03d} {name.replace('_', ' ')}\n" for k, name in enumerate(names)))
    train = set(data["split"]["train"])
    targets, rows = {}, {"train": [], "test": []}
    empty = set(rng.choice(sorted(train), size=no_action, replace=False)) if no_action else set()
    for ann in data["annotations"]:
        video = str(ann["frame_dir"])
        labels = {int(ann["label"])}
        if rng.random() < second_label:
            labels.add(int(rng.integers(len(names))))
        if video in empty:
            labels = set()
        seconds = ann["total_frames"] / 30
        actions = ";".join(f"c{k:03d} {rng.uniform(0, seconds / 2):.2f} {seconds:.2f}"
                           for k in sorted(labels))  # fmt: skip
        targets[video] = sorted(labels)
        rows["train" if video in train else "test"].append(
            [video, "S1", "Kitchen", 6, 7, "Yes", "a person moves", "chair", "", actions,
             f"{seconds:.2f}"])  # fmt: skip
    header = ["id", "subject", "scene", "quality", "relevance", "verified", "script",
              "objects", "descriptions", "actions", "length"]  # fmt: skip
    for split, name in (("train", "Charades_v1_train.csv"), ("test", "Charades_v1_test.csv")):
        with open(out_dir / name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows[split])
    if keypoints == "openpose":
        for ann in data["annotations"]:
            video = str(ann["frame_dir"])
            kp = openpose_keypoints(ann, OPENPOSE18.name)  # (M, T, 18, 3)
            _write_openpose_frames(out_dir / "openpose" / video, video, kp,
                                   (kp[..., 2] > 0).any(axis=-1))  # fmt: skip
    elif keypoints == "pyskl":
        annotations = [{k: ann[k] for k in PYSKL_KEYS if k != "label"}
                       for ann in data["annotations"]]  # fmt: skip
        write(out_dir / "charades_pose.pkl", {"split": {}, "annotations": annotations})
    else:
        raise ValueError(f"keypoints must be openpose or pyskl, not {keypoints!r}")
    return {"targets": targets, "classes": names}


def _person_box(pose: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """The normalised box of a (V, 3) pose's confident joints, 5 % (and 2 px) larger."""
    height, width = image_shape
    seen = pose[:, 2] > 0
    (x1, y1), (x2, y2) = pose[seen, :2].min(0), pose[seen, :2].max(0)
    pad_x, pad_y = 0.05 * (x2 - x1) + 2, 0.05 * (y2 - y1) + 2
    return np.clip([(x1 - pad_x) / width, (y1 - pad_y) / height, (x2 + pad_x) / width,
                    (y2 + pad_y) / height], 0, 1)  # fmt: skip


def write_ava(data: dict, out_dir: str | Path, *, fps: float = 10, start_second: int = 901,
              keyframe: int = 902, second_label: float = 0.3, excluded: int = 1,
              proposals: bool = True, seed: int = 0) -> dict:  # fmt: skip
    """AVA's layout for the synthetic videos: every video is a "movie" with one keyframe at
    ``keyframe`` (its frame (keyframe - start_second) * fps), whose actor (person 0) is the
    one annotated box (its pose's extent at the keyframe, 5 % larger, normalised); the idle
    second person, where there is one, is context. Writes ``ava_action_list_v2.2.pbtxt`` (ids
    1, 3, 5, ...: not contiguous, as AVA's), ``ava_{train,val}_v2.2.csv`` (one row per action,
    a second action for ``second_label`` of the boxes), ``ava_train_excluded_timestamps_v2.2
    .csv`` (``excluded`` training keyframes) and ``openpose/<video>/`` COCO-18 frame files.
    With ``proposals``, also SlowFast-style person detections of the val keyframes,
    ``ava_dense_proposals_val.pkl``: the annotated box jittered (score 0.9-1), the context
    person's box where there is one (0.85-0.95, no action: a false positive for every class)
    and a weak box (0.3, under the default threshold).
    Returns the ids of the kept samples' videos with their multi-hot class indices, and the
    detections written ({"<video>,<timestamp>": (N, 5)})."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = _class_names(data, None)
    ids = [2 * k + 1 for k in range(len(names))]
    items = (f'item {{\n  name: "{n}"\n  id: {i}\n}}\n' for n, i in zip(names, ids, strict=True))
    (out_dir / "ava_action_list_v2.2.pbtxt").write_text("".join(items))
    train = set(data["split"]["train"])
    centre = int(round((keyframe - start_second) * fps))
    rows, targets, detections = {"train": [], "val": []}, {}, {}
    skipped_train = sorted(train)[:excluded]
    for ann in data["annotations"]:
        video = str(ann["frame_dir"])
        kp = openpose_keypoints(ann, OPENPOSE18.name)  # (M, T, 18, 3)
        _write_openpose_frames(out_dir / "openpose" / video, video, kp,
                               (kp[..., 2] > 0).any(axis=-1))  # fmt: skip
        actor = kp[0, centre]
        seen = actor[:, 2] > 0
        if not seen.any():
            continue
        box = _person_box(actor, ann["img_shape"])
        labels = {int(ann["label"])}
        if rng.random() < second_label:
            labels.add(int(rng.integers(len(names))))
        split = "train" if video in train else "val"
        for label in sorted(labels):
            rows[split].append(f"{video},{keyframe:04d}," + ",".join(f"{v:.3f}" for v in box)
                               + f",{ids[label]},0")  # fmt: skip
        if video not in skipped_train:
            targets[video] = sorted(labels)
        if split == "val":
            jitter = np.clip(box + rng.normal(0, 0.01, 4), 0, 1)
            weak = [*jitter[[2, 3]] * 0.2, *jitter[[2, 3]] * 0.5, 0.3]
            found = [[*jitter, rng.uniform(0.9, 1.0)], weak]
            if kp.shape[0] > 1 and (kp[1, centre, :, 2] > 0).any():
                found.append([*_person_box(kp[1, centre], ann["img_shape"]),
                              rng.uniform(0.85, 0.95)])  # fmt: skip
            detections[f"{video},{keyframe:04d}"] = np.round(np.array(found, np.float32), 4)
    if proposals:
        write(out_dir / "ava_dense_proposals_val.pkl", detections)
    for split, lines in rows.items():
        (out_dir / f"ava_{split}_v2.2.csv").write_text("\n".join(lines) + "\n")
    (out_dir / "ava_train_excluded_timestamps_v2.2.csv").write_text(
        "".join(f"{v},{keyframe:04d}\n" for v in skipped_train))
    return {"targets": targets, "classes": names, "excluded": skipped_train,
            "proposals": detections}
