"""A picture of what the network sees: PoTion colour coding of the aggregated heatmaps.

Each temporal channel gets a colour (early blue, middle green, late red for C = 3; a
blue-to-red ramp for other C), all joints are summed, and the image is scaled to its maximum.
One tile per class (the first video of that class), labelled, in a grid.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from jmrn.heatmaps import normalise
from jmrn.heatmaps_file import HeatmapsFile
from jmrn.io import atomic_path


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
    with atomic_path(out_path) as tmp:
        ok, encoded = cv2.imencode(".png", bgr)
        if not ok:
            raise RuntimeError(f"could not encode {out_path}")
        tmp.write_bytes(encoded.tobytes())
