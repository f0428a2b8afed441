"""Pictures of the pipeline's data, drawn with OpenCV (matplotlib is not a dependency).

* What the network sees (plots/<dataset>/heatmaps.png): PoTion colour coding of the
  aggregated heatmaps. Each temporal channel gets a colour (early blue, middle green, late
  red for C = 3; a blue-to-red ramp for other C), all joints are summed, and the image is
  scaled to its maximum. One tile per class (the first video of that class), in a grid.
* The joint selector's weights per class and joint (train plots, ``joint_weights.png``).
* What ingest kept, per joint (plots/<dataset>/ingest.png, ``write_ingest_png``).
* The clips the saliency ranker and the oracle pick in a few test videos, as skeleton strips
  (plots/<dataset>/clips/salient/, ``write_salient_clips``; supplementary Fig. 5).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import cv2
import numpy as np

from jmrn.heatmaps import normalise
from jmrn.heatmaps_file import HeatmapsFile
from jmrn.io import atomic_path, write_json
from jmrn.keypoints_file import KeypointsFile
from jmrn.layouts import Layout, layout_from_attrs
from jmrn.logits_file import Logits


def channel_colours(channels: int) -> np.ndarray:
    """(C, 3) RGB colours in [0, 1], from blue (first frames) through green to red (last)."""
    hue = np.linspace(240.0, 0.0, channels)  # degrees: blue -> red
    hsv = np.stack([hue / 2, np.full(channels, 255.0), np.full(channels, 255.0)], -1)
    rgb = cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0]
    return rgb.astype(np.float32) / 255.0


def colourise(heat: np.ndarray, area_norm: np.ndarray) -> np.ndarray:
    """(C, V, H, W) un-normalised heatmaps -> (H, W, 3) uint8 RGB image."""
    joints_summed = normalise(heat.astype(np.float32), area_norm, None, "area").sum(axis=1)
    image = np.einsum("chw,ck->hwk", joints_summed, channel_colours(heat.shape[0]))
    image /= max(float(image.max()), 1e-6)
    return (np.sqrt(image) * 255).astype(np.uint8)  # sqrt: keep faint trajectories visible


def write_class_overview(heatmaps_path: str | Path, out_path: str | Path, *,
                         zoom: int = 3, columns: int = 5) -> None:  # fmt: skip
    """PNG with one colourised video per class (the first one of that class in the file)."""
    with HeatmapsFile(heatmaps_path) as hf:
        has_class = hf.labels.any(axis=0)
        first_of_class = hf.labels.argmax(axis=0)  # first video with each class
        shown = [(name, first_of_class[k]) for k, name in enumerate(hf.class_names)
                 if has_class[k]]  # fmt: skip
        tiles = []
        for name, i in shown:
            tile = colourise(hf.heatmaps[i], hf.area_norm[i])
            tile = cv2.resize(tile, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
            tile = cv2.copyMakeBorder(tile, 18, 2, 2, 2, cv2.BORDER_CONSTANT, value=(40,) * 3)
            cv2.putText(tile, name[:24], (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
            tiles.append(tile)
    if not tiles:
        raise ValueError(f"{heatmaps_path}: no labelled video to draw")
    columns = min(columns, len(tiles))
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[r:r + columns]) for r in range(0, len(tiles), columns)]
    _write_png(out_path, cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))


def write_joint_weights_png(out_path: str | Path, weights: np.ndarray | None,
                            class_names: list[str], joint_names: list[str],
                            cell: int = 18) -> None:  # fmt: skip
    """Mean joint-selector weight per class (rows) and joint (columns) as a labelled heat map:
    which joints the model relies on for each action (the paper's interpretability claim).
    ``weights=None`` (a model without a selector, PoTion) writes a picture that says so."""
    if weights is None:
        image = np.full((40, 420, 3), 255, np.uint8)
        cv2.putText(image, "this model (PoTion) has no joint selector", (8, 26),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
        _write_png(out_path, image)
        return
    rows, cols = weights.shape
    left, top = 130, 110
    image = np.full((top + rows * cell + 4, left + cols * cell + 4, 3), 255, np.uint8)
    low, high = float(weights.min()), float(weights.max())
    scaled = (weights - low) / max(high - low, 1e-6)  # stretch: the differences matter
    colours = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    block = cv2.resize(colours, (cols * cell, rows * cell), interpolation=cv2.INTER_NEAREST)
    image[top:top + rows * cell, left:left + cols * cell] = block
    for r, name in enumerate(class_names):
        cv2.putText(image, name[:18], (4, top + r * cell + cell - 5), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    label_strip = np.full((cell * cols, top - 4, 3), 255, np.uint8)
    for c, name in enumerate(joint_names):
        cv2.putText(label_strip, name[:16], (2, c * cell + cell - 5), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    rotated = cv2.rotate(label_strip, cv2.ROTATE_90_COUNTERCLOCKWISE)  # joint names upwards
    image[:top - 4, left:left + cols * cell] = rotated
    cv2.putText(image, f"dark {low:.2f}", (4, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                cv2.LINE_AA)  # fmt: skip
    cv2.putText(image, f"bright {high:.2f}", (4, 56), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0),
                1, cv2.LINE_AA)  # fmt: skip
    _write_png(out_path, image)  # BGR from applyColorMap: already in OpenCV's order


def _write_png(out_path: str | Path, bgr: np.ndarray) -> None:
    """Atomically, at zlib's highest compression: these PNGs are committed to git (DVC plots
    with cache: false), and level 9 halves them against OpenCV's default at no visible cost."""
    with atomic_path(out_path) as tmp:
        ok, encoded = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise RuntimeError(f"could not encode {out_path}")
        tmp.write_bytes(encoded.tobytes())


