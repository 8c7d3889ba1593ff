"""Offline datasets: a registry from name to a factory that returns fixed train/val/test tensors.

Nothing here downloads anything. Digits ship with scikit-learn, mnist1d and point clouds are generated from a seed,
CIFAR-10 and ``.npz`` arrays are read from a data directory the user fills (spec ``data_dir``, default the
``LABBOOK_DATASET_DIR`` environment variable). Every split is a pure function of the seed.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


class DatasetError(ValueError):
    """A dataset that cannot be loaded; the message says what to do about it."""


@dataclass
class Splits:
    """Tensors ready for a model: inputs float32 (N, *input_shape), labels int64 (N,)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    classes: list[str]
    augment: str = ""  # "points": random rotation + jitter per batch at train time

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _split(x: np.ndarray, y: np.ndarray, seed: int, val_frac: float, test_frac: float):
    """Deterministic stratification-free shuffle split; returns (train, val, test) pairs."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))
    n_test = int(round(len(x) * test_frac))
    n_val = int(round(len(x) * val_frac))
    test, val, train = idx[:n_test], idx[n_test:n_test + n_val], idx[n_test + n_val:]
    return (x[train], y[train]), (x[val], y[val]), (x[test], y[test])


def _to_splits(name, train, val, test, num_classes, classes=None, augment="") -> Splits:
    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    def lab(a):
        return torch.from_numpy(np.asarray(a, dtype=np.int64))

    return Splits(name, t(train[0]), lab(train[1]), t(val[0]), lab(val[1]), t(test[0]), lab(test[1]),
                  num_classes, classes or [str(i) for i in range(num_classes)], augment)


def _standardise(train, val, test):
    """Scale with statistics of the training split only (no leakage into val/test)."""
    mean, std = float(train[0].mean()), float(train[0].std()) + 1e-8
    return [((a - mean) / std, b) for a, b in (train, val, test)]


# ---------------------------------------------------------------------------------------------------- digits
def load_digits_dataset(*, seed: int = 0, val_frac: float = 0.1, test_frac: float = 0.2, **_: Any) -> Splits:
    """sklearn's bundled 8x8 digits (1797 images, 10 classes) as (1, 8, 8) images."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    parts = _standardise(*_split(x, d.target, seed, val_frac, test_frac))
    return _to_splits("digits", *parts, num_classes=10)


# ---------------------------------------------------------------------------------------------------- mnist1d
def _mnist1d_templates() -> tuple[np.ndarray, np.ndarray]:
    """The ten digit templates of MNIST-1D (Greydanus 2020), whitened so each starts and ends at 0."""
    d = np.asarray([
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ])
    d = d - d.mean(1, keepdims=True)
    d = d / d.std(1, keepdims=True)
    d = d - d[:, :1]
    return d / 6.0, np.linspace(-5, 5, d.shape[1]) / 6.0


def _interp(x: np.ndarray, n: int) -> np.ndarray:
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(x)), x)


