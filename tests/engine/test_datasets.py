import numpy as np
import pytest
import torch

from runner.engine.datasets import CIFAR_FILES, DatasetError, load_dataset, make_mnist1d


@pytest.mark.parametrize("name, shape, classes", [("digits", (1, 8, 8), 10), ("mnist1d", (1, 40), 10),
                                                   ("points", (3, 64), 6)])
def test_splits_are_a_function_of_the_seed(name, shape, classes):
    options = {"num_points": 64, "num_samples": 300} if name == "points" else {}
    a = load_dataset(name, seed=3, **options)
    b = load_dataset(name, seed=3, **options)
    c = load_dataset(name, seed=4, **options)
    assert a.input_shape == shape and a.num_classes == classes
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train[:50], c.x_train[:50])
    total = len(a.x_train) + len(a.x_val) + len(a.x_test)
    assert len(a.x_test) == pytest.approx(0.2 * total, abs=1) and len(a.x_val) == pytest.approx(0.1 * total, abs=1)
    assert set(a.y_train.tolist()) == set(range(classes))


def test_mnist1d_generator_is_balanced_and_seeded():
    x, y = make_mnist1d(num_samples=200, seed=1)
    x2, _ = make_mnist1d(num_samples=200, seed=1)
    x3, _ = make_mnist1d(num_samples=200, seed=2)
    assert x.shape == (200, 40) and np.bincount(y).tolist() == [20] * 10
    assert np.array_equal(x, x2) and not np.array_equal(x, x3)


def test_missing_cifar_files_say_what_to_put_where(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar10", data_dir=str(tmp_path))
    message = str(err.value)
    assert str(tmp_path / "cifar-10-batches-bin") in message
    assert all(f in message for f in CIFAR_FILES)


def test_cifar_binary_batches_are_read(tmp_path):
    # Given files in the CIFAR-10 binary layout: 1 label byte + 3072 pixel bytes per record
    root = tmp_path / "cifar-10-batches-bin"
    root.mkdir()
    rng = np.random.default_rng(0)
    for f in CIFAR_FILES:
        records = np.concatenate([rng.integers(0, 10, (20, 1)), rng.integers(0, 256, (20, 3072))], 1)
        records.astype(np.uint8).tofile(root / f)
    data = load_dataset("cifar10", data_dir=str(tmp_path))
    assert data.input_shape == (3, 32, 32) and len(data.x_test) == 20 and len(data.x_train) + len(data.x_val) == 100
    assert data.classes[0] == "airplane"


def test_npz_from_data_dir_and_no_escape(tmp_path):
    np.savez(tmp_path / "toy.npz", x_train=np.random.rand(50, 5), y_train=np.arange(50) % 3)
    data = load_dataset("npz", data_dir=str(tmp_path), file="toy.npz")
    assert data.input_shape == (5,) and data.num_classes == 3 and len(data.x_test) == 10
    with pytest.raises(DatasetError, match="inside the data directory"):
        load_dataset("npz", data_dir=str(tmp_path), file="../toy.npz")
    with pytest.raises(DatasetError, match="put missing.npz"):
        load_dataset("npz", data_dir=str(tmp_path), file="missing.npz")
