"""JMRN (Shah et al., WACV 2022) and the PoTion baseline (Choutas et al., CVPR 2018).

Input to both: a batch of representations (B, C, V, H, W): C temporal channels, V joints.

JMRN (method.md §4.1, supplementary Tables 1-3), decisions taken here:
* Per-joint input BatchNorm = one BatchNorm2d over the V*C (joint, channel) maps, which is
  exactly a separate affine BN per joint over its C channels.
* The motion extractor is shared by all joints and applied to all of them at once: joints
  are folded into the batch, (B*V, C, H, W), and run in channels_last memory format, which
  is the fastest layout measured on CPU and on GPU (bench/train_step.py).
  ``per_joint_loop_forward`` is the same network written as a loop over joints, kept to prove
  equality and to benchmark against.
* As in the authors' code, the extractor and the 1x1 convolutions have no BatchNorm (their BN
  layers are created but never called upstream; we do not create them), and the selector
  applies its ReLU after global pooling (method.md §10.13-14).
* The selector's 1x1 convolution is linear and its ReLU comes after the pooling, so it is
  computed on the pooled features: mean(conv1x1(r)) = conv1x1(mean(r)), the same function
  and the same parameter without convolving (and copying) every position of every joint.
* Joint selector: w = sigmoid(y / t). ``selector="gumbel"`` adds logistic noise
  (g1 - g2, g ~ Gumbel(0, 1)) to y during training only: unlike the authors' code, evaluation
  is deterministic (method.md §10.15).
* The projection head reads r_j, before compression and before joint weighting (§10.16),
  through Linear-ReLU-Linear, as in the authors' code. ``embedding="c"`` takes the compressed
  c_j instead (what the classifier reads, so the loss shapes the classifier's input), and
  ``projection`` = ``linear`` | ``none`` replaces the MLP by one Linear or by nothing (the
  pooled feature itself, L2-normalised): options for the JCL search of issue 23. A joint's
  weight w_j is a positive scalar, which an L2-normalised embedding cannot see without a
  projection, so "after weighting" is not offered.
* Widths are parameters: (128, 256) extractor channels and a 512-wide head are the paper's;
  smaller ones make CPU configurations affordable.

PoTion: six 3x3 conv + BN + ReLU (+ Dropout2d) layers, 2 per width, strides 2, 1; global
average pooling; a linear classifier, on the C*V input maps (no background channel).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Output:
    logits: torch.Tensor  # (B, K)
    joint_weights: torch.Tensor | None  # (B, V) selector weights in [0, 1]
    embeddings: torch.Tensor | None  # (B, V, D) L2-normalised per-joint projections
    features: torch.Tensor  # (B, F) pooled features before the classifier


EMBEDDINGS = ("r", "c")  # where the projection head reads: extractor output | compressed
PROJECTIONS = ("mlp", "linear", "none")


def projection_head(kind: str, width: int, dims: tuple[int, int]) -> nn.Module:
    """The joint-contrastive projection: the authors' MLP, one Linear, or the identity."""
    if kind == "mlp":
        return nn.Sequential(nn.Linear(width, dims[0]), nn.ReLU(inplace=True), nn.Linear(*dims))
    if kind == "linear":
        return nn.Linear(width, dims[1])
    return nn.Identity()


def _conv(cin: int, cout: int, stride: int, dropout: float) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU(inplace=True), nn.Dropout2d(dropout)]


