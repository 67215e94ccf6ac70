"""The data API under torch's path, so `from torch.utils.data import DataLoader` translates to
`from fusegrad.utils.data import DataLoader`."""
from ..data import (BatchSampler, ConcatDataset, DataLoader, Dataset, IterableDataset, RandomSampler, Sampler,
                    SequentialSampler, Subset, SubsetRandomSampler, TensorDataset, WeightedRandomSampler, WorkerInfo,
                    default_collate, default_convert, get_worker_info, random_split)

__all__ = ["BatchSampler", "ConcatDataset", "DataLoader", "Dataset", "IterableDataset", "RandomSampler", "Sampler",
           "SequentialSampler", "Subset", "SubsetRandomSampler", "TensorDataset", "WeightedRandomSampler",
           "WorkerInfo", "default_collate", "default_convert", "get_worker_info", "random_split"]
