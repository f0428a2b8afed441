"""Skeleton layouts as data: joint names, left/right flip pairs and PAA groups.

A layout is a small YAML file (the built-in ones are ``jmrn/skeletons/<name>.yaml``)::

    name: my_skeleton                 # optional: the file's stem by default
    joints: [head_top, neck, ...]     # the order of the keypoint arrays
    flip_pairs: [[l_shoulder, r_shoulder], ...]   # swapped by a horizontal flip; may be []
    groups:                           # PAA groups, method.md §3.3; any may be empty or absent
      head: [head_top]
      left_arm: [l_shoulder, l_elbow, l_hand]
      right_arm: [...]
      left_lower_leg: [...]
      right_lower_leg: [...]

A reader declares the layout of what it reads; nothing downstream hard-codes joint indices.
Everything is looked up by joint *name*, so converting between layouts (e.g. OpenPose-18 to
JMRN's COCO-17 + neck order) is a name lookup plus a few derived joints. Joints in no group
(hips, neck, torso) are moved only by the global translation. ``get_layout`` takes a built-in
name or the path of a YAML file; the data files carry the layout itself (``to_json``), so a
file trained on does not depend on where its YAML was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from jmrn.cli import show_value

GROUPS = ("head", "left_arm", "right_arm", "left_lower_leg", "right_lower_leg")
SKELETONS = Path(__file__).parent / "skeletons"


@dataclass(frozen=True)
class Layout:
    name: str
    joints: tuple[str, ...]
    groups: dict[str, tuple[str, ...]]
    pairs: tuple[tuple[str, str], ...] = ()

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        return self.joints.index(joint)

    def flip_permutation(self) -> np.ndarray:
        """Index array p such that flipped[..., j, ...] = original[..., p[j], ...]."""
        perm = np.arange(self.num_joints)
        for a, b in self.pairs:
            perm[self.index(a)], perm[self.index(b)] = self.index(b), self.index(a)
        return perm

    def flip_pairs(self) -> list[tuple[int, int]]:
        perm = self.flip_permutation()
        return [(j, int(perm[j])) for j in range(self.num_joints) if perm[j] > j]

    def group_indices(self) -> dict[str, list[int]]:
        return {g: [self.index(n) for n in names] for g, names in self.groups.items()}

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "joints": list(self.joints),
                           "flip_pairs": [list(p) for p in self.pairs],
                           "groups": {g: list(v) for g, v in self.groups.items()}})  # fmt: skip


def layout_from_dict(data: object, where: str, default_name: str = "") -> Layout:
    """Validate a layout description (parsed YAML or JSON); errors name ``where``."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a layout is a mapping with joints, flip_pairs and groups")
    unknown_keys = sorted(set(data) - {"name", "joints", "flip_pairs", "groups"})
    if unknown_keys:
        raise ValueError(f"{where}: unknown key(s) {unknown_keys} (name, joints, flip_pairs, "
                         "groups)")  # fmt: skip
    joints = data.get("joints")
    if not isinstance(joints, list) or not joints or not all(isinstance(j, str) for j in joints):
        raise ValueError(f"{where}: 'joints' must be a non-empty list of joint names")
    if len(set(joints)) != len(joints):
        twice = sorted({j for j in joints if joints.count(j) > 1})
        raise ValueError(f"{where}: joint(s) {twice} listed twice")

    def known(name: object, what: str) -> str:
        if name not in joints:
            raise ValueError(f"{where}: {what} names {name!r}, which is not one of the joints "
                             f"{joints}")  # fmt: skip
        return str(name)

    pairs, paired = [], set()
    for pair in data.get("flip_pairs") or []:
        if not isinstance(pair, list) or len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(f"{where}: a flip pair is two different joint names, got {pair!r}")
        a, b = known(pair[0], "a flip pair"), known(pair[1], "a flip pair")
        if {a, b} & paired:
            raise ValueError(f"{where}: joint {sorted({a, b} & paired)[0]!r} is in two flip pairs")
        paired |= {a, b}
        pairs.append((a, b))
    groups_in = data.get("groups") or {}
    if not isinstance(groups_in, dict) or set(groups_in) - set(GROUPS):
        raise ValueError(f"{where}: 'groups' maps some of {list(GROUPS)} to joint lists, got "
                         f"{sorted(groups_in) if isinstance(groups_in, dict) else groups_in!r}")
    groups, grouped = {}, set()
    for g in GROUPS:
        members = tuple(known(j, f"group {g}") for j in (groups_in.get(g) or []))
        if set(members) & grouped:
            raise ValueError(f"{where}: joint {sorted(set(members) & grouped)[0]!r} is in two "
                             "groups")  # fmt: skip
        grouped |= set(members)
        groups[g] = members
    name = str(data.get("name") or default_name)
    return Layout(name, tuple(joints), groups, tuple(pairs))