# --- plots/<dataset>/ingest.png: per-joint confidence, missing and out-of-frame shares ------

INGEST_ROW = 20  # pixels per joint row
INGEST_HEADER = 86  # title, counts, column titles and the confidence axis labels
INGEST_FOOTER = 22  # the legend line
INGEST_WIDTH = 930
_NAME_X, _CONF_X, _CONF_W = 6, 150, 300  # joint names; confidence axis [0, 1]
_MISS_X, _OUT_X, _BAR_W = 490, 700, 110  # missing and outside bars, [0, 1] each
# A joint is drawn in red when missing in at least this share of person-frames, or when at
# least this share of its detections fell outside the frame.
MISSING_FLAG, OUTSIDE_FLAG = 0.5, 0.05
_BLACK, _GREY, _RED, _BLUE = (0, 0, 0), (150, 150, 150), (40, 40, 210), (200, 120, 40)  # BGR


def _text(image: np.ndarray, text: str, x: int, y: int, colour=_BLACK,
          scale: float = 0.4) -> None:  # fmt: skip
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _percent(value: float) -> str:
    """A share as a percentage; a small non-zero one reads "<0.1%", not "0.0%"."""
    if value == 0 or value >= 0.001:
        return f"{100 * value:.1f}%"
    return "<0.1%"


