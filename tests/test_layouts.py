"""Skeleton layouts: flip pairs, PAA groups and conversions, all by joint name."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml

from jmrn.layouts import LAYOUTS, Layout, convert, get_layout, layout_from_attrs


def test_coco17_neck_matches_jmrn_internal_order():
    layout = get_layout("coco17_neck")
    # method.md §1.2 slots 0..16 then neck (background slot 17 dropped)
    assert layout.joints[5] == "left_shoulder" and layout.joints[17] == "neck"
    assert layout.flip_pairs() == [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12),
                                   (13, 14), (15, 16)]  # fmt: skip
    # method.md §3.3 groups
    assert layout.group_indices() == {"head": [0, 1, 2, 3, 4], "left_arm": [5, 7, 9],
                                      "right_arm": [6, 8, 10], "left_lower_leg": [13, 15],
                                      "right_lower_leg": [14, 16]}  # fmt: skip


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_layout_is_consistent(name):
    layout = LAYOUTS[name]
    assert len(set(layout.joints)) == layout.num_joints
    perm = layout.flip_permutation()
    assert sorted(perm) == list(range(layout.num_joints))  # a permutation
    assert (perm[perm] == np.arange(layout.num_joints)).all()  # an involution
    for j, p in enumerate(perm):  # left <-> right, everything else fixed
        a, b = layout.joints[j], layout.joints[p]
        assert a == b or {a.split("_")[0], b.split("_")[0]} == {"left", "right"}
    groups = layout.group_indices()
    assert set(groups) == {"head", "left_arm", "right_arm", "left_lower_leg", "right_lower_leg"}
    # flipping maps the left arm onto the right arm
    assert sorted(perm[groups["left_arm"]]) == sorted(groups["right_arm"])
    assert layout.num_joints == {"coco17": 17, "coco17_neck": 18, "openpose18": 18,
                                 "openpose_body25": 25, "jhmdb15": 15, "ntu25": 25}[name]


def test_openpose18_to_coco17_neck_is_a_permutation():
    src, dst = get_layout("openpose18"), get_layout("coco17_neck")
    kp = np.random.default_rng(0).random((4, 2, 18, 3)).astype(np.float32)
    out = convert(kp, src, dst)
    for name in ("nose", "left_wrist", "right_ankle", "neck"):
        np.testing.assert_array_equal(out[..., dst.index(name), :], kp[..., src.index(name), :])


def test_coco17_to_coco17_neck_derives_the_neck():
    src, dst = get_layout("coco17"), get_layout("coco17_neck")
    kp = np.zeros((2, 1, 17, 3), np.float32)
    kp[0, 0, 5] = (10, 20, 0.9)
    kp[0, 0, 6] = (30, 40, 0.5)
    kp[1, 0, 5] = (10, 20, 0.9)  # right shoulder missing in frame 1 -> no neck
    out = convert(kp, src, dst)
    np.testing.assert_allclose(out[0, 0, 17], (20, 30, 0.5))
    np.testing.assert_allclose(out[1, 0, 17], (0, 0, 0))
    np.testing.assert_array_equal(out[..., :17, :], kp)


def test_impossible_conversion_is_a_clear_error():
    with pytest.raises(ValueError, match="no joints .*nose"):
        convert(np.zeros((1, 15, 3)), get_layout("jhmdb15"), get_layout("coco17"))
    with pytest.raises(ValueError, match="unknown skeleton layout"):
        get_layout("smpl24")


CUSTOM = """
name: rig7
joints: [head, l_hand, r_hand, pelvis, l_foot, r_foot, tail]
flip_pairs: [[l_hand, r_hand], [l_foot, r_foot]]
groups:
  head: [head]
  left_arm: [l_hand]
  right_arm: [r_hand]
  left_lower_leg: [l_foot]
  right_lower_leg: []
