"""Built-in synthetic dataset: procedurally generated 2D skeleton videos in COCO-17 layout.

It exists so that the whole pipeline runs on a fresh clone with nothing downloaded, and so that
tests have data whose classes are known to be separable by *which* joints move and *how*.

Classes (``CLASS_NAMES``, label = index):

- ``wave``: one arm raised, forearm swinging side to side overhead (wrist oscillates in x).
- ``clap``: elbows still in front of the body, forearms swing in and out until the wrists meet
  in front of the chest.
- ``jumping_jacks``: both arms sweep from the sides to overhead while the legs spread, with a
  small hop at each transition.
- ``squat``: knees bend and hips drop (feet planted), torso leans, arms reach forward.
- ``kick``: one leg swings forward and up; the arms counter-swing slightly.
- ``walk``: seen roughly side-on, travels horizontally with alternating legs and arm swing.
- ``jump``: crouch, then the whole body leaves the ground; arms swing up.
- ``punch``: from a guard, the forearms extend sideways at shoulder height, left and right
  alternately.
- ``bow``: the upper body (head, shoulders, hanging arms) bends forward about the hips and back.
- ``arm_circles``: both wrists trace circles (mirror-symmetric) beside the shoulders.

No two classes differ only by handedness: flip augmentation swaps left and right, so a
"left wave" class would become a "right wave" one. The one-sided actions (``wave``, ``kick``)
pick their side at random per video, which makes each class flip-invariant.

Bodies are built in 3D (units of standing height, origin at the mid-hip, x = the person's left,
y = down, z = backward) from limb angles computed as arrays over all frames at once (wrist
targets with an elbow IK for ``punch`` and ``arm_circles``), with the lower foot kept on the
floor; the body is turned by a yaw angle and projected orthographically. ``walk`` is seen
side-on (yaw 55-90 degrees either way), ``kick`` turned 15-60 degrees so the swing shows, the
others roughly front-on (within 35 degrees); one in five non-walkers is seen from behind, which
mirrors left and right in the image.

Randomness, all drawn from ``np.random.default_rng((seed, 0, label, k))`` for video ``k`` of
class ``label`` (so a video does not change when ``videos_per_class`` does): length T uniform
in [20, 120]; the action occupies a contiguous 35-65% of the frames, anywhere in the video,
with the person standing nearly still (slow sway) before and/or after (``active_frames``
records it: clip selection has to find it, and a fixed position such as the middle would make
uniformly spaced clips an unfairly good guess); speed (whole cycles per active stretch, cycle
8-40 frames by class); amplitudes and poses; person height 1/3 to 5/6 of the frame height and
position; yaw; gaussian keypoint noise (sigma 0.8-1.8 px); joints dropped at random (1-5%,
score 0 and x = y = 0, as pose estimators report them); scores otherwise uniform in [0.4, 1].
In 30% of the videos a second, idle person (slight sway) stands elsewhere in the frame, present
over all or part of the video (score 0 and coordinates 0 where absent). The actor is always
person 0.

The same seed gives a byte-identical pickle (coordinates are rounded to 0.01 px and scores to
0.001, which also keeps tiny platform differences in trigonometry out of the file).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jmrn.io import atomic_path
from jmrn.layouts import COCO17

CLASS_NAMES: list[str] = [
    "wave", "clap", "jumping_jacks", "squat", "kick",
    "walk", "jump", "punch", "bow", "arm_circles",
]  # fmt: skip
ONE_SIDED = ("wave", "kick")
DEFAULT_VIDEOS_PER_CLASS = 30
DEFAULT_IMAGE_SIZE = (240, 320)

# Body model, in units of standing height (ankle to top of head ~ 1).
_UPPER_ARM, _FOREARM = 0.17, 0.15
_THIGH, _SHIN = 0.24, 0.24
_HIP_HALF_WIDTH = 0.09
_SHOULDER_HALF_WIDTH = 0.13
_HIP_TO_FLOOR = _THIGH + _SHIN
# Joints carried by the upper body (they pivot with it about the hips), left side: x > 0.
_TORSO = {
    "nose": (0.0, -0.43, -0.06),
    "left_eye": (0.03, -0.45, -0.05), "right_eye": (-0.03, -0.45, -0.05),
    "left_ear": (0.065, -0.44, 0.0), "right_ear": (-0.065, -0.44, 0.0),
    "left_shoulder": (_SHOULDER_HALF_WIDTH, -0.30, 0.0),
    "right_shoulder": (-_SHOULDER_HALF_WIDTH, -0.30, 0.0),
}  # fmt: skip
_TORSO_IDX = [COCO17.index(name) for name in _TORSO]
_TORSO_OFFSETS = np.array(list(_TORSO.values()))
_SIDES = {1: "left_", -1: "right_"}
_J = {name: COCO17.index(name) for name in COCO17.joints}

# Cycle length range (frames) per class: waving and clapping are quick, bowing is slow.
_PERIOD = {
    "wave": (8, 18), "clap": (8, 18), "jumping_jacks": (14, 28), "squat": (18, 36),
    "kick": (18, 36), "walk": (18, 34), "jump": (14, 28), "punch": (12, 24), "bow": (20, 40),
    "arm_circles": (12, 28),
}  # fmt: skip


@dataclass
class _Pose:
    """Per-frame body parameters; a class function edits a rest pose in place.

    Limb angles (radians) are (T,) rows of a (4, T) array per side (+1 left, -1 right): upper
    segment abduction (from hanging down, outward), upper flexion (forward), lower abduction,
    lower flexion. Directions are absolute, not relative to the parent segment.
    """

    root: np.ndarray  # (T, 3) mid-hip offset added after the feet are planted
    pitch: np.ndarray  # (T,) forward bend of the upper body about the hips
    arms: dict[int, np.ndarray]
    legs: dict[int, np.ndarray]
    wrists: dict[int, np.ndarray] = field(default_factory=dict)  # side -> (T, 3) IK target


def _deg(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.deg2rad(rng.uniform(low, high)))


def _bump(phase: np.ndarray) -> np.ndarray:
    """0 at phase 0, 1 at pi: one smooth excursion and return per cycle."""
    return (1.0 - np.cos(phase)) / 2.0


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _mix(rest: np.ndarray, target: np.ndarray | float, weight: np.ndarray) -> np.ndarray:
    return rest + (target - rest) * weight


def _direction(abduction: np.ndarray, flexion: np.ndarray, side: int) -> np.ndarray:
    """Unit vectors (T, 3) of a limb segment; abduction 0 and flexion 0 point straight down."""
    cos_f = np.cos(flexion)
    return np.stack(
        [side * np.sin(abduction) * cos_f, np.cos(abduction) * cos_f, -np.sin(flexion)], axis=-1
    )


def _limb(
    base: np.ndarray, angles: np.ndarray, side: int, lengths: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Middle joint and end joint (T, 3) of a two-segment limb hung from ``base``."""
    middle = base + lengths[0] * _direction(angles[0], angles[1], side)
    return middle, middle + lengths[1] * _direction(angles[2], angles[3], side)