def ingest_image(report: dict) -> np.ndarray:
    """BGR picture of an ingest report's ``per_joint`` numbers, one row per joint of the
    stored layout: confidence where detected (box p25-p75, median tick, whiskers p5-p95),
    the share of person-frames missing the joint, and the share of its detections outside
    the frame. A never-detected joint, a layout in the wrong order (confidences of one joint
    family land on another) or a wrong frame size (many joints outside) stand out."""
    per_joint = report["per_joint"]
    names = list(per_joint)
    height = INGEST_HEADER + len(names) * INGEST_ROW + INGEST_FOOTER
    image = np.full((height, INGEST_WIDTH, 3), 255, np.uint8)
    splits = ", ".join(f"{k} {v}" for k, v in report.get("splits", {}).items())
    _text(image, f"ingest {report['dataset']}: {report['kept']} videos kept of "
                 f"{report['videos_read']} read ({report['skipped']} skipped), layout "
                 f"{report['layout']}", _NAME_X, 16, scale=0.5)  # fmt: skip
    _text(image, f"splits: {splits or 'none'}; {report['person_frames']} person-frames, "
                 f"{report.get('empty_frames', 0)} empty frames; "
                 f"joints outside the frame {report['joints_outside_frame']['outside']} of "
                 f"{report['joints_outside_frame']['detected']}", _NAME_X, 34)  # fmt: skip
    _text(image, "joint", _NAME_X, 56)
    _text(image, "confidence where detected", _CONF_X, 56)
    _text(image, "missing (of person-frames)", _MISS_X, 56)
    _text(image, "outside the frame", _OUT_X, 56)
    top, bottom = INGEST_HEADER, INGEST_HEADER + len(names) * INGEST_ROW
    for tick in np.linspace(0.0, 1.0, 5):
        x = _CONF_X + round(tick * _CONF_W)
        cv2.line(image, (x, top - 4), (x, bottom), (225, 225, 225), 1)
        _text(image, f"{tick:g}", x - 8, top - 8, _GREY, 0.35)
    for j, name in enumerate(names):
        stats = per_joint[name]
        y = top + j * INGEST_ROW
        mid = y + INGEST_ROW // 2
        if j % 2:
            image[y:y + INGEST_ROW, :] = np.minimum(image[y:y + INGEST_ROW, :], 246)
        missing, outside = stats["missing_fraction"], stats["outside_fraction"]
        flagged = missing >= MISSING_FLAG or outside >= OUTSIDE_FLAG
        _text(image, name[:20], _NAME_X, mid + 4, _RED if flagged else _BLACK)
        q = stats["confidence_quantiles"]
        if q is None:
            _text(image, "never detected", _CONF_X + 4, mid + 4, _RED)
        else:
            x = {key: _CONF_X + round(value * _CONF_W) for key, value in q.items()}
            cv2.line(image, (x["p05"], mid), (x["p95"], mid), _BLACK, 1)
            for key in ("p05", "p95"):
                cv2.line(image, (x[key], mid - 3), (x[key], mid + 3), _BLACK, 1)
            cv2.rectangle(image, (x["p25"], mid - 5), (max(x["p75"], x["p25"] + 1), mid + 5),
                          _BLUE, -1)  # fmt: skip
            cv2.line(image, (x["p50"], mid - 7), (x["p50"], mid + 7), _BLACK, 2)
        bars = ((_MISS_X, missing, MISSING_FLAG, ""),
                (_OUT_X, outside, OUTSIDE_FLAG, f" ({stats['outside']})"))  # fmt: skip
        for x0, value, flag, count in bars:
            colour = _RED if value >= flag else _GREY
            cv2.rectangle(image, (x0, mid - 5), (x0 + _BAR_W, mid + 5), (210, 210, 210), 1)
            if value > 0:
                cv2.rectangle(image, (x0, mid - 5), (x0 + max(1, round(value * _BAR_W)), mid + 5),
                              colour, -1)  # fmt: skip
            _text(image, _percent(value) + count, x0 + _BAR_W + 6, mid + 4, colour)
    _text(image, f"red: missing in >= {MISSING_FLAG:.0%} of person-frames or >= "
                 f"{OUTSIDE_FLAG:.0%} of detections outside the frame (set missing by ingest); "
                 "bars span 0-100%", _NAME_X, height - 8, _GREY, 0.35)  # fmt: skip
    return image


def write_ingest_png(out_path: str | Path, report: dict) -> None:
    """plots/<dataset>/ingest.png from the ingest report (see ``ingest_image``)."""
    _write_png(out_path, ingest_image(report))


# --- plots/<dataset>/clips/salient/: the clips the ranker and the oracle pick (supp Fig. 5) --