"""


def test_a_layout_yaml_file_is_a_layout(tmp_path):
    path = tmp_path / "rig7.yaml"
    path.write_text(CUSTOM)
    layout = get_layout(str(path))
    assert layout.name == "rig7" and layout.num_joints == 7
    assert layout.flip_permutation().tolist() == [0, 2, 1, 3, 5, 4, 6]
    assert layout.group_indices()["left_lower_leg"] == [4]
    assert layout.group_indices()["right_lower_leg"] == []
    # the JSON stored in data files gives the same layout back
    assert layout_from_attrs({"layout": "x", "layout_spec": layout.to_json()}) == layout
    assert layout_from_attrs({"layout": "coco17"}) == get_layout("coco17")


@pytest.mark.parametrize("change, message", [
    (("[[l_hand, r_hand], [l_foot, r_foot]]", "[[l_hand, r_hand], [l_foot, r_toe]]"),
     "a flip pair names 'r_toe', which is not one of the joints"),
    (("[[l_hand, r_hand], [l_foot, r_foot]]", "[[l_hand, r_hand], [l_hand, r_foot]]"),
     "joint 'l_hand' is in two flip pairs"),
    (("left_lower_leg: [l_foot]", "left_lower_leg: [l_knee]"),
     "group left_lower_leg names 'l_knee'"),
    (("left_lower_leg: [l_foot]", "left_lower_leg: [l_hand]"), "'l_hand' is in two groups"),
    (("right_lower_leg: []", "tail: [tail]"), "'groups' maps some of"),
    (("pelvis, l_foot", "pelvis, head, l_foot"), "joint(s) ['head'] listed twice"),
    (("name: rig7", "name: rig7\nflip: []"), "unknown key(s) ['flip']"),
])  # fmt: skip
def test_layout_file_errors_name_the_file_and_the_problem(tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(CUSTOM.replace(*change))
    with pytest.raises(ValueError, match=re.escape(f"{path}: ") + ".*" + re.escape(message)):
        get_layout(str(path))
    with pytest.raises(ValueError, match="does not exist"):
        get_layout(str(tmp_path / "missing.yaml"))


def test_conversion_compares_layouts_by_their_joints_not_their_names():
    """A layout that calls itself jhmdb15 but lists the joints in another order is converted
    to the built-in jhmdb15 column by column, not passed through because the names match."""
    jhmdb = get_layout("jhmdb15")
    reordered = Layout("jhmdb15", jhmdb.joints[::-1], jhmdb.groups, jhmdb.pairs)
    kp = np.random.default_rng(0).random((3, 1, 15, 3)).astype(np.float32)
    out = convert(kp, reordered, jhmdb)
    np.testing.assert_array_equal(out, kp[..., ::-1, :])
    # variant: two layouts of other names but the same joints are the identity
    same = Layout("mine", jhmdb.joints, {}, ())
    assert convert(kp, same, jhmdb) is kp
    swapped = Layout("coco17", get_layout("coco17").joints[1:] + ("nose",), {}, ())
    out = convert(np.arange(17 * 3, dtype=np.float32).reshape(1, 17, 3), swapped,
                  get_layout("coco17"))  # fmt: skip
    assert out[0, 0, 0] == 16 * 3 and out[0, 1, 0] == 0  # nose was the last column


def write_builtin_copy(path, name: str | None, joints: list[str], pairs=None) -> None:
    """A layout file made from the built-in jhmdb15 with ``joints`` (and ``pairs``)."""
    jhmdb = get_layout("jhmdb15")
    data = {"joints": joints, "flip_pairs": [list(p) for p in (pairs or jhmdb.pairs)],
            "groups": {g: list(v) for g, v in jhmdb.groups.items()}}  # fmt: skip
    if name is not None:
        data["name"] = name
    path.write_text(yaml.safe_dump(data))


def test_a_layout_file_may_not_take_a_builtin_name_with_other_content(tmp_path):
    joints = list(get_layout("jhmdb15").joints)
    path = tmp_path / "skeleton.yaml"
    write_builtin_copy(path, "jhmdb15", joints[1:] + joints[:1])
    with pytest.raises(ValueError, match=re.escape(f"{path}: name 'jhmdb15' is a built-in "
                                                   "layout's, but the file differs from it in "
                                                   "its joint order")):  # fmt: skip
        get_layout(str(path))
    # variants: the name from the file's stem; other flip pairs; other joints
    stem = tmp_path / "jhmdb15.yml"
    write_builtin_copy(stem, None, joints, pairs=[("right_hip", "left_hip")])
    with pytest.raises(ValueError, match="name 'jhmdb15' is a built-in .* its flip pairs"):
        get_layout(str(stem))
    renamed = tmp_path / "other.yaml"
    write_builtin_copy(renamed, "jhmdb15", ["head"] + joints[1:])
    with pytest.raises(ValueError, match="in its joints;"):
        get_layout(str(renamed))
    # the very same layout under its own name, or under a name of its own, is accepted
    write_builtin_copy(path, "jhmdb15", joints)
    assert get_layout(str(path)) == get_layout("jhmdb15")
    write_builtin_copy(path, "puppet_rev", joints[::-1])
    assert get_layout(str(path)).joints == tuple(joints[::-1])
