"""fusegrad.utils.data against torch.utils.data: samplers, splits, loaders, argument errors, workers, transforms."""
from __future__ import annotations

import gc
import time
from typing import Any, Iterator

import numpy as np
import pytest
import torch
import torch.utils.data as tdata

import fusegrad as fg
from fusegrad.data import transforms as T
from fusegrad.utils import data as fdata

RNG = np.random.default_rng(2024)
X = RNG.standard_normal((23, 3)).astype(np.float32)
Y = np.arange(23, dtype=np.int64)


def fg_dataset() -> fdata.TensorDataset:
    return fdata.TensorDataset(fg.tensor(X), fg.tensor(Y))


def torch_dataset() -> tdata.TensorDataset:
    return tdata.TensorDataset(torch.tensor(X), torch.tensor(Y))


class Pairs(fdata.Dataset):
    """A map-style dataset without a fast path: (numpy row, int, dict)."""

    def __getitem__(self, index: int) -> Any:
        if index == 13:
            raise KeyError("sample 13 is broken on purpose")
        return X[index], int(Y[index]), {"twice": float(2 * Y[index])}

    def __len__(self) -> int:
        return len(Y)


class TorchPairs(tdata.Dataset):
    def __getitem__(self, index: int) -> Any:
        return X[index], int(Y[index]), {"twice": float(2 * Y[index])}

    def __len__(self) -> int:
        return len(Y)


def as_numpy(batch: Any) -> Any:
    """A batch of either library as nested numpy arrays."""
    if isinstance(batch, (fg.Tensor, torch.Tensor)):
        return batch.numpy()
    if isinstance(batch, dict):
        return {k: as_numpy(v) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return [as_numpy(v) for v in batch]
    return batch


def assert_batches_equal(ours: list[Any], theirs: list[Any]) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        a, b = as_numpy(a), as_numpy(b)
        if isinstance(a, list):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                if isinstance(x, dict):
                    np.testing.assert_allclose(x["twice"], y["twice"])
                else:
                    np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_array_equal(a, b)


# ---- sequential loading: the same batches as torch ------------------------------------------------------------
@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (5, False), (5, True), (23, False), (30, True)],
                         ids=["b1", "b5", "b5-drop", "b23", "b30-drop"])
def test_sequential_batches_match_torch(batch_size: int, drop_last: bool) -> None:
    ours = fdata.DataLoader(fg_dataset(), batch_size=batch_size, drop_last=drop_last)
    theirs = tdata.DataLoader(torch_dataset(), batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    assert_batches_equal(list(ours), list(theirs))


def test_generic_dataset_collates_like_torch() -> None:
    ours = list(fdata.DataLoader(Subset_without_13(), batch_size=4))
    theirs = list(tdata.DataLoader(tdata.Subset(TorchPairs(), [i for i in range(23) if i != 13]), batch_size=4))
    assert_batches_equal(ours, theirs)
    assert ours[0][1].dtype == fg.int64 and ours[0][0].dtype == fg.float32


def Subset_without_13() -> fdata.Subset:  # noqa: N802  (reads as a dataset)
    return fdata.Subset(Pairs(), [i for i in range(23) if i != 13])


def test_batch_size_none_serves_single_samples() -> None:
    ours = list(fdata.DataLoader(fg_dataset(), batch_size=None))
    theirs = list(tdata.DataLoader(torch_dataset(), batch_size=None))
    assert_batches_equal(ours, theirs)


def test_custom_batch_sampler_and_sampler() -> None:
    batches = [[3, 1], [22, 0, 5], [7]]
    ours = list(fdata.DataLoader(fg_dataset(), batch_sampler=batches))
    theirs = list(tdata.DataLoader(torch_dataset(), batch_sampler=batches))
    assert_batches_equal(ours, theirs)
    order = [5, 4, 3, 2, 1]
    assert_batches_equal(list(fdata.DataLoader(fg_dataset(), sampler=order, batch_size=2)),
                         list(tdata.DataLoader(torch_dataset(), sampler=order, batch_size=2)))


# ---- argument checks: the same exception types as torch -------------------------------------------------------
BAD_LOADERS = [
    dict(batch_sampler=[[0, 1]], batch_size=2),
    dict(batch_sampler=[[0, 1]], shuffle=True),
    dict(batch_sampler=[[0, 1]], drop_last=True),
    dict(sampler=[0, 1], shuffle=True),
    dict(batch_size=None, drop_last=True),
    dict(num_workers=-1),
    dict(timeout=-1),
    dict(prefetch_factor=2),
    dict(persistent_workers=True),
    dict(num_workers=1, prefetch_factor=-1),
    dict(batch_size=0),
]


@pytest.mark.parametrize("options", BAD_LOADERS, ids=["-".join(o) for o in BAD_LOADERS])
def test_loader_argument_errors_match_torch(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        tdata.DataLoader(torch_dataset(), **options)
    with pytest.raises(ValueError):
        fdata.DataLoader(fg_dataset(), **options)


class Stream(fdata.IterableDataset):
    """0..n-1, split between workers by the worker_init_fn below (torch's documented pattern)."""

    def __init__(self, n: int):
        self.start, self.end = 0, n

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.end))

    def __len__(self) -> int:
        return self.end - self.start


