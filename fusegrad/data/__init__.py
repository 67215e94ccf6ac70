"""Datasets, samplers and the DataLoader: batches of fusegrad tensors, each assembled with one upload per tensor."""
from . import datasets, transforms
from .collate import default_collate, default_convert
from .dataset import (ConcatDataset, Dataset, DatasetError, IterableDataset, Subset, TensorDataset, random_split)
from .download import DownloadError
from .idx import read_idx
from .loader import DataLoader
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                      WeightedRandomSampler)
from .text import CharCorpus, Shakespeare, TextWindows
from .worker import WorkerInfo, get_worker_info

__all__ = ["BatchSampler", "CharCorpus", "ConcatDataset", "DataLoader", "Dataset", "DatasetError", "DownloadError",
           "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "Shakespeare", "Subset",
           "SubsetRandomSampler", "TensorDataset", "TextWindows", "WeightedRandomSampler", "WorkerInfo", "datasets",
           "default_collate", "default_convert", "get_worker_info", "random_split", "read_idx", "transforms"]
