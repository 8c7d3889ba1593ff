"""Models for 1-D signals (mnist1d) and point clouds (N points x 3 coordinates, channels first)."""
from __future__ import annotations

import torch
from torch import nn


class CNN1D(nn.Module):
    """The MNIST-1D paper's ConvNet shape: three stride-2 conv layers with ReLU, then a linear head."""

    def __init__(self, input_shape, num_classes, width: int = 32):
        super().__init__()
        c = input_shape[0]
        self.features = nn.Sequential(
            nn.Conv1d(c, width, 5, 2, 2), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Conv1d(width, width, 3, 2, 1), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Conv1d(width, width, 3, 2, 1), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


class PointNet(nn.Module):
    """PointNet (Qi et al. 2017) without the T-nets: shared per-point MLPs as 1x1 convs, max pool, MLP head."""

    def __init__(self, input_shape, num_classes, width: int = 64, dropout: float = 0.3):
        super().__init__()
        c = input_shape[0]
        w = width
        self.point_mlp = nn.Sequential(
            nn.Conv1d(c, w, 1, bias=False), nn.BatchNorm1d(w), nn.ReLU(inplace=True),
            nn.Conv1d(w, 2 * w, 1, bias=False), nn.BatchNorm1d(2 * w), nn.ReLU(inplace=True),
            nn.Conv1d(2 * w, 8 * w, 1, bias=False), nn.BatchNorm1d(8 * w), nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool1d(1), nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(8 * w, 4 * w), nn.BatchNorm1d(4 * w), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(4 * w, num_classes))

    def forward(self, x):
        return self.head(self.point_mlp(x))


class PointTransformer(nn.Module):
    """A small point transformer: per-point embedding, self-attention over a strided subset of points (every
    ``stride``-th point, to keep attention cheap), with the coordinates encoded as a learned positional term."""

    def __init__(self, input_shape, num_classes, dim: int = 64, depth: int = 2, heads: int = 4, stride: int = 4):
        super().__init__()
        c = input_shape[0]
        self.stride = stride
        self.embed = nn.Sequential(nn.Conv1d(c, dim, 1), nn.GELU(), nn.Conv1d(dim, dim, 1))
        self.pos = nn.Sequential(nn.Conv1d(c, dim, 1), nn.GELU(), nn.Conv1d(dim, dim, 1))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, 0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = x[:, :, :: self.stride]
        h = (self.embed(x) + self.pos(x)).transpose(1, 2)
        h = self.norm(self.encoder(h))
        return self.head(torch.amax(h, dim=1))
