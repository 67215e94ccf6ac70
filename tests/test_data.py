"""Dataset, TensorDataset, Subset, default_collate and DataLoader (batching, shuffling, one upload per batch)."""
import numpy as np
import pytest

import fusegrad as fg
import fusegrad.data
from fusegrad.data import DataLoader, Dataset, Subset, TensorDataset, default_collate


def make_dataset(n: int = 10) -> tuple[TensorDataset, np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((n, 3)).astype(np.float32)
    y = np.arange(n, dtype=np.int64)
    return TensorDataset(fg.tensor(x), fg.tensor(y)), x, y


class ListDataset(Dataset):
    """A generic dataset without a fast path: samples are (numpy row, Python int)."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y

    def __getitem__(self, index: int):
        return self.x[index], int(self.y[index])

    def __len__(self) -> int:
        return len(self.y)


def served_labels(loader: DataLoader) -> np.ndarray:
    """The label column of one epoch, batch after batch."""
    return np.concatenate([y.numpy() for _, y in loader])


@pytest.mark.parametrize("drop_last,sizes", [(False, [4, 4, 2]), (True, [4, 4])])
def test_batches_in_order(drop_last, sizes):
    ds, x, y = make_dataset()
    loader = DataLoader(ds, batch_size=4, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(batches) == len(sizes)
    assert [len(b[1]) for b in batches] == sizes
    for i, (xb, yb) in enumerate(batches):
        assert isinstance(xb, fg.Tensor) and xb.dtype == fg.float32 and yb.dtype == fg.int64
        np.testing.assert_array_equal(xb.numpy(), x[4 * i:4 * i + sizes[i]])
        np.testing.assert_array_equal(yb.numpy(), y[4 * i:4 * i + sizes[i]])


def test_len_for_exact_and_partial_batches():
    ds, _, _ = make_dataset(12)
    assert len(DataLoader(ds, batch_size=4)) == 3
    assert len(DataLoader(ds, batch_size=5)) == 3
    assert len(DataLoader(ds, batch_size=5, drop_last=True)) == 2
    assert len(DataLoader(ds, batch_size=20, drop_last=True)) == 0
    assert list(DataLoader(ds, batch_size=20, drop_last=True)) == []


def test_shuffle_is_reproducible_per_seed_and_covers_every_sample_once():
    ds, _, y = make_dataset(50)
    first = [served_labels(DataLoader(ds, batch_size=8, shuffle=True, seed=7)) for _ in range(2)]
    np.testing.assert_array_equal(first[0], first[1])
    assert not np.array_equal(first[0], y), "shuffle=True served the samples in order"
    np.testing.assert_array_equal(np.sort(first[0]), y)
    other_seed = served_labels(DataLoader(ds, batch_size=8, shuffle=True, seed=8))
    assert not np.array_equal(first[0], other_seed)


def test_each_epoch_reshuffles_and_set_epoch_replays():
    ds, _, y = make_dataset(50)
    loader = DataLoader(ds, batch_size=8, shuffle=True, seed=3)
    epochs = [served_labels(loader) for _ in range(3)]
    for e in epochs:
        np.testing.assert_array_equal(np.sort(e), y)
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    loader.set_epoch(1)
    np.testing.assert_array_equal(served_labels(loader), epochs[1])
    np.testing.assert_array_equal(loader.order(2), epochs[2])


def test_unseeded_shuffle_follows_manual_seed():
    ds, _, _ = make_dataset(50)
    runs = []
    for _ in range(2):
        fg.manual_seed(123)
        runs.append(served_labels(DataLoader(ds, batch_size=8, shuffle=True)))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_drop_last_with_shuffle_serves_full_batches_of_distinct_samples():
    ds, _, _ = make_dataset(50)
    labels = [yb.numpy() for _, yb in DataLoader(ds, batch_size=8, shuffle=True, drop_last=True, seed=1)]
    assert [len(b) for b in labels] == [8] * 6
    assert len(np.unique(np.concatenate(labels))) == 48


def test_one_upload_per_tensor_per_batch():
    ds, _, _ = make_dataset(64)
    it = iter(DataLoader(ds, batch_size=16, shuffle=True, seed=0))
    deltas = []
    for _ in range(4):
        before = fg.memory_stats()["allocations"]
        next(it)
        deltas.append(fg.memory_stats()["allocations"] - before)
    assert deltas == [2, 2, 2, 2], f"allocations per batch: {deltas} (expected one per tensor of the batch)"


@pytest.mark.parametrize("dtype", [fg.bfloat16, fg.bool, fg.int32, fg.float64])
def test_fast_path_keeps_dtypes(dtype):
    values = np.random.default_rng(1).integers(-5, 5, (6, 2))
    if dtype == fg.bool:
        values = values > 0
    t = fg.tensor(values, dtype=dtype)
    (batch,) = next(iter(DataLoader(TensorDataset(t), batch_size=4)))
    assert batch.dtype == dtype
    np.testing.assert_array_equal(batch.numpy(), t.numpy()[:4])


def test_tensor_dataset_of_a_non_contiguous_view():
    x = fg.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    ds = TensorDataset(x.T)
    (batch,) = next(iter(DataLoader(ds, batch_size=4)))
    np.testing.assert_array_equal(batch.numpy(), np.arange(12, dtype=np.float32).reshape(3, 4).T)
    np.testing.assert_array_equal(ds[2][0].numpy(), [2.0, 6.0, 10.0])


def test_tensor_dataset_indexing_and_numpy_inputs():
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    ds = TensorDataset(x, fg.tensor([0, 1, 0, 1]))
    assert len(ds) == 4
    row, label = ds[-1]
    np.testing.assert_array_equal(row.numpy(), [6.0, 7.0])
    assert label.item() == 1
    assert isinstance(ds.tensors[0], fg.Tensor)


def test_tensor_dataset_errors():
    with pytest.raises(fg.ShapeError, match=r"\[3, 4\]"):
        TensorDataset(fg.zeros(3, 2), fg.zeros(4))
    with pytest.raises(fg.ShapeError, match="0-d"):
        TensorDataset(fg.tensor(1.0))
    with pytest.raises(ValueError):
        TensorDataset()
    with pytest.raises(TypeError, match="list"):
        TensorDataset([1, 2, 3])


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_bad_batch_size(batch_size):
    ds, _, _ = make_dataset()
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(ds, batch_size=batch_size)


def test_generic_dataset_collates_like_the_fast_path():
    ds, x, y = make_dataset(10)
    generic = DataLoader(ListDataset(x, y), batch_size=4, shuffle=True, seed=5)
    fast = DataLoader(ds, batch_size=4, shuffle=True, seed=5)
    for (xg, yg), (xf, yf) in zip(generic, fast):
        assert xg.dtype == xf.dtype and yg.dtype == yf.dtype
        np.testing.assert_array_equal(xg.numpy(), xf.numpy())
        np.testing.assert_array_equal(yg.numpy(), yf.numpy())


def test_custom_collate_receives_the_samples():
    ds, x, y = make_dataset(6)
    seen = []
    loader = DataLoader(ListDataset(x, y), batch_size=4, collate=lambda samples: seen.append(samples) or len(samples))
    assert list(loader) == [4, 2]
    assert [label for _, label in seen[0]] == [0, 1, 2, 3]


def test_custom_collate_bypasses_the_fast_path():
    ds, _, _ = make_dataset(6)
    batches = list(DataLoader(ds, batch_size=4, collate=len))
    assert batches == [4, 2]


def test_default_collate_structures():
    samples = [{"a": fg.tensor([1.0, 2.0]), "b": (i, 0.5 * i, True), "name": f"s{i}"} for i in range(3)]
    out = default_collate(samples)
    assert out["a"].shape == (3, 2)
    np.testing.assert_array_equal(out["a"].numpy(), [[1, 2]] * 3)
    ints, floats, flags = out["b"]
    assert (ints.dtype, floats.dtype, flags.dtype) == (fg.int64, fg.float32, fg.bool)
    np.testing.assert_array_equal(floats.numpy(), [0.0, 0.5, 1.0])
    assert out["name"] == ["s0", "s1", "s2"]
    assert isinstance(default_collate([[1, 2], [3, 4]]), list)
    with pytest.raises(ValueError, match="lengths"):
        default_collate([(1, 2), (3,)])


def test_subset_keeps_the_fast_path_and_maps_indices():
    ds, x, _ = make_dataset(10)
    sub = Subset(ds, [9, 0, 5])
    assert len(sub) == 3
    np.testing.assert_array_equal(sub[0][0].numpy(), x[9])
    xb, yb = next(iter(DataLoader(sub, batch_size=3)))
    np.testing.assert_array_equal(yb.numpy(), [9, 0, 5])
    np.testing.assert_array_equal(xb.numpy(), x[[9, 0, 5]])
    assert Subset(ListDataset(x, x[:, 0]), [1]).get_batch is None
    with pytest.raises(IndexError):
        Subset(ds, [10])


def test_abstract_dataset_and_empty_dataset():
    with pytest.raises(NotImplementedError):
        len(Dataset())
    empty = TensorDataset(fg.zeros(0, 3))
    assert len(DataLoader(empty, batch_size=2)) == 0 and list(DataLoader(empty, batch_size=2)) == []


def test_package_exports():
    for name in ("Dataset", "TensorDataset", "DataLoader", "Subset", "DatasetError", "DownloadError", "datasets"):
        assert hasattr(fusegrad.data, name)
    assert issubclass(fusegrad.data.DatasetError, fg.Error)