class TorchStream(tdata.IterableDataset):
    def __init__(self, n: int):
        self.n = n

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))


@pytest.mark.parametrize("options", [dict(shuffle=True), dict(sampler=[0]), dict(batch_sampler=[[0]])],
                         ids=["shuffle", "sampler", "batch_sampler"])
def test_iterable_dataset_rejects_samplers_like_torch(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        tdata.DataLoader(TorchStream(5), **options)
    with pytest.raises(ValueError):
        fdata.DataLoader(Stream(5), **options)


def test_iterable_dataset_single_process_matches_torch() -> None:
    for options in (dict(batch_size=4), dict(batch_size=4, drop_last=True), dict(batch_size=None)):
        assert_batches_equal(list(fdata.DataLoader(Stream(10), **options)),
                             list(tdata.DataLoader(TorchStream(10), **options)))
    assert len(fdata.DataLoader(Stream(10), batch_size=4)) == 3
    with pytest.raises(TypeError):
        Stream(3)[0]


# ---- samplers -----------------------------------------------------------------------------------------------
def test_sequential_and_batch_sampler_match_torch() -> None:
    assert list(fdata.SequentialSampler(range(7))) == list(tdata.SequentialSampler(range(7)))
    for size, drop in [(3, False), (3, True), (7, True), (10, False)]:
        ours = fdata.BatchSampler(fdata.SequentialSampler(range(7)), size, drop)
        theirs = tdata.BatchSampler(tdata.SequentialSampler(range(7)), size, drop)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


@pytest.mark.parametrize("make", [
    lambda m: m.BatchSampler(range(3), 0, False), lambda m: m.BatchSampler(range(3), 2, "no"),
    lambda m: m.RandomSampler(range(3), num_samples=0), lambda m: m.WeightedRandomSampler([1.0, 2.0], 0),
    lambda m: m.WeightedRandomSampler([[1.0, 2.0]], 2), lambda m: m.RandomSampler(range(3), replacement=1)],
    ids=["batch0", "drop-last-str", "num-samples0", "weighted-n0", "weighted-2d", "replacement-int"])
def test_sampler_errors_match_torch(make: Any) -> None:
    with pytest.raises(Exception) as theirs:
        make(tdata)
    with pytest.raises(theirs.type):
        make(fdata)


def test_random_sampler_permutes_and_follows_seeds() -> None:
    sampler = fdata.RandomSampler(range(50), generator=torch.Generator().manual_seed(3))
    first, second = list(sampler), list(sampler)
    assert sorted(first) == list(range(50)) and first != list(range(50)) and first != second
    again = fdata.RandomSampler(range(50), generator=torch.Generator().manual_seed(3))
    assert list(again) == first
    sampler.set_epoch(1)
    assert list(sampler) == second
    fg.manual_seed(11)
    unseeded = list(fdata.RandomSampler(range(50)))
    fg.manual_seed(11)
    assert list(fdata.RandomSampler(range(50))) == unseeded


def test_random_sampler_replacement_and_num_samples() -> None:
    more = list(fdata.RandomSampler(range(5), num_samples=12))
    assert len(more) == 12 == len(fdata.RandomSampler(range(5), num_samples=12))
    assert sorted(more[:10]) == sorted(list(range(5)) * 2)  # whole permutations first, like torch
    drawn = list(fdata.RandomSampler(range(5), replacement=True, num_samples=200))
    assert len(drawn) == 200 and set(drawn) == set(range(5))


def test_subset_random_and_weighted_samplers() -> None:
    subset = list(fdata.SubsetRandomSampler([10, 20, 30, 40]))
    assert sorted(subset) == [10, 20, 30, 40] and len(fdata.SubsetRandomSampler([1, 2])) == 2
    weighted = list(fdata.WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], 400))
    counts = np.bincount(weighted, minlength=4)
    assert counts[0] == counts[2] == 0 and 60 < counts[1] < 140
    unique = list(fdata.WeightedRandomSampler([1.0, 1.0, 5.0], 3, replacement=False))
    assert sorted(unique) == [0, 1, 2]
    with pytest.raises(RuntimeError):
        list(fdata.WeightedRandomSampler([1.0, 0.0], 2, replacement=False))