# Bones by joint name, as COCO / OpenPose / JHMDB / NTU drawings connect them: a layout gets
# every bone whose two joints it has (layouts carry no bone list). Sides use the same names.
_CENTRE_BONES = (
    ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
    ("right_eye", "right_ear"), ("neck", "nose"), ("neck", "face"), ("neck", "head"),
    ("neck", "left_shoulder"), ("neck", "right_shoulder"), ("left_shoulder", "right_shoulder"),
    ("left_hip", "right_hip"), ("neck", "belly"), ("belly", "mid_hip"), ("neck", "mid_hip"),
    ("mid_hip", "left_hip"), ("mid_hip", "right_hip"), ("spine_base", "spine_mid"),
    ("spine_mid", "spine_shoulder"), ("spine_shoulder", "neck"),
    ("spine_base", "left_hip"), ("spine_base", "right_hip"),
)  # fmt: skip
_SIDE_BONES = (
    ("shoulder", "elbow"), ("elbow", "wrist"), ("wrist", "hand"), ("hand", "hand_tip"),
    ("hand", "thumb"), ("shoulder", "hip"), ("hip", "knee"), ("knee", "ankle"),
    ("ankle", "foot"), ("ankle", "heel"), ("ankle", "big_toe"), ("big_toe", "small_toe"),
)  # fmt: skip
NAMED_BONES = _CENTRE_BONES + tuple((f"{side}_{a}", f"{side}_{b}") for side in ("left", "right")
                                    for a, b in _SIDE_BONES)  # fmt: skip
# Without a neck (plain COCO-17) the head hangs from the shoulders by the ears, as COCO draws it.
NECKLESS_BONES = (("left_ear", "left_shoulder"), ("right_ear", "right_shoulder"))
SALIENT_VIDEOS = 6  # test videos drawn: the first of each class, classes in order
SALIENT_FRAMES = 4  # evenly spaced frames drawn per clip
_PANEL, _GAP, _LABEL_W, _TITLE_H, _GROUP_H = 100, 4, 270, 42, 22
# BGR: left joints blue, right joints orange, the rest green; other persons grey
_SIDE_COLOURS = {"left": (200, 110, 30), "right": (30, 120, 240), "centre": (60, 160, 60)}
_DOT = np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1]), -1).reshape(-1, 2)  # a joint: 3x3 px


def skeleton_edges(layout: Layout) -> np.ndarray:
    """(E, 2) joint-index pairs to draw: every ``NAMED_BONES`` bone whose joints the layout
    has (and ``NECKLESS_BONES`` if it has no neck), then, for joints of a user layout that no
    named bone reaches, consecutive members of its PAA groups (e.g. a custom arm
    ``[l_sho, l_elb, l_hand]``). Joints still unconnected are drawn as dots only.
    Deterministic: the order of the bone table, then of the groups."""
    index = {name: j for j, name in enumerate(layout.joints)}
    named = NAMED_BONES + (NECKLESS_BONES if "neck" not in index else ())
    edges = [(index[a], index[b]) for a, b in named if a in index and b in index]
    reached = {j for edge in edges for j in edge}
    for members in layout.groups.values():
        chain = [index[name] for name in members]
        edges += [(a, b) for a, b in zip(chain, chain[1:], strict=False)
                  if a not in reached or b not in reached]  # fmt: skip
    return np.array(edges, dtype=np.int64).reshape(-1, 2)


def _edge_sides(layout: Layout, edges: np.ndarray) -> np.ndarray:
    """Side of each edge ("left", "right" or "centre"): of its joints' names when they agree."""
    side = np.array(["left" if n.startswith(("left", "l_")) else
                     "right" if n.startswith(("right", "r_")) else "centre"
                     for n in layout.joints])  # fmt: skip
    if len(edges) == 0:
        return np.zeros(0, dtype=side.dtype)
    return np.where(side[edges[:, 0]] == side[edges[:, 1]], side[edges[:, 0]], "centre")


def _fit(keypoints: np.ndarray, size: int, pad: int = 8) -> np.ndarray:
    """(..., 2) source pixels -> panel pixels, one aspect-preserving fit for the whole video
    (its detected joints' bounding box), so that the panels of every clip compare."""
    present = keypoints[..., 2] > 0
    if not present.any():
        return np.zeros(keypoints.shape[:-1] + (2,))
    xy = keypoints[..., :2][present]
    low, high = xy.min(axis=0), xy.max(axis=0)
    scale = (size - 2 * pad) / max(float((high - low).max()), 1e-6)
    offset = (size - (high - low) * scale) / 2 - low * scale
    return keypoints[..., :2] * scale + offset


