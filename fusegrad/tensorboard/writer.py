"""`SummaryWriter`: PyTorch's TensorBoard logging API, writing event files with the `tensorboard`
package's own event writer and protobufs (install it with `pip install 'fusegrad[tensorboard]'`)."""
from __future__ import annotations

import os
import socket
import time
from datetime import datetime
from types import ModuleType
from typing import Any

from ..errors import Error


def _load() -> tuple[ModuleType, ModuleType, Any, Any, Any]:
    """The modules that need the `tensorboard` package, imported on first use with a clear error."""
    try:
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        from . import graph, summaries
    except ImportError as e:
        raise Error("fusegrad.tensorboard needs the `tensorboard` package: pip install 'fusegrad[tensorboard]' "
                    f"(or pip install tensorboard); importing it failed: {e}") from e
    return summaries, graph, Event, SessionLog, EventFileWriter


class SummaryWriter:
    """Writes scalars, histograms, images, text and the model graph for TensorBoard (`tensorboard --logdir`).

    Same API as `torch.utils.tensorboard.SummaryWriter`; values may be fusegrad tensors, numpy arrays
    or Python numbers. Use it as a context manager, or call `close()` at the end.
    """

    def __init__(self, log_dir: str | os.PathLike | None = None, comment: str = "", purge_step: int | None = None,
                 max_queue: int = 10, flush_secs: int = 120, filename_suffix: str = ""):
        self._summaries, self._graph, self._Event, self._SessionLog, self._EventFileWriter = _load()
        if log_dir is None:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")
        self.log_dir = os.fspath(log_dir)
        self.purge_step = purge_step
        self.max_queue, self.flush_secs, self.filename_suffix = max_queue, flush_secs, filename_suffix
        self._writer: Any = None
        self._sub_writers: dict[str, Any] = {}
        self._open_main()

    # ---- event files --------------------------------------------------------------------
    def _new_file_writer(self, folder: str) -> Any:
        return self._EventFileWriter(folder, self.max_queue, self.flush_secs, self.filename_suffix)

    def _open_main(self) -> Any:
        """The main event file, created again if the writer was closed (like torch)."""
        if self._writer is None:
            self._writer = self._new_file_writer(self.log_dir)
            if self.purge_step is not None:
                # TensorBoard drops events at or after this step left over from a crashed run
                self._writer.add_event(self._Event(step=self.purge_step, wall_time=time.time(),
                                                   session_log=self._SessionLog(status=self._SessionLog.START)))
                self.purge_step = None
        return self._writer

    def _write(self, value: Any, global_step: int | None, walltime: float | None, writer: Any = None) -> None:
        event = self._Event(summary=self._summaries.Summary(value=[value]),
                            wall_time=time.time() if walltime is None else walltime)
        if global_step is not None:
            event.step = int(global_step)
        (writer or self._open_main()).add_event(event)

    def get_logdir(self) -> str:
        return self.log_dir

    # ---- summaries ----------------------------------------------------------------------
    def add_scalar(self, tag: str, scalar_value: Any, global_step: int | None = None, walltime: float | None = None,
                   new_style: bool = False, double_precision: bool = False) -> None:
        """One number (a Python number, or a one-element tensor or array) at a step."""
        value = self._summaries.scalar_of(scalar_value, tag)
        self._write(self._summaries.scalar(tag, value, new_style, double_precision), global_step, walltime)

    def add_scalars(self, main_tag: str, tag_scalar_dict: dict[str, Any], global_step: int | None = None,
                    walltime: float | None = None) -> None:
        """Several numbers in one chart: each key is written to its own run `<log_dir>/<main_tag>_<key>`."""
        walltime = time.time() if walltime is None else walltime
        for tag, scalar_value in tag_scalar_dict.items():
            folder = os.path.join(self.log_dir, f"{main_tag.replace('/', '_')}_{tag}")
            if folder not in self._sub_writers:
                self._sub_writers[folder] = self._new_file_writer(folder)
            value = self._summaries.scalar_of(scalar_value, f"{main_tag}/{tag}")
            self._write(self._summaries.scalar(main_tag, value), global_step, walltime, self._sub_writers[folder])

    def add_histogram(self, tag: str, values: Any, global_step: int | None = None, bins: Any = "tensorflow",
                      walltime: float | None = None, max_bins: int | None = None) -> None:
        """The distribution of values (e.g. a layer's weights) at a step."""
        self._write(self._summaries.histogram(tag, values, bins, max_bins), global_step, walltime)

    def add_image(self, tag: str, img_tensor: Any, global_step: int | None = None, walltime: float | None = None,
                  dataformats: str = "CHW") -> None:
        """An image: shape per dataformats ("CHW", "HWC" or "HW"), floats in [0, 1] or uint8."""
        self._write(self._summaries.image(tag, img_tensor, dataformats), global_step, walltime)

    def add_text(self, tag: str, text_string: str, global_step: int | None = None,
                 walltime: float | None = None) -> None:
        """Text, rendered as Markdown by TensorBoard."""
        self._write(self._summaries.text(tag, text_string), global_step, walltime)

    def add_graph(self, model: Any, input_to_model: Any = None, verbose: bool = False,
                  use_strict_trace: bool = True) -> None:
        """The model's layer graph, traced on one call `model(input_to_model)` (the model is left as it was)."""
        from ..viz.trace import trace_module

        if input_to_model is None:
            raise Error("add_graph needs an example input: add_graph(model, input_to_model)")
        definition = self._graph.graph_def(trace_module(model, input_to_model))
        if verbose:
            print(definition)
        self._open_main().add_event(self._Event(graph_def=definition.SerializeToString(), wall_time=time.time()))

    # ---- lifetime -----------------------------------------------------------------------
    def flush(self) -> None:
        """Write everything pending to disk now."""
        for writer in [self._writer, *self._sub_writers.values()]:
            if writer is not None:
                writer.flush()

    def close(self) -> None:
        """Flush and close every event file (a later add_* opens a new one)."""
        for writer in [self._writer, *self._sub_writers.values()]:
            if writer is not None:
                writer.flush()
                writer.close()
        self._writer = None
        self._sub_writers = {}

    def __enter__(self) -> "SummaryWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