def _elbow_ik(shoulder: np.ndarray, wrist: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Elbow (and reachable wrist) for a wrist target; the elbow points down, out and back."""
    reach = wrist - shoulder
    dist = np.linalg.norm(reach, axis=-1, keepdims=True)
    unit = reach / np.maximum(dist, 1e-9)
    dist = np.clip(dist, abs(_UPPER_ARM - _FOREARM) + 1e-3, 0.999 * (_UPPER_ARM + _FOREARM))
    along = (_UPPER_ARM**2 - _FOREARM**2 + dist**2) / (2 * dist)
    across = np.sqrt(np.maximum(_UPPER_ARM**2 - along**2, 0.0))
    pole = np.array([0.4 * side, 1.0, 0.4])
    normal = pole - np.sum(pole * unit, axis=-1, keepdims=True) * unit
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-9)
    return shoulder + along * unit + across * normal, shoulder + dist * unit


def _skeleton(pose: _Pose) -> np.ndarray:
    """(T, 17, 3) joint positions; the lower ankle stays on the floor of frame 0 (planted)."""
    frames = len(pose.pitch)
    out = np.zeros((frames, COCO17.num_joints, 3))
    ankle_y = []
    for side, prefix in _SIDES.items():
        hip = np.broadcast_to(np.array([side * _HIP_HALF_WIDTH, 0.0, 0.0]), (frames, 3))
        knee, ankle = _limb(hip, pose.legs[side], side, (_THIGH, _SHIN))
        out[:, _J[prefix + "hip"]] = hip
        out[:, _J[prefix + "knee"]] = knee
        out[:, _J[prefix + "ankle"]] = ankle
        ankle_y.append(ankle[:, 1])
    lowest = np.maximum(*ankle_y)
    root = pose.root.copy()
    root[:, 1] += lowest[0] - lowest
    leg_idx = [_J[p + j] for p in _SIDES.values() for j in ("hip", "knee", "ankle")]
    out[:, leg_idx] += root[:, None]

    cos_p, sin_p = np.cos(pose.pitch)[:, None], np.sin(pose.pitch)[:, None]
    xs = np.broadcast_to(_TORSO_OFFSETS[:, 0], (frames, len(_TORSO)))
    ys, zs = _TORSO_OFFSETS[:, 1], _TORSO_OFFSETS[:, 2]
    torso = np.stack([xs, ys * cos_p - zs * sin_p, ys * sin_p + zs * cos_p], axis=-1)
    out[:, _TORSO_IDX] = torso + root[:, None]

    for side, prefix in _SIDES.items():
        shoulder = out[:, _J[prefix + "shoulder"]]
        if side in pose.wrists:
            elbow, wrist = _elbow_ik(shoulder, shoulder + pose.wrists[side], side)
        else:
            elbow, wrist = _limb(shoulder, pose.arms[side], side, (_UPPER_ARM, _FOREARM))
        out[:, _J[prefix + "elbow"]] = elbow
        out[:, _J[prefix + "wrist"]] = wrist
    return out


def _rest_pose(frames: int, rng: np.random.Generator) -> _Pose:
    """Standing, arms hanging slightly out, forearms slightly forward; varies per video."""
    arm_out, arm_fwd = _deg(rng, 6, 14), _deg(rng, 0, 8)
    leg_out = _deg(rng, 2, 6)
    arms, legs = {}, {}
    for side in _SIDES:
        out = arm_out + _deg(rng, -2, 2)
        arm = [out, arm_fwd, out + _deg(rng, 0, 6), arm_fwd + _deg(rng, 5, 20)]
        arms[side] = np.repeat(np.array(arm)[:, None], frames, axis=1)
        legs[side] = np.repeat(np.array([leg_out, 0.0, leg_out / 2, 0.0])[:, None], frames, axis=1)
    return _Pose(np.zeros((frames, 3)), np.zeros(frames), arms, legs)


# Each class function edits the rest pose: phase (T,) radians of the action cycle, envelope
# (T,) in [0, 1] (0 while idle), side (+1/-1) for one-sided actions.
_Rng = np.random.Generator
_ClassFn = Callable[[_Pose, np.ndarray, np.ndarray, int, _Rng], None]


def _wrist_offset(arm: np.ndarray, side: int) -> np.ndarray:
    """(T, 3) wrist position relative to the shoulder for arm angles (to blend IK targets)."""
    return _limb(np.zeros((arm.shape[1], 3)), arm, side, (_UPPER_ARM, _FOREARM))[1]


def _wave(pose: _Pose, phase: np.ndarray, env: np.ndarray, side: int, rng: _Rng) -> None:
    arm, swing = pose.arms[side], _deg(rng, 30, 45)
    arm[0] = _mix(arm[0], _deg(rng, 110, 135) + 0.25 * swing * np.sin(phase), env)
    arm[1] = _mix(arm[1], _deg(rng, 0, 20), env)
    arm[2] = _mix(arm[2], _deg(rng, 165, 185) + swing * np.sin(phase), env)
    arm[3] = _mix(arm[3], _deg(rng, 0, 20), env)


def _clap(pose: _Pose, phase: np.ndarray, env: np.ndarray, side: int, rng: _Rng) -> None:
    abduction, flexion = _deg(rng, -14, -6), _deg(rng, 30, 50)
    elbow_x = _SHOULDER_HALF_WIDTH + _UPPER_ARM * np.sin(abduction) * np.cos(flexion)
    closed = np.arcsin(np.clip((0.015 - elbow_x) / _FOREARM, -1.0, 1.0))  # wrists at midline
    opened = _deg(rng, 10, 35)
    outward = opened + (closed - opened) * _bump(phase)  # forearm angle, outward from forward
    for arm in pose.arms.values():
        arm[0] = _mix(arm[0], abduction, env)
        arm[1] = _mix(arm[1], flexion, env)
        arm[2] = _mix(arm[2], np.pi / 2, env)
        arm[3] = _mix(arm[3], np.pi / 2 - outward, env)


def _jumping_jacks(pose: _Pose, phase: np.ndarray, env: np.ndarray, side: int, rng: _Rng) -> None:
    spread = env * _bump(phase)
    arm_up, leg_out = _deg(rng, 150, 175), _deg(rng, 20, 30)
    for arm in pose.arms.values():
        arm[0] = _mix(arm[0], arm_up, spread)
        arm[2] = _mix(arm[2], arm_up + 0.1, spread)
        arm[1] *= 1 - spread
        arm[3] *= 1 - spread
    for leg in pose.legs.values():
        leg[0] = _mix(leg[0], leg_out, spread)
        leg[2] = _mix(leg[2], leg_out, spread)
    pose.root[:, 1] -= rng.uniform(0.03, 0.07) * env * np.abs(np.sin(phase))  # hop


def _bend_knees(pose: _Pose, drop: np.ndarray, splay: np.ndarray) -> np.ndarray:
    """Flex both legs so the hips drop by ``drop`` with the feet kept in place; thigh flexion."""
    flexion = np.arccos(np.clip(1.0 - drop / _HIP_TO_FLOOR, -1.0, 1.0))
    for leg in pose.legs.values():
        foot_x = np.sin(leg[0]) + np.sin(leg[2])
        leg[0] = leg[0] + splay
        leg[1] = flexion
        leg[3] = -flexion
        leg[2] = np.arcsin(np.clip((foot_x - np.sin(leg[0]) * np.cos(flexion))
                                   / np.cos(flexion), -1.0, 1.0))  # fmt: skip
    return flexion


def _squat(pose: _Pose, phase: np.ndarray, env: np.ndarray, side: int, rng: _Rng) -> None:
    depth = env * _bump(phase)
    flexion = _bend_knees(pose, rng.uniform(0.12, 0.22) * depth, _deg(rng, 5, 12) * depth)
    pose.pitch += 0.6 * flexion
    pose.root[:, 2] += 0.5 * _THIGH * np.sin(flexion)  # hips back
    reach = _deg(rng, 50, 85) * depth
    for arm in pose.arms.values():
        arm[1] += reach
        arm[3] += reach


def _kick(pose: _Pose, phase: np.ndarray, env: np.ndarray, side: int, rng: _Rng) -> None:
    lift = _deg(rng, 55, 85) * env * _bump(phase) ** 1.5
    leg = pose.legs[side]
    leg[1] += lift
    leg[3] += lift * rng.uniform(0.75, 0.95)
    pose.arms[-side][1] += 0.35 * lift
    pose.arms[-side][3] += 0.35 * lift
    pose.arms[side][1] -= 0.2 * lift
    pose.arms[side][3] -= 0.2 * lift


def _walk(pose: _Pose, phase: np.ndarray, env: np.ndarray, side: int, rng: _Rng) -> None:
    amplitude, knee_bend = _deg(rng, 18, 28), _deg(rng, 35, 50)
    for s in _SIDES:
        step = phase + (0.0 if s == 1 else np.pi)
        thigh = env * amplitude * np.sin(step)
        pose.legs[s][1] = thigh
        pose.legs[s][3] = thigh - env * knee_bend * np.maximum(np.cos(step), 0.0) ** 2
        pose.arms[s][1] -= 0.8 * thigh  # arms swing against the same-side leg
        pose.arms[s][3] -= 0.8 * thigh
        pose.arms[s][3] += env * np.deg2rad(15)  # elbows a little bent
    per_cycle = 4 * _HIP_TO_FLOOR * np.sin(amplitude) * rng.uniform(0.8, 1.0)
    speed = per_cycle * np.gradient(phase) / (2 * np.pi) * env
    pose.root[:, 2] -= np.cumsum(speed)  # forward is -z


def _jump(pose: _Pose, phase: np.ndarray, env: np.ndarray, side: int, rng: _Rng) -> None:
    crouch = env * np.maximum(np.sin(phase), 0.0)
    air = env * np.maximum(-np.sin(phase), 0.0)
    _bend_knees(pose, rng.uniform(0.04, 0.08) * crouch, np.zeros_like(crouch))
    pose.pitch += 0.3 * crouch
    pose.root[:, 1] -= rng.uniform(0.1, 0.22) * air
    swing = _deg(rng, 50, 90) * air - 0.5 * crouch  # arms back while crouching, up in the air
    for arm in pose.arms.values():
        arm[1] += swing
        arm[3] += swing


def _punch(pose: _Pose, phase: np.ndarray, env: np.ndarray, side: int, rng: _Rng) -> None:
    guard = np.array([-rng.uniform(0.02, 0.08), rng.uniform(-0.02, 0.05), -rng.uniform(0.12, 0.18)])
    extended = np.array([rng.uniform(0.27, 0.3), rng.uniform(-0.03, 0.02), -rng.uniform(0, 0.08)])
    for s, arm in pose.arms.items():
        out = _bump(phase + (0.0 if s == 1 else np.pi)) ** 2  # left and right alternately
        target = guard + (extended - guard) * out[:, None]  # straight out at shoulder height
        target[:, 0] *= s
        pose.wrists[s] = _mix(_wrist_offset(arm, s), target, env[:, None])


def _bow(pose: _Pose, phase: np.ndarray, env: np.ndarray, side: int, rng: _Rng) -> None:
    pose.pitch += _deg(rng, 40, 75) * env * _bump(phase)
    pose.root[:, 2] += 0.12 * np.sin(pose.pitch)  # hips back to balance


def _arm_circles(pose: _Pose, phase: np.ndarray, env: np.ndarray, side: int, rng: _Rng) -> None:
    forward, cone = _deg(rng, 30, 60), _deg(rng, 25, 45)  # axis: out and forward; half-angle
    turn = rng.choice([-1.0, 1.0])
    for s, arm in pose.arms.items():
        axis = np.array([s * np.cos(forward), 0.0, -np.sin(forward)])
        across = np.array([s * np.sin(forward), 0.0, np.cos(forward)])  # with y: circle plane
        circle = np.cos(cone) * axis + np.sin(cone) * (
            np.cos(phase)[:, None] * np.array([0.0, 1.0, 0.0])
            + turn * np.sin(phase)[:, None] * across
        )
        pose.wrists[s] = _mix(_wrist_offset(arm, s), 0.3 * circle, env[:, None])


_CLASS_FNS: dict[str, _ClassFn] = {
    "wave": _wave, "clap": _clap, "jumping_jacks": _jumping_jacks, "squat": _squat,
    "kick": _kick, "walk": _walk, "jump": _jump, "punch": _punch, "bow": _bow,
    "arm_circles": _arm_circles,
}  # fmt: skip


def _project(points: np.ndarray, yaw: float) -> np.ndarray:
    """Orthographic view of (..., 3) points turned by ``yaw`` about the vertical axis."""
    return np.stack(
        [points[..., 0] * np.cos(yaw) + points[..., 2] * np.sin(yaw), points[..., 1]], axis=-1
    )


def _sway(frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 2) slow, small body sway (height units), so idle frames are not frozen."""
    t = np.arange(frames)
    amp, period = rng.uniform(0.003, 0.01), rng.uniform(40, 90)
    return np.stack([amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)),
                     0.3 * amp * np.sin(4 * np.pi * t / period)], axis=-1)  # fmt: skip