def _skeleton_panel(points: np.ndarray, present: np.ndarray, edges: np.ndarray,
                    sides: np.ndarray, frame: int) -> np.ndarray:  # fmt: skip
    """One frame, every person: (M, V, 2) panel pixels and (M, V) presence -> BGR panel."""
    panel = np.full((_PANEL, _PANEL, 3), 255, np.uint8)
    cv2.rectangle(panel, (0, 0), (_PANEL - 1, _PANEL - 1), (215, 215, 215), 1)
    pixels = np.round(points).astype(np.int32)
    for m in range(len(pixels))[::-1]:  # person 0 last, on top
        both = present[m][edges[:, 0]] & present[m][edges[:, 1]]
        for side, colour in _SIDE_COLOURS.items():
            chosen = edges[both & (sides == side)]
            if len(chosen):
                cv2.polylines(panel, list(pixels[m][chosen]), False,
                              colour if m == 0 else (170, 170, 170), 2, cv2.LINE_AA)  # fmt: skip
        dots = (pixels[m][present[m]][:, None, :] + _DOT[None]).reshape(-1, 2)
        dots = np.clip(dots, 0, _PANEL - 1)
        panel[dots[:, 1], dots[:, 0]] = (0, 0, 0) if m == 0 else (150, 150, 150)
    _text(panel, f"t={frame}", 3, _PANEL - 5, _GREY, 0.33)
    return panel


