"""Datasets and the DataLoader: batches of fusegrad tensors, each assembled with one upload per tensor."""
from . import datasets
from .dataset import Dataset, DatasetError, Subset, TensorDataset
from .download import DownloadError
from .idx import read_idx
from .loader import DataLoader, default_collate

__all__ = ["DataLoader", "Dataset", "DatasetError", "DownloadError", "Subset", "TensorDataset", "datasets",
           "default_collate", "read_idx"]