class JMRN(nn.Module):
    def __init__(self, num_joints: int, num_classes: int, channels: int = 3, c_dim: int = 128,
                 widths: tuple[int, int] = (128, 256), head_width: int = 512,
                 dropout: float = 0.0, selector: str = "sigmoid", gumbel_tau: float = 1.0,
                 proj_dims: tuple[int, int] = (128, 128), embedding: str = "r",
                 projection: str = "mlp") -> None:  # fmt: skip
        super().__init__()
        if selector not in ("sigmoid", "gumbel"):
            raise ValueError(f"unknown selector {selector!r} (sigmoid | gumbel)")
        if embedding not in EMBEDDINGS:
            raise ValueError(f"unknown embedding {embedding!r} ({' | '.join(EMBEDDINGS)})")
        if projection not in PROJECTIONS:
            raise ValueError(f"unknown projection {projection!r} ({' | '.join(PROJECTIONS)})")
        w1, w2 = widths
        self.num_joints, self.channels = num_joints, channels
        self.selector, self.gumbel_tau = selector, gumbel_tau
        self.memory_format = torch.channels_last  # of the folded extractor input (benchmarked)
        self.input_norm = nn.BatchNorm2d(num_joints * channels)
        self.extractor = nn.Sequential(
            *_conv(channels, w1, 2, dropout), *_conv(w1, w1, 1, dropout),
            *_conv(w1, w2, 2, dropout), *_conv(w2, w2, 1, dropout),
        )  # fmt: skip
        self.compress = nn.Sequential(nn.Conv2d(w2, c_dim, 1), nn.ReLU(inplace=True))
        self.select_conv = nn.Conv2d(num_joints * w2, w2, 1)
        self.select_fc = nn.Linear(w2, num_joints)
        self.classify = nn.Sequential(
            nn.Conv2d(num_joints * c_dim, head_width, 1), nn.ReLU(inplace=True),
            nn.Conv2d(head_width, head_width, 3, 2, 1), nn.BatchNorm2d(head_width),
            nn.ReLU(inplace=True), nn.Dropout2d(dropout),
            nn.Conv2d(head_width, head_width, 3, 1, 1), nn.BatchNorm2d(head_width),
            nn.ReLU(inplace=True), nn.Dropout2d(dropout),
        )  # fmt: skip
        self.fc = nn.Linear(head_width, num_classes)
        self.embedding = embedding
        self.project = projection_head(projection, w2 if embedding == "r" else c_dim, proj_dims)

    def normalise_input(self, x: torch.Tensor) -> torch.Tensor:
        """Per-joint BatchNorm: (B, C, V, H, W) -> (B, V, C, H, W), joint-major."""
        b, c, v, h, w = x.shape
        x = x.transpose(1, 2).reshape(b, v * c, h, w)
        return self.input_norm(x).view(b, v, c, h, w)

    def select(self, pooled_r: torch.Tensor) -> torch.Tensor:
        """Joint selector on the spatially pooled extractor outputs (B, V, w2) -> weights
        (B, V): the 1x1 convolution over the joint-major concatenation, applied after the
        pooling (both are linear), then ReLU."""
        weight = self.select_conv.weight.flatten(1)  # (w2, V*w2): joint-major input channels
        y = F.linear(pooled_r.flatten(1), weight, self.select_conv.bias)
        y = self.select_fc(F.relu(y))
        if self.selector == "gumbel" and self.training:
            u = torch.rand_like(y).clamp(1e-6, 1 - 1e-6)
            y = y + torch.log(u) - torch.log1p(-u)  # logistic = difference of two Gumbels
        return torch.sigmoid(y / self.gumbel_tau)

    def head(self, r: torch.Tensor, c: torch.Tensor, batch: int) -> Output:
        """Everything after the per-joint extractor. r: (B, V, w2, h, w), c: (B, V, c_dim, h, w)."""
        v = self.num_joints
        pooled_r = r.mean(dim=(3, 4))  # (B, V, w2)
        weights = self.select(pooled_r)
        weighted = (c * weights[:, :, None, None, None]).flatten(1, 2)
        features = self.classify(weighted).mean(dim=(2, 3))
        pooled = (pooled_r if self.embedding == "r" else c.mean(dim=(3, 4))).reshape(batch * v, -1)
        z = F.normalize(self.project(pooled), dim=-1)
        return Output(self.fc(features), weights, z.view(batch, v, -1), features)

    def forward(self, x: torch.Tensor) -> Output:
        b, _, v, h, w = x.shape
        folded = self.normalise_input(x).reshape(b * v, self.channels, h, w)
        folded = folded.contiguous(memory_format=self.memory_format)
        r = self.extractor(folded)  # (B*V, w2, h', w'): every joint at once
        c = self.compress(r)
        return self.head(r.reshape(b, v, *r.shape[1:]), c.reshape(b, v, *c.shape[1:]), b)


def per_joint_loop_forward(model: JMRN, x: torch.Tensor) -> Output:
    """The same JMRN computed joint by joint, as the authors' code does (tests, benchmark)."""
    b, c, v, h, w = x.shape
    bn = model.input_norm
    rs, cs = [], []
    for j in range(v):
        sl = slice(j * c, (j + 1) * c)
        running_mean = bn.running_mean[sl] if bn.running_mean is not None else None
        running_var = bn.running_var[sl] if bn.running_var is not None else None
        xj = F.batch_norm(x[:, :, j], running_mean, running_var, bn.weight[sl], bn.bias[sl],
                          model.training, bn.momentum, bn.eps)  # fmt: skip
        rj = model.extractor(xj)
        rs.append(rj)
        cs.append(model.compress(rj))
    return model.head(torch.stack(rs, 1), torch.stack(cs, 1), b)


class PoTion(nn.Module):
    def __init__(self, num_joints: int, num_classes: int, channels: int = 3,
                 widths: tuple[int, int] = (128, 256), head_width: int = 512,
                 dropout: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        layers: list[nn.Module] = []
        cin = channels * num_joints
        for width in (*widths, head_width):
            for stride in (2, 1):
                layers += [nn.Conv2d(cin, width, 3, stride, 1), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True), nn.Dropout2d(dropout)]  # fmt: skip
                cin = width
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(head_width, num_classes)

    def forward(self, x: torch.Tensor) -> Output:
        b, c, v, h, w = x.shape
        x = x.reshape(b, c * v, h, w).contiguous(memory_format=torch.channels_last)
        features = self.body(x).mean(dim=(2, 3))
        return Output(self.fc(features), None, None, features)


def build_model(settings: dict, num_joints: int, num_classes: int, channels: int) -> nn.Module:
    """The model named by ``settings["name"]`` (``jmrn`` | ``potion``) from the model params."""
    widths = tuple(settings["widths"])
    if settings["name"] == "jmrn":
        return JMRN(num_joints, num_classes, channels, settings["c_dim"], widths,
                    settings["head_width"], settings["dropout"], settings["selector"],
                    settings["gumbel_tau"],
                    # checkpoints from before these keys existed were trained with r and mlp
                    embedding=settings.get("embedding", "r"),
                    projection=settings.get("projection", "mlp"))  # fmt: skip
    if settings["name"] == "potion":
        return PoTion(num_joints, num_classes, channels, widths, settings["head_width"],
                      settings["dropout"])  # fmt: skip
    raise ValueError(f"unknown model {settings['name']!r} (jmrn | potion)")