def _clip_strip(keypoints: np.ndarray, points: np.ndarray, clip: dict, lines: list[str],
                edges: np.ndarray, sides: np.ndarray) -> np.ndarray:  # fmt: skip
    """A label column and ``SALIENT_FRAMES`` evenly spaced frames of one clip."""
    width = _LABEL_W + SALIENT_FRAMES * (_PANEL + _GAP)
    strip = np.full((_PANEL + _GAP, width, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        _text(strip, line, 6, 18 + 16 * i, _BLACK if i == 0 else (70, 70, 70))
    last = clip["start"] + clip["frames"] - 1
    frames = np.unique(np.linspace(clip["start"], last, SALIENT_FRAMES).round().astype(int))
    present = keypoints[..., 2] > 0
    for i, t in enumerate(frames):
        x = _LABEL_W + i * (_PANEL + _GAP)
        strip[:_PANEL, x:x + _PANEL] = _skeleton_panel(points[t], present[t], edges, sides,
                                                       int(t))  # fmt: skip
    return strip


def _group_header(text: str, width: int) -> np.ndarray:
    header = np.full((_GROUP_H, width, 3), 235, np.uint8)
    _text(header, text, 6, 15, _BLACK, 0.45)
    return header


def _clip_lines(clip: dict, rank: int, ranker_trained: bool) -> list[str]:
    """The label of one strip: which clip, where, its scores and whether the oracle keeps it."""
    if ranker_trained:
        score = f"ranker score {clip['ranker_score']:.3f}"
        pick = f"; ranker pick: {'yes' if clip['ranker_pick'] else 'no'}"
    else:
        score, pick = "ranker score n/a (ranker not trained)", ""
    return [f"#{rank + 1}: clip {clip['clip']}, start frame {clip['start']}, "
            f"{clip['frames']} frames", score,
            f"oracle clip: {'yes' if clip['oracle'] else 'no'}{pick}",
            f"f's p(true class) {clip['true_class_prob']:.3f}"]  # fmt: skip


def salient_video_image(keypoints: np.ndarray, layout: Layout, entry: dict, *, k: int,
                        ranker_trained: bool,
                        ranker_skipped: str | None) -> np.ndarray:  # fmt: skip
    """BGR picture of one test video: its ranker top-K and oracle top-K clips as strips."""
    edges = skeleton_edges(layout)
    sides = _edge_sides(layout, edges)
    points = _fit(keypoints, _PANEL)
    clips = {c["clip"]: c for c in entry["clips"]}
    width = _LABEL_W + SALIENT_FRAMES * (_PANEL + _GAP)
    title = np.full((_TITLE_H, width, 3), 255, np.uint8)
    _text(title, f"test video {entry['video_id']}  |  true class: "
                 f"{', '.join(entry['true_classes'])}", 6, 16, _BLACK, 0.5)  # fmt: skip
    _text(title, f"{len(entry['clips'])} clips; K = {k}; clip scores of the classifier f and "
                 "of the saliency ranker", 6, 34, (70, 70, 70))  # fmt: skip
    parts = [title]
    if ranker_trained:
        parts.append(_group_header(f"ranker top-{k} (by ranker score)", width))
        parts += [_clip_strip(keypoints, points, clips[c], _clip_lines(clips[c], r, True),
                              edges, sides) for r, c in enumerate(entry["ranker_top_k"])]
    else:
        parts.append(_group_header(f"ranker top-{k}: ranker not trained", width))
        lines = textwrap.wrap(ranker_skipped or "ranker not trained", 110)
        note = np.full((8 + 14 * len(lines), width, 3), 255, np.uint8)
        for i, line in enumerate(lines):
            _text(note, line, 6, 16 + 14 * i, _RED, 0.35)
        parts.append(note)
    parts.append(_group_header(f"oracle top-{k} (by f's probability of the true class)", width))
    parts += [_clip_strip(keypoints, points, clips[c], _clip_lines(clips[c], r, ranker_trained),
                          edges, sides) for r, c in enumerate(entry["oracle_top_k"])]
    return np.vstack(parts)


def _first_video_per_class(video_labels: np.ndarray, limit: int) -> list[int]:
    """Indices of the first video of each class (classes in order, a video once), at most
    ``limit``: a deterministic choice that shows several actions."""
    has_class = video_labels.any(axis=0)
    firsts = video_labels.argmax(axis=0)[has_class]
    return list(dict.fromkeys(firsts.tolist()))[:limit]


def salient_clip_index(*, clip_heatmaps_path: str | Path, keypoints_path: str | Path,
                       clip_logits: Logits, classifier: Logits, ranker, test_split: str,
                       k: int, max_videos: int = SALIENT_VIDEOS) -> list[dict]:  # fmt: skip
    """Per drawn test video (the first of each class, up to ``max_videos``): every clip with
    its start, length, ranker score, f's true-class probability, and the ranker's and the
    oracle's top-K, computed as ``run_clip_selection`` does on the test split (its oracle and
    top-K functions, the trained ``ranker`` or None). Clip starts come from the clip
    heatmaps file, whose rows the clip logits were computed on."""
    # Imported here: torch is not needed by the other pictures (ingest, heatmaps).
    from jmrn.clip_selection import (
        clip_probabilities,
        ranker_scores,
        top_k_per_video,
        true_class_scores,
    )

    if clip_logits.parent_ids is None or clip_logits.labels is None:
        raise ValueError(f"{clip_logits.path}: not a clip logits file (no parent_id / labels)")
    if test_split not in clip_logits.splits:
        raise ValueError(f"{clip_logits.path}: no split {test_split!r}")
    multi_label = bool(clip_logits.multi_label)
    test = np.sort(clip_logits.splits[test_split])
    parents = np.array(clip_logits.parent_ids, dtype=object)[test]
    names, first, inverse = np.unique(parents, return_index=True, return_inverse=True)
    order = np.argsort(first)  # the test videos in file order
    video_labels = clip_logits.labels[test[first[order]]]
    chosen = _first_video_per_class(video_labels, max_videos) if len(video_labels) else []
    groups = [test[inverse == order[v]] for v in chosen]
    if not groups:
        return []
    rows = np.concatenate(groups)
    clip_video = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    clip_ids = [clip_logits.video_ids[r] for r in rows]
    probs = clip_probabilities(classifier.logits[classifier.rows(clip_ids)], multi_label)
    true = true_class_scores(probs, clip_video, video_labels[chosen], multi_label)
    oracle = top_k_per_video(true, clip_video, k) & np.isfinite(true)
    if ranker is None:
        saliency, picked = np.full(len(rows), np.nan), np.zeros(len(rows), bool)
    else:
        saliency = ranker_scores(ranker, clip_logits.features[rows])
        picked = top_k_per_video(saliency, clip_video, k)
    with HeatmapsFile(clip_heatmaps_path) as hf:
        if hf.unit != "clip":
            raise ValueError(f"{clip_heatmaps_path}: not a clip heatmaps file (unit {hf.unit!r})")
        row_of = {clip: i for i, clip in enumerate(hf.video_ids)}
        missing = [c for c in clip_ids if c not in row_of]
        if missing:
            raise ValueError(f"{clip_heatmaps_path} lacks clip {missing[0]!r} of "
                             f"{clip_logits.path}: re-run clip_heatmaps and clip_logits")
        heat_rows = np.array([row_of[c] for c in clip_ids])
        start, frames = hf.clip_start[heat_rows], hf.num_frames[heat_rows]
        video_row = hf.clip_video[heat_rows]
    with KeypointsFile(keypoints_path) as kf:
        stored = np.array(kf.video_ids, dtype=object)[video_row]
        class_names = kf.class_names
    if not (stored == np.array(clip_logits.parent_ids, dtype=object)[rows]).all():
        raise ValueError(f"{keypoints_path} and {clip_heatmaps_path} disagree on the videos "
                         "of the clips: re-run clip_heatmaps")  # fmt: skip
    entries = []
    for g in range(len(groups)):
        at = np.flatnonzero(clip_video == g)
        clips = [{"clip": int(clip_ids[i].rsplit("#", 1)[1]), "clip_id": clip_ids[i],
                  "start": int(start[i]), "frames": int(frames[i]),
                  "ranker_score": None if ranker is None else round(float(saliency[i]), 6),
                  "true_class_prob": round(float(true[i]), 6),
                  "ranker_pick": bool(picked[i]), "oracle": bool(oracle[i])}
                 for i in at]  # fmt: skip
        # rank order, ties to the earlier clip as in top_k_per_video
        by_ranker = np.lexsort((at, -saliency[at]))
        by_oracle = np.lexsort((at, -true[at]))
        entries.append({
            "video_id": str(names[order[chosen[g]]]),
            "keypoints_row": int(video_row[at[0]]),
            "true_classes": [class_names[c] for c in np.flatnonzero(video_labels[chosen[g]])],
            "ranker_top_k": [clips[i]["clip"] for i in by_ranker if picked[at[i]]],
            "oracle_top_k": [clips[i]["clip"] for i in by_oracle if oracle[at[i]]],
            "clips": clips,
        })  # fmt: skip
    return entries


def _file_name(position: int, video_id: str) -> str:
    """A safe, ordered PNG name for a video id (ids may hold '/', spaces, '#')."""
    return f"{position:02d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', video_id)[:80]}.png"


def write_salient_clips(out_dir: str | Path, index_path: str | Path, *,
                        clip_heatmaps_path: str | Path, keypoints_path: str | Path,
                        clip_logits: Logits, classifier: Logits, ranker, test_split: str,
                        k: int, ranker_skipped: str | None = None,
                        max_videos: int = SALIENT_VIDEOS) -> dict:  # fmt: skip
    """One PNG per drawn test video in ``out_dir`` (``salient_video_image``), and at
    ``index_path`` the numbers they show (``salient_clip_index``) with each video's PNG
    name. The index is kept out of ``out_dir`` because ``dvc plots show`` would draw a JSON
    file there as a meaningless chart. PNGs of an earlier run are removed first, so the
    folder holds this run's videos only. Returns the index."""
    out_dir = Path(out_dir)
    entries = salient_clip_index(clip_heatmaps_path=clip_heatmaps_path,
                                 keypoints_path=keypoints_path, clip_logits=clip_logits,
                                 classifier=classifier, ranker=ranker, test_split=test_split,
                                 k=k, max_videos=max_videos)  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.png"):
        stale.unlink()
    with KeypointsFile(keypoints_path) as kf:
        layout = layout_from_attrs(kf.file.attrs)
        for position, entry in enumerate(entries):
            entry["png"] = _file_name(position, entry["video_id"])
            image = salient_video_image(kf.keypoints(entry["keypoints_row"]), layout, entry,
                                        k=k, ranker_trained=ranker is not None,
                                        ranker_skipped=ranker_skipped)  # fmt: skip
            _write_png(out_dir / entry["png"], image)
    index = {"split": test_split, "k": int(k), "classifier": classifier.model,
             "ranker_trained": ranker is not None, "ranker_skipped": ranker_skipped,
             "videos": entries}  # fmt: skip
    write_json(index_path, index)
    return index