def load_layout(path: str | Path) -> Layout:
    """A layout YAML file (see the module docstring), validated."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"layout file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    return layout_from_dict(data, str(path), path.stem)


LAYOUTS: dict[str, Layout] = {p.stem: load_layout(p) for p in sorted(SKELETONS.glob("*.yaml"))}
COCO17, COCO17_NECK = LAYOUTS["coco17"], LAYOUTS["coco17_neck"]
OPENPOSE18, OPENPOSE_BODY25 = LAYOUTS["openpose18"], LAYOUTS["openpose_body25"]
JHMDB15, NTU25 = LAYOUTS["jhmdb15"], LAYOUTS["ntu25"]

# Joints that a target layout may derive from two source joints when the source lacks them:
# the midpoint, present only where both parents are present (confidence = the smaller one).
DERIVED_JOINTS: dict[str, tuple[str, str]] = {
    "neck": ("left_shoulder", "right_shoulder"),
    "mid_hip": ("left_hip", "right_hip"),
}


def same_layout(a: Layout, b: Layout) -> bool:
    """The same joints in the same order, flip pairs and groups, whatever the names."""
    return (a.joints == b.joints and a.flip_permutation().tolist() == b.flip_permutation().tolist()
            and {g: set(v) for g, v in a.groups.items()}
            == {g: set(v) for g, v in b.groups.items()})  # fmt: skip


def get_layout(name: str) -> Layout:
    """A built-in layout by name, or a layout YAML file by path (``*.yaml`` / ``*.yml``).

    A file may take a built-in layout's name only if it describes that very layout: the name
    is what ``keypoints.h5`` records, so a ``jhmdb15`` with its joints in another order would
    make the stored joint names lie about the columns."""
    if name in LAYOUTS:
        return LAYOUTS[name]
    if str(name).endswith((".yaml", ".yml")):
        layout = load_layout(name)
        if layout.name in LAYOUTS and not same_layout(layout, LAYOUTS[layout.name]):
            raise ValueError(f"{name}: name {layout.name!r} is a built-in layout's, but the "
                             "file differs from it in its "
                             f"{_difference(layout, LAYOUTS[layout.name])}; give the file a "
                             "name of its own (its 'name' key, else the file name)")  # fmt: skip
        return layout
    raise ValueError(f"unknown skeleton layout {show_value(name)}; built in: "
                     f"{sorted(LAYOUTS)}, or the path of a layout .yaml file")  # fmt: skip


def _difference(a: Layout, b: Layout) -> str:
    """What differs between two layouts, for an error message."""
    if set(a.joints) != set(b.joints):
        return "joints"
    if a.joints != b.joints:
        return "joint order"
    if a.flip_permutation().tolist() != b.flip_permutation().tolist():
        return "flip pairs"
    return "groups"


def layout_from_attrs(attrs) -> Layout:
    """The layout a keypoints.h5 / heatmaps.h5 was written with (older files: by name)."""
    if "layout_spec" in attrs:
        return layout_from_dict(json.loads(attrs["layout_spec"]), "layout_spec attribute")
    return get_layout(str(attrs["layout"]))


def convert(keypoints: np.ndarray, source: Layout, target: Layout) -> np.ndarray:
    """Re-express ``(..., V_source, 3)`` keypoints (x, y, confidence) in the target layout.

    Joints are matched by name; a target joint missing from the source is derived as a midpoint
    (``DERIVED_JOINTS``). Anything else is an error: silently inventing joints would corrupt
    every heatmap of that joint. Layouts are compared by their joints, never by name: a layout
    file may call itself anything.
    """
    if source.joints == target.joints:
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
