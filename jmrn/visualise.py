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
    with atomic_path(out_path) as tmp:
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"could not encode {out_path}")
        tmp.write_bytes(encoded.tobytes())