def test_shuffled_loader_is_reproducible() -> None:
    def labels(loader: fdata.DataLoader) -> list[int]:
        return [int(v) for _, y in loader for v in y.numpy()]

    gen = torch.Generator().manual_seed(5)
    a = labels(fdata.DataLoader(fg_dataset(), batch_size=4, shuffle=True, generator=gen))
    b = labels(fdata.DataLoader(fg_dataset(), batch_size=4, shuffle=True, generator=gen))
    assert a == b and sorted(a) == list(range(23)) and a != list(range(23))
    fg.manual_seed(1)
    c = labels(fdata.DataLoader(fg_dataset(), batch_size=4, shuffle=True))
    fg.manual_seed(1)
    assert labels(fdata.DataLoader(fg_dataset(), batch_size=4, shuffle=True)) == c
    with pytest.raises(TypeError):
        list(fdata.DataLoader(fg_dataset(), shuffle=True, generator=object()))


# ---- datasets -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lengths", [[10, 13], [0.3, 0.7], [0.25, 0.25, 0.5], [0.1, 0.1, 0.1, 0.7], [23]],
                         ids=["ints", "fractions", "three", "remainder", "whole"])
def test_random_split_sizes_and_disjointness_match_torch(lengths: list[Any]) -> None:
    ours = fdata.random_split(fg_dataset(), lengths, generator=torch.Generator().manual_seed(0))
    theirs = tdata.random_split(torch_dataset(), lengths, generator=torch.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    seen = np.concatenate([s.indices for s in ours])
    assert sorted(seen.tolist()) == list(range(23))
    again = fdata.random_split(fg_dataset(), lengths, generator=torch.Generator().manual_seed(0))
    assert all(np.array_equal(a.indices, b.indices) for a, b in zip(ours, again))
    np.testing.assert_array_equal(ours[0].get_batch(np.arange(len(ours[0])))[1].numpy(), ours[0].indices)
    fg.manual_seed(9)
    unseeded = fdata.random_split(fg_dataset(), lengths)
    fg.manual_seed(9)
    replayed = fdata.random_split(fg_dataset(), lengths)
    assert all(np.array_equal(a.indices, b.indices) for a, b in zip(unseeded, replayed))


@pytest.mark.parametrize("lengths", [[10, 10], [0.5, 0.6], [-0.1, 1.1]], ids=["short", "over-one", "negative"])
def test_random_split_errors_match_torch(lengths: list[Any]) -> None:
    with pytest.raises(ValueError):
        tdata.random_split(torch_dataset(), lengths)
    with pytest.raises(ValueError):
        fdata.random_split(fg_dataset(), lengths)


def test_concat_dataset_matches_torch_and_keeps_the_fast_path() -> None:
    halves = [fdata.TensorDataset(X[:9], Y[:9]), fdata.Subset(fg_dataset(), np.arange(9, 23))]
    ours = fdata.ConcatDataset(halves)
    theirs = tdata.ConcatDataset([tdata.TensorDataset(torch.tensor(X[:9]), torch.tensor(Y[:9])),
                                  tdata.Subset(torch_dataset(), range(9, 23))])
    assert len(ours) == len(theirs) and ours.cumulative_sizes == theirs.cumulative_sizes
    for i in (0, 8, 9, 22, -1, -23):
        np.testing.assert_array_equal(ours[i][0].numpy(), theirs[i][0].numpy())
    batch = ours.get_batch(np.array([20, 2, 9, 8, -1]))
    np.testing.assert_array_equal(batch[1].numpy(), [20, 2, 9, 8, 22])
    np.testing.assert_array_equal(batch[0].numpy(), X[[20, 2, 9, 8, 22]])
    with pytest.raises(ValueError):
        ours[-24]
    generic = fdata.ConcatDataset([Pairs(), fg_dataset()])
    assert generic.get_batch is None and len(generic) == 46


@pytest.mark.parametrize("make", [lambda m: m.ConcatDataset([]),
                                  lambda m: m.ConcatDataset([(TorchStream if m is tdata else Stream)(3)])],
                         ids=["empty", "iterable"])
def test_concat_dataset_errors_match_torch(make: Any) -> None:
    with pytest.raises(Exception) as theirs:
        make(tdata)
    with pytest.raises(theirs.type):
        make(fdata)


# ---- worker processes ---------------------------------------------------------------------------------------
def test_workers_preserve_order_and_match_single_process() -> None:
    single = list(fdata.DataLoader(fg_dataset(), batch_size=4))
    multi = fdata.DataLoader(fg_dataset(), batch_size=4, num_workers=2)
    assert_batches_equal(list(multi), single)
    generic = list(fdata.DataLoader(Subset_without_13(), batch_size=3, num_workers=2, prefetch_factor=1))
    assert_batches_equal(generic, list(fdata.DataLoader(Subset_without_13(), batch_size=3)))
    assert isinstance(generic[0][0], fg.Tensor) and isinstance(generic[0][2]["twice"], fg.Tensor)


def test_worker_exception_is_reraised_with_the_workers_traceback() -> None:
    loader = fdata.DataLoader(Pairs(), batch_size=2, num_workers=2)
    with pytest.raises(KeyError) as info:
        list(loader)
    text = str(info.value)
    assert "DataLoader worker process" in text and "sample 13 is broken on purpose" in text
    assert "Traceback" in text and "__getitem__" in text


def _collate_in_worker(samples: list[Any]) -> Any:
    info = fdata.get_worker_info()
    return np.array([s[1] for s in samples]), info.id, info.num_workers


def test_get_worker_info_and_custom_collate_in_workers() -> None:
    assert fdata.get_worker_info() is None
    loader = fdata.DataLoader(Subset_without_13(), batch_size=5, num_workers=2, collate_fn=_collate_in_worker)
    batches = list(loader)
    assert [b[1] for b in batches] == [0, 1, 0, 1, 0] and all(b[2] == 2 for b in batches)
    assert isinstance(batches[0][0], np.ndarray)  # a custom collate's numpy output stays numpy


def _shard(worker_id: int) -> None:
    """torch's documented IterableDataset sharding: each worker keeps its own slice of the range."""
    info = fdata.get_worker_info()
    dataset, total = info.dataset, info.dataset.end
    per_worker = -(-total // info.num_workers)
    dataset.start = worker_id * per_worker
    dataset.end = min(dataset.start + per_worker, total)


def test_iterable_dataset_sharded_by_worker_init_fn() -> None:
    loader = fdata.DataLoader(Stream(10), batch_size=2, num_workers=2, worker_init_fn=_shard)
    values = [v.numpy().tolist() for v in loader]
    # round-robin between the workers (0-4 and 5-9), each batch from one worker, like torch
    assert values == [[0, 1], [5, 6], [2, 3], [7, 8], [4], [9]]
    dropped = fdata.DataLoader(Stream(7), batch_size=2, num_workers=2, worker_init_fn=_shard, drop_last=True)
    assert [v.numpy().tolist() for v in dropped] == [[0, 1], [4, 5], [2, 3]]  # torch's output


def _slow_init(worker_id: int) -> None:
    time.sleep(0.0)


def test_persistent_workers_survive_epochs_and_shut_down_with_the_loader() -> None:
    loader = fdata.DataLoader(fg_dataset(), batch_size=5, shuffle=True, num_workers=2, persistent_workers=True,
                              generator=torch.Generator().manual_seed(1), worker_init_fn=_slow_init)
    epochs = [[int(v) for _, y in loader for v in y.numpy()] for _ in range(3)]
    pids = [w.pid for w in loader._workers._workers]
    assert all(sorted(e) == list(range(23)) for e in epochs) and epochs[0] != epochs[1]
    partial = iter(loader)
    next(partial)  # an epoch abandoned half-way: the next one starts cleanly
    assert sorted(int(v) for _, y in loader for v in y.numpy()) == list(range(23))
    assert [w.pid for w in loader._workers._workers] == pids
    processes = loader._workers._workers
    del loader, partial
    gc.collect()
    assert not any(p.is_alive() for p in processes)


def test_workers_stop_when_the_iterator_is_collected() -> None:
    iterator = iter(fdata.DataLoader(fg_dataset(), batch_size=2, num_workers=2))
    next(iterator)
    processes = list(iterator._workers)
    del iterator
    gc.collect()
    assert not any(p.is_alive() for p in processes)


def _failing_init(worker_id: int) -> None:
    raise ValueError(f"init of worker {worker_id} failed")


def test_worker_init_fn_failure_is_reraised() -> None:
    with pytest.raises(ValueError, match="init of worker 0 failed"):
        list(fdata.DataLoader(fg_dataset(), batch_size=4, num_workers=1, worker_init_fn=_failing_init))


# ---- transforms ---------------------------------------------------------------------------------------------
def test_to_tensor_and_normalize() -> None:
    image = RNG.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    chw = T.ToTensor()(image)
    assert chw.shape == (3, 5, 4) and chw.dtype == np.float32
    np.testing.assert_allclose(chw, image.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    assert T.ToTensor()(image[:, :, 0]).shape == (1, 5, 4)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]
    normalized = T.Normalize(mean, std)(chw)
    expected = (chw - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    np.testing.assert_allclose(normalized, expected, rtol=1e-6)
    on_device = T.Normalize(mean, std)(fg.tensor(chw))
    assert isinstance(on_device, fg.Tensor)
    np.testing.assert_allclose(on_device.numpy(), expected, rtol=1e-6)
    with pytest.raises(TypeError):
        T.ToTensor()(fg.tensor(chw))
    with pytest.raises(ValueError):
        T.Normalize([0.0], [0.0])
    with pytest.raises(TypeError):
        T.Normalize([0.0], [1.0])(fg.tensor(np.zeros((1, 2, 2), np.int64)))


def test_random_crop_flip_compose_and_lambda() -> None:
    image = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    np.random.seed(0)
    crop = T.RandomCrop(4, padding=2)(image)
    assert crop.shape == (2, 4, 4)
    padded = np.pad(image, [(0, 0), (2, 2), (2, 2)])
    assert any(np.array_equal(crop, padded[:, i:i + 4, j:j + 4]) for i in range(5) for j in range(6))
    np.random.seed(0)
    same = T.RandomCrop(4, padding=2)(fg.tensor(image)).numpy()
    np.testing.assert_array_equal(same, crop)  # the tensor path draws the same window
    np.random.seed(4)
    lopsided = T.RandomCrop((6, 7), padding=(1, 2, 3, 0))(image)  # left, top, right, bottom
    assert any(np.array_equal(lopsided, np.pad(image, [(0, 0), (2, 0), (1, 3)])[:, 0:6, j:j + 7]) for j in range(3))
    np.random.seed(4)
    np.testing.assert_array_equal(T.RandomCrop((6, 7), padding=(1, 2, 3, 0))(fg.tensor(image)).numpy(), lopsided)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(image), image[..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(fg.tensor(image)).numpy(), image[..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(image), image)
    pipeline = T.Compose([T.Lambda(lambda a: a * 2), T.RandomCrop((4, 5))])
    np.testing.assert_array_equal(pipeline(image), image * 2)
    with pytest.raises(ValueError):
        T.RandomCrop(6)(image)
    with pytest.raises(TypeError):
        T.Lambda(3)


def test_mnist_style_dataset_with_transforms_through_workers(tmp_path: Any) -> None:
    from tests.test_datasets import write_dataset
    write_dataset(tmp_path, train=12)
    plain = fg.data.datasets.MNIST(tmp_path)
    pipeline = T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.25,))])
    ds = fg.data.datasets.MNIST(tmp_path, train=True, transform=pipeline, target_transform=lambda y: y + 100)
    image, label = ds[3]
    assert image.shape == (1, 28, 28) and label == int(plain.targets[3]) + 100
    np.testing.assert_allclose(image, (plain[3][0].numpy() - 0.5) / 0.25, rtol=1e-5, atol=1e-6)
    images, labels = next(iter(fdata.DataLoader(ds, batch_size=12)))
    assert images.shape == (12, 1, 28, 28) and labels.dtype == fg.int64
    multi = list(fdata.DataLoader(plain, batch_size=5, num_workers=2))
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in multi]), plain.targets)