def _flip_view(rng: np.random.Generator) -> float:
    """Seen from behind one time in five: left and right appear mirrored in the image."""
    return np.pi if rng.random() < 0.2 else 0.0


def _observe(
    pixels: np.ndarray, present: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pose-estimator output from true pixels: noise, random scores, dropped joints."""
    noisy = pixels + rng.normal(0.0, rng.uniform(0.8, 1.8), pixels.shape)
    score = rng.uniform(0.4, 1.0, pixels.shape[:2])
    visible = present[:, None] & (rng.random(pixels.shape[:2]) >= rng.uniform(0.01, 0.05))
    noisy[~visible] = 0.0
    score[~visible] = 0.0
    return np.round(noisy, 2).astype(np.float32), np.round(score, 3).astype(np.float32)


def _place(skel: np.ndarray, height: float, x_range: tuple[float, float],
           image_size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Pixel coordinates of (T, 17, 2) height-unit points: the path centred in ``x_range``."""
    img_h, img_w = image_size
    travel = height * (skel[-1, :, 0].mean() - skel[0, :, 0].mean())
    low, high = x_range[0] * img_w + abs(travel) / 2, x_range[1] * img_w - abs(travel) / 2
    mid = rng.uniform(low, high) if low < high else img_w / 2
    floor = rng.uniform(min(height + 0.02 * img_h, 0.98 * img_h), 0.98 * img_h)
    origin = np.array([mid - travel / 2, floor - _HIP_TO_FLOOR * height])
    return origin + height * skel


def _distractor(frames: int, actor_height: float, actor_x: float, image_size: tuple[int, int],
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A bystander on the other side of the frame: idle, slight sway, maybe there only a while.

    Real videos have them, and whatever picks the actor (or aggregates persons) must cope.
    """
    img_h, img_w = image_size
    t = np.arange(frames)
    pose = _rest_pose(frames, rng)
    for arm in pose.arms.values():
        arm[0] += _deg(rng, 1, 4) * np.sin(2 * np.pi * t / rng.uniform(30, 80))
    height = np.clip(actor_height * rng.uniform(0.8, 1.2), img_h / 3, 5 * img_h / 6)
    yaw = _deg(rng, -40, 40) + _flip_view(rng)
    skel = _project(_skeleton(pose), yaw) + _sway(frames, rng)[:, None]
    x_range = (0.05, 0.4) if actor_x > img_w / 2 else (0.6, 0.95)
    pixels = _place(skel, height, x_range, image_size, rng)
    present = np.ones(frames, bool)
    if rng.random() < 0.4:  # walks in or out: present for a stretch only
        length = int(rng.integers(max(2, frames * 4 // 10), frames))
        first = int(rng.integers(0, frames - length + 1))
        present[:] = False
        present[first : first + length] = True
    return _observe(pixels, present, rng)


def _video(label: int, rng: np.random.Generator, image_size: tuple[int, int],
           second_person_prob: float) -> dict:  # fmt: skip
    name = CLASS_NAMES[label]
    img_h, img_w = image_size
    frames = int(rng.integers(20, 121))
    n_active = round(rng.uniform(0.35, 0.65) * frames)
    start = round((frames - n_active) * rng.uniform(0.0, 1.0))
    stop = start + n_active
    t = np.arange(frames, dtype=float)
    ramp = max(2.0, 0.12 * n_active)
    env = _smoothstep((t - start) / ramp) * _smoothstep((stop - 1 - t) / ramp)
    cycles = max(1, round(n_active / rng.uniform(*_PERIOD[name])))
    phase = 2 * np.pi * cycles * np.clip(t - start, 0, n_active) / n_active
    side = int(rng.choice([-1, 1])) if name in ONE_SIDED else 1

    pose = _rest_pose(frames, rng)
    _CLASS_FNS[name](pose, phase, env, side, rng)
    height = rng.uniform(1 / 3, 5 / 6) * img_h
    if name == "walk":  # seen side-on
        yaw = float(rng.choice([-1.0, 1.0])) * _deg(rng, 55, 90)
        walked = pose.root[:, 2] - pose.root[0, 2]
        travel = abs(walked[-1]) * abs(np.sin(yaw)) * height
        if travel > 0.85 * img_w:  # keep the walk mostly in frame: shorter strides (some slip)
            pose.root[:, 2] -= walked * (1 - 0.85 * img_w / travel)
    elif name == "kick":  # turned partly away from front-on so the swing shows
        yaw = float(rng.choice([-1.0, 1.0])) * _deg(rng, 15, 60) + _flip_view(rng)
    else:
        yaw = _deg(rng, -35, 35) + _flip_view(rng)
    skel3 = _skeleton(pose)
    skel = _project(skel3, yaw) + _sway(frames, rng)[:, None]
    pixels = _place(skel, height, (0.15, 0.85), image_size, rng)
    kp, sc = _observe(pixels, np.ones(frames, bool), rng)
    keypoint, score = [kp], [sc]

    if rng.random() < second_person_prob:
        kp, sc = _distractor(frames, height, float(pixels[..., 0].mean()), image_size, rng)
        keypoint.append(kp)
        score.append(sc)

    return {
        "label": label,
        "img_shape": (img_h, img_w),
        "original_shape": (img_h, img_w),
        "total_frames": frames,
        "keypoint": np.stack(keypoint),
        "keypoint_score": np.stack(score),
        "active_frames": (int(start), int(stop)),
    }


def generate(
    seed: int,
    videos_per_class: int = DEFAULT_VIDEOS_PER_CLASS,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    *,
    second_person_prob: float = 0.3,
    test_fraction: float = 0.25,
) -> dict:
    """A PYSKL-style annotation dict: ``{"split": {"train", "test"}, "annotations": [...]}``.

    Each annotation has ``frame_dir``, ``label``, ``img_shape``/``original_shape`` (H, W),
    ``total_frames``, ``keypoint`` float32 (M, T, 17, 2) pixels, ``keypoint_score`` float32
    (M, T, 17) and ``active_frames`` (first, end) of the action (extra ground truth; readers
    ignore it). The split is stratified: ``round(test_fraction * videos_per_class)`` test
    videos per class (at least one when there are two or more), chosen from the seed.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if videos_per_class < 1:
        raise ValueError(f"videos_per_class must be >= 1, got {videos_per_class}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    image_size = (int(image_size[0]), int(image_size[1]))
    annotations, train, test = [], [], []
    split_rng = np.random.default_rng((seed, 1, 0, 0))
    n_test = round(test_fraction * videos_per_class)
    if videos_per_class >= 2:
        n_test = min(max(n_test, 1), videos_per_class - 1)
    for label, name in enumerate(CLASS_NAMES):
        in_test = set(split_rng.permutation(videos_per_class)[:n_test].tolist())
        for k in range(videos_per_class):
            rng = np.random.default_rng((seed, 0, label, k))
            frame_dir = f"{name}_{k:03d}"
            annotations.append(
                {"frame_dir": frame_dir, **_video(label, rng, image_size, second_person_prob)}
            )
            (test if k in in_test else train).append(frame_dir)
    return {"split": {"train": train, "test": test}, "annotations": annotations}


def write(path: str | Path, data: dict) -> None:
    """Pickle ``data`` (protocol 4) atomically: a killed run leaves no half-written file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(data, protocol=4))