def make_mnist1d(*, num_samples: int = 5000, template_len: int = 12, padding: tuple[int, int] = (36, 60),
                 scale_coeff: float = 0.4, max_translation: int = 48, corr_noise_scale: float = 0.25,
                 iid_noise_scale: float = 2e-2, shear_scale: float = 0.75, final_seq_length: int = 40,
                 seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D's ``make_dataset`` re-implemented (same arguments and transforms, numpy Generator for the seed).

    Each sample: template + random padding, dilation, scaling, circular translation, correlated noise in the
    padding, iid noise, shear, then resampling to ``final_seq_length`` points. Returns x (N, L) and y (N,).
    """
    from scipy.ndimage import gaussian_filter1d

    rng = np.random.default_rng(seed)
    templates, _ = _mnist1d_templates()
    per_class = num_samples // 10
    xs, ys = [], []
    for label in range(10):
        for _ in range(per_class):
            x = templates[label] + 1e-8
            p = padding[0] + int(rng.random() * (padding[1] - padding[0] + 1))
            x = np.concatenate([x, np.zeros(p)])
            x = _interp(x, template_len + padding[1])
            x = x * (1 + scale_coeff * (rng.random() - 0.5))
            k = int(rng.integers(max_translation))
            x = np.concatenate([x[len(x) - k:], x[:len(x) - k]]) if k else x
            mask = x != 0
            corr = gaussian_filter1d(corr_noise_scale * rng.standard_normal(x.shape), 2)
            x = mask * x + (~mask) * corr
            x = x + iid_noise_scale * rng.standard_normal(x.shape)
            x = x - shear_scale * (rng.random() - 0.5) * np.linspace(-0.5, 0.5, len(x))
            xs.append(_interp(x, final_seq_length))
            ys.append(label)
    order = rng.permutation(len(ys))
    return np.stack(xs)[order].astype(np.float32), np.asarray(ys)[order]


def load_mnist1d(*, seed: int = 0, num_samples: int = 5000, val_frac: float = 0.1, test_frac: float = 0.2,
                 **_: Any) -> Splits:
    """MNIST-1D generated locally as (1, 40) sequences; the generator seed is fixed (42) like the reference set,
    the split seed is ``seed``."""
    x, y = make_mnist1d(num_samples=num_samples)
    parts = _standardise(*_split(x[:, None], y, seed, val_frac, test_frac))
    return _to_splits("mnist1d", *parts, num_classes=10)


# ---------------------------------------------------------------------------------------------------- points
POINT_SHAPES = ("sphere", "cube", "cylinder", "cone", "torus", "pyramid")


def _sample_shape(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points on the surface of a unit-sized primitive, centred at the origin."""
    u, v = rng.random(n), rng.random(n)
    if kind == "sphere":
        p = rng.standard_normal((n, 3))
        return p / np.linalg.norm(p, axis=1, keepdims=True)
    if kind == "cube":
        p = rng.uniform(-1, 1, (n, 3))
        axis, sign = rng.integers(3, size=n), rng.choice([-1.0, 1.0], size=n)
        p[np.arange(n), axis] = sign
        return p
    if kind == "cylinder":
        t = 2 * math.pi * u
        return np.stack([np.cos(t), np.sin(t), 2 * v - 1], 1)
    if kind == "cone":
        t, h = 2 * math.pi * u, np.sqrt(v)  # sqrt: uniform density over the lateral surface
        return np.stack([h * np.cos(t), h * np.sin(t), 1 - 2 * h], 1)
    if kind == "torus":
        t, s = 2 * math.pi * u, 2 * math.pi * v
        return np.stack([(0.7 + 0.3 * np.cos(s)) * np.cos(t), (0.7 + 0.3 * np.cos(s)) * np.sin(t), 0.3 * np.sin(s)], 1)
    if kind == "pyramid":  # square base at z=-1, apex at z=1: sample the four triangular faces
        h = np.sqrt(v)
        side, t = rng.integers(4, size=n), 2 * u - 1
        x, y = h * t, h * np.ones(n)
        xy = np.stack([x, y], 1)
        rot = np.array([[[1, 0], [0, 1]], [[0, -1], [1, 0]], [[-1, 0], [0, -1]], [[0, 1], [-1, 0]]], dtype=float)
        xy = np.einsum("nij,nj->ni", rot[side], xy)
        return np.concatenate([xy, (1 - 2 * h)[:, None]], 1)
    raise DatasetError(f"unknown shape {kind!r}")


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation (QR of a Gaussian matrix with sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def make_point_clouds(*, num_samples: int, num_points: int, noise: float, seed: int, rotate: bool = True,
                      shapes: tuple[str, ...] = POINT_SHAPES) -> tuple[np.ndarray, np.ndarray]:
    """Point clouds (N, 3, num_points) of random primitives with anisotropic scale, rotation and Gaussian noise."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(num_samples):
        label = i % len(shapes)
        p = _sample_shape(shapes[label], num_points, rng) * rng.uniform(0.8, 1.2, 3)
        if rotate:
            p = p @ random_rotation(rng).T
        xs.append((p + noise * rng.standard_normal(p.shape)).T)
        ys.append(label)
    return np.stack(xs).astype(np.float32), np.asarray(ys)


def load_points(*, seed: int = 0, num_samples: int = 1200, num_points: int = 256, noise: float = 0.02,
                val_frac: float = 0.1, test_frac: float = 0.2, **_: Any) -> Splits:
    x, y = make_point_clouds(num_samples=num_samples, num_points=num_points, noise=noise, seed=seed)
    parts = _split(x, y, seed, val_frac, test_frac)
    return _to_splits("points", *parts, num_classes=len(POINT_SHAPES), classes=list(POINT_SHAPES), augment="points")


def augment_points(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Train-time augmentation for (B, 3, N) clouds: a random rotation per cloud and small jitter."""
    q, r = torch.linalg.qr(torch.randn(x.shape[0], 3, 3, generator=generator))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)
    return torch.bmm(q, x) + 0.01 * torch.randn(x.shape, generator=generator)


# ---------------------------------------------------------------------------------------------------- data dir
def data_dir(spec_dir: str | None) -> Path:
    d = spec_dir or os.environ.get("LABBOOK_DATASET_DIR", "")
    if not d:
        raise DatasetError("no data directory: set LABBOOK_DATASET_DIR or give data_dir in the job spec")
    return Path(d)


CIFAR_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def load_cifar10(*, seed: int = 0, data_dir_path: str | None = None, val_frac: float = 0.1, limit: int | None = None,
                 **_: Any) -> Splits:
    """CIFAR-10 from the binary version (cifar-10-binary.tar.gz, extracted): each record is 1 label byte + 3072
    pixel bytes. Training batches give train/val (split by seed); test_batch.bin gives test."""
    root = data_dir(data_dir_path) / "cifar-10-batches-bin"
    missing = [f for f in CIFAR_FILES if not (root / f).is_file()]
    if missing:
        raise DatasetError(
            f"CIFAR-10 files missing: {', '.join(missing)}. Put the binary version's files "
            f"({', '.join(CIFAR_FILES)}) in {root} (extract cifar-10-binary.tar.gz into {root.parent}).")

    def read(files):
        raw = np.concatenate([np.fromfile(root / f, dtype=np.uint8).reshape(-1, 3073) for f in files])
        if limit:
            raw = raw[:limit]
        return raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, raw[:, 0].astype(np.int64)

    x, y = read(CIFAR_FILES[:5])
    xt, yt = read(CIFAR_FILES[5:])
    (tr, va, _) = _split(x, y, seed, val_frac, 0.0)
    mean = tr[0].mean(axis=(0, 2, 3), keepdims=True)
    std = tr[0].std(axis=(0, 2, 3), keepdims=True) + 1e-8
    parts = [((a - mean) / std, b) for a, b in (tr, va, (xt, yt))]
    return _to_splits("cifar10", *parts, num_classes=10, classes=CIFAR_CLASSES)


def load_npz(*, seed: int = 0, data_dir_path: str | None = None, file: str = "", val_frac: float = 0.1,
             test_frac: float = 0.2, **_: Any) -> Splits:
    """Arrays x_train, y_train (and optionally x_test, y_test) from ``<data_dir>/<file>``; without a test pair
    the test split is carved from train by seed. Loaded with allow_pickle=False."""
    root = data_dir(data_dir_path).resolve()
    path = (root / file).resolve()
    if not file or root not in path.parents or path.suffix != ".npz":
        raise DatasetError(f"npz file must be a .npz path inside the data directory {root}, got {file!r}")
    if not path.is_file():
        raise DatasetError(f"npz file missing: put {file} (arrays x_train, y_train[, x_test, y_test]) in {root}")
    with np.load(path, allow_pickle=False) as z:
        if "x_train" not in z or "y_train" not in z:
            raise DatasetError(f"{file} must contain arrays x_train and y_train; found {', '.join(z.files)}")
        x, y = z["x_train"].astype(np.float32), z["y_train"].astype(np.int64)
        test = (z["x_test"].astype(np.float32), z["y_test"].astype(np.int64)) if "x_test" in z else None
    if x.ndim == 1:
        x = x[:, None]
    if test is None:
        tr, va, te = _split(x, y, seed, val_frac, test_frac)
    else:
        tr, va, _ = _split(x, y, seed, val_frac, 0.0)
        te = test
    num_classes = int(max(y.max(), te[1].max() if len(te[1]) else 0)) + 1
    return _to_splits("npz", tr, va, te, num_classes=num_classes)


DATASETS: dict[str, Callable[..., Splits]] = {
    "digits": load_digits_dataset,
    "mnist1d": load_mnist1d,
    "points": load_points,
    "cifar10": load_cifar10,
    "npz": load_npz,
}


def load_dataset(name: str, *, seed: int = 0, data_dir: str | None = None, **options: Any) -> Splits:
    """Look ``name`` up in DATASETS and build its splits (``options`` are dataset-specific, e.g. num_points)."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; allowed: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](seed=seed, data_dir_path=data_dir, **options)
