"""Skeleton layouts as data: joint names, left/right flip pairs and PAA groups.

A reader declares the layout of what it reads; nothing downstream hard-codes joint indices.
Everything is looked up by joint *name*, so converting between layouts (e.g. OpenPose-18 to
JMRN's COCO-17 + neck order) is a name lookup plus a few derived joints.

PAA groups follow method.md §3.3: head, left arm, right arm, left lower leg, right lower leg.
Hips, neck and torso joints are moved only by the global translation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    name: str
    joints: tuple[str, ...]
    groups: dict[str, tuple[str, ...]]

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        return self.joints.index(joint)

    def flip_permutation(self) -> np.ndarray:
        """Index array p such that flipped[..., j, ...] = original[..., p[j], ...].

        A joint named ``left_*`` swaps with ``right_*`` (and vice versa); others stay.
        """
        perm = np.arange(self.num_joints)
        for j, name in enumerate(self.joints):
            for a, b in (("left_", "right_"), ("right_", "left_")):
                if name.startswith(a):
                    perm[j] = self.index(b + name[len(a):])
        return perm

    def flip_pairs(self) -> list[tuple[int, int]]:
        perm = self.flip_permutation()
        return [(j, int(perm[j])) for j in range(self.num_joints) if perm[j] > j]

    def group_indices(self) -> dict[str, list[int]]:
        return {g: [self.index(n) for n in names] for g, names in self.groups.items()}


def _limb_groups(head: tuple[str, ...], arm: tuple[str, ...], leg: tuple[str, ...]):
    return {
        "head": head,
        "left_arm": tuple("left_" + j for j in arm),
        "right_arm": tuple("right_" + j for j in arm),
        "left_lower_leg": tuple("left_" + j for j in leg),
        "right_lower_leg": tuple("right_" + j for j in leg),
    }


_COCO17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
_COCO_HEAD = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
_ARM3 = ("shoulder", "elbow", "wrist")
_LEG2 = ("knee", "ankle")

COCO17 = Layout("coco17", _COCO17, _limb_groups(_COCO_HEAD, _ARM3, _LEG2))

# JMRN's internal order (method.md §1.2) without the background slot: COCO-17, then neck.
COCO17_NECK = Layout("coco17_neck", _COCO17 + ("neck",), _limb_groups(_COCO_HEAD, _ARM3, _LEG2))

# OpenPose COCO body model (18 parts, as written by --write_json and ST-GCN's Kinetics-skeleton).
OPENPOSE18 = Layout(
    "openpose18",
    (
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
        "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle",
        "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
    ),  # fmt: skip
    _limb_groups(_COCO_HEAD, _ARM3, _LEG2),
)

# OpenPose BODY_25: OpenPose-18 with mid-hip at index 8 and six foot points appended.
OPENPOSE_BODY25 = Layout(
    "openpose_body25",
    (
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
        "left_shoulder", "left_elbow", "left_wrist", "mid_hip",
        "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "right_eye", "left_eye", "right_ear", "left_ear",
        "left_big_toe", "left_small_toe", "left_heel",
        "right_big_toe", "right_small_toe", "right_heel",
    ),  # fmt: skip
    _limb_groups(
        _COCO_HEAD, _ARM3, ("knee", "ankle", "big_toe", "small_toe", "heel")
    ),
)

# JHMDB puppet (subject-centric left/right), the order of joint_positions.mat.
JHMDB15 = Layout(
    "jhmdb15",
    (
        "neck", "belly", "face", "right_shoulder", "left_shoulder", "right_hip", "left_hip",
        "right_elbow", "left_elbow", "right_knee", "left_knee",
        "right_wrist", "left_wrist", "right_ankle", "left_ankle",
    ),  # fmt: skip
    _limb_groups(("face",), _ARM3, _LEG2),
)

# NTU RGB+D / Kinect v2, 25 joints (1-based in the NTU docs, 0-based here).
NTU25 = Layout(
    "ntu25",
    (
        "spine_base", "spine_mid", "neck", "head",
        "left_shoulder", "left_elbow", "left_wrist", "left_hand",
        "right_shoulder", "right_elbow", "right_wrist", "right_hand",
        "left_hip", "left_knee", "left_ankle", "left_foot",
        "right_hip", "right_knee", "right_ankle", "right_foot",
        "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",
    ),  # fmt: skip
    _limb_groups(
        ("head",),
        ("shoulder", "elbow", "wrist", "hand", "hand_tip", "thumb"),
        ("knee", "ankle", "foot"),
    ),
)

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (COCO17, COCO17_NECK, OPENPOSE18, OPENPOSE_BODY25, JHMDB15, NTU25)
}

# Joints that a target layout may derive from two source joints when the source lacks them:
# the midpoint, present only where both parents are present (confidence = the smaller one).
DERIVED_JOINTS: dict[str, tuple[str, str]] = {
    "neck": ("left_shoulder", "right_shoulder"),
    "mid_hip": ("left_hip", "right_hip"),
}


def get_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ValueError(f"unknown skeleton layout {name!r}; known: {sorted(LAYOUTS)}")
    return LAYOUTS[name]


def convert(keypoints: np.ndarray, source: Layout, target: Layout) -> np.ndarray:
    """Re-express ``(..., V_source, 3)`` keypoints (x, y, confidence) in the target layout.

    Joints are matched by name; a target joint missing from the source is derived as a midpoint
    (``DERIVED_JOINTS``). Anything else is an error: silently inventing joints would corrupt
    every heatmap of that joint.
    """
    if source.name == target.name:
        return keypoints
    missing = [
        j for j in target.joints
        if j not in source.joints
        and not (j in DERIVED_JOINTS and all(p in source.joints for p in DERIVED_JOINTS[j]))
    ]  # fmt: skip
    if missing:
        raise ValueError(
            f"cannot convert layout {source.name!r} to {target.name!r}: "
            f"the source has no joints {missing}"
        )
    out = np.zeros(keypoints.shape[:-2] + (target.num_joints, 3), dtype=keypoints.dtype)
    direct = [j for j, name in enumerate(target.joints) if name in source.joints]
    out[..., direct, :] = keypoints[..., [source.index(target.joints[j]) for j in direct], :]
    derived = [j for j, name in enumerate(target.joints) if name not in source.joints]
    if derived:
        parents = [DERIVED_JOINTS[target.joints[j]] for j in derived]
        a = keypoints[..., [source.index(p[0]) for p in parents], :]
        b = keypoints[..., [source.index(p[1]) for p in parents], :]
        both = (a[..., 2] > 0) & (b[..., 2] > 0)
        out[..., derived, :2] = np.where(both[..., None], (a[..., :2] + b[..., :2]) / 2, 0)
        out[..., derived, 2] = np.where(both, np.minimum(a[..., 2], b[..., 2]), 0)
    return out
