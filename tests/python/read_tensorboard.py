"""Read TensorBoard event files with TensorBoard's own reader and print them as JSON.

The C++ TensorBoardLogger tests write a log directory with lightning-cpp, run this
script on it and parse its stdout: that checks the files against the reader
TensorBoard itself uses (tensorboard.backend.event_processing.event_accumulator),
not against our own parser.

Usage:
    python tests/python/read_tensorboard.py <log_dir>

<log_dir> is the directory holding the events.out.tfevents.* files (a logger's
version directory, e.g. lightning_logs/version_0); subdirectories are not read. All
its event files are read, in name order, by one EventAccumulator that keeps every
event (size_guidance 0) and never drops any (purge_orphaned_data=False).

stdout contract: one JSON object on one line (json.dumps with sort_keys=True):
    {"files": <number of event files read>,
     "hparam_metrics": [<metric tag>, ...],
     "hparams": {<name>: <value>, ...},
     "scalars": [{"step": <int>, "tag": <str>, "value": <float>}, ...]}
  * "scalars": every scalar event of every tag, sorted by tag, then step, then wall
    time. Both encodings are read: classic simple_value summaries (what lightning-cpp
    and torch's SummaryWriter write) and rank-0 tensors of the "scalars" plugin.
    Non-finite values are printed as NaN, Infinity, -Infinity (Python's json).
  * "hparams": the hparams plugin's session_start_info hyperparameters (the last one
    written), name -> value: numbers as float, strings as str, bools as bool (null,
    lists and structs as their JSON form). Empty when no hparams were written.
    Values are decoded as the file stores them: real Lightning's TensorBoardLogger
    (through torch.utils.tensorboard's hparams()) stores a Python bool as the number
    1.0/0.0, so such an hparam reads back as a float, not a bool.
  * "hparam_metrics": the sorted metric tags of the hparams plugin's experiment
    (metric_infos[].name.tag); empty when there is none.
  * "files": how many event files the directory holds (all of them are read).

Exit status: 0 on success; 2 when <log_dir> is not a directory or holds no event file;
1 on any other failure: a truncated record or one failing its CRC32C check (every file
is first read end to end with TensorBoard's record reader, since the accumulator
silently stops at such a record), an Event TensorBoard cannot parse. Messages go to
stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
import warnings
from typing import Any

from tensorboard.backend.event_processing import event_accumulator, io_wrapper
from tensorboard.compat.tensorflow_stub import errors as record_errors
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as record_io
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.util import tensor_util

SCRIPT = "read_tensorboard.py"
KEEP_EVERYTHING = {
    event_accumulator.COMPRESSED_HISTOGRAMS: 0,
    event_accumulator.IMAGES: 0,
    event_accumulator.AUDIO: 0,
    event_accumulator.SCALARS: 0,
    event_accumulator.HISTOGRAMS: 0,
    event_accumulator.TENSORS: 0,
}


class NoEventFiles(Exception):
    pass


def event_files(log_dir: str) -> list[str]:
    """The event files EventAccumulator reads from `log_dir` (same filter as it uses)."""
    if not os.path.isdir(log_dir):
        raise NoEventFiles(f"{log_dir} is not a directory")
    files = sorted(
        path
        for path in io_wrapper.ListDirectoryAbsolute(log_dir)
        if os.path.isfile(path) and io_wrapper.IsSummaryEventsFile(path)
    )
    if not files:
        raise NoEventFiles(f"{log_dir} holds no events.out.tfevents.* file")
    return files


def check_records(path: str) -> None:
    """Fails unless every record of `path` is whole and passes its CRC32C checks.

    The accumulator stops reading a file silently at its first truncated or corrupt
    record, so the files are first read end to end with TensorBoard's record reader
    (the one the accumulator uses when TensorFlow is not installed), which raises.
    """
    reader = record_io.PyRecordReader_New(path)
    while True:
        try:
            reader.GetNext()
        except record_errors.OutOfRangeError:  # the clean end of the file
            return


def scalar_events(accumulator: event_accumulator.EventAccumulator) -> list[dict[str, Any]]:
    rows = []
    tags = accumulator.Tags()
    for tag in tags[event_accumulator.SCALARS]:  # simple_value summaries
        for event in accumulator.Scalars(tag):
            rows.append((tag, event.step, event.wall_time, float(event.value)))
    for tag in tags[event_accumulator.TENSORS]:  # scalars written as tensors
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue
        for event in accumulator.Tensors(tag):
            value = tensor_util.make_ndarray(event.tensor_proto).item()
            rows.append((tag, event.step, event.wall_time, float(value)))
    rows.sort(key=lambda row: row[:3])
    return [{"tag": tag, "step": step, "value": value} for tag, step, _, value in rows]


def protobuf_value(value) -> Any:
    """A google.protobuf.Value as the Python value it holds."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return float(value.number_value)
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return bool(value.bool_value)
    if kind == "list_value":
        return [protobuf_value(item) for item in value.list_value.values]
    if kind == "struct_value":
        return {key: protobuf_value(item) for key, item in value.struct_value.fields.items()}
    return None  # null_value, or no value set


def hparams_content(accumulator: event_accumulator.EventAccumulator) -> tuple[dict, list]:
    hparams: dict[str, Any] = {}
    metrics: list[str] = []
    try:
        contents = accumulator.PluginTagToContent("hparams")
    except KeyError:  # no hparams summary in the files
        return hparams, metrics
    for content in contents.values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            hparams = {
                name: protobuf_value(value)
                for name, value in data.session_start_info.hparams.items()
            }
        if data.HasField("experiment"):
            metrics = sorted(info.name.tag for info in data.experiment.metric_infos)
    return hparams, metrics


def read(log_dir: str) -> dict[str, Any]:
    files = event_files(log_dir)
    for path in files:
        check_records(path)
    accumulator = event_accumulator.EventAccumulator(
        log_dir, size_guidance=KEEP_EVERYTHING, purge_orphaned_data=False
    )
    accumulator.Reload()
    hparams, metrics = hparams_content(accumulator)
    return {
        "files": len(files),
        "hparam_metrics": metrics,
        "hparams": hparams,
        "scalars": scalar_events(accumulator),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log_dir", help="directory holding the events.out.tfevents.* files")
    options = parser.parse_args()
    warnings.simplefilter("once")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout holds only the JSON
            result = read(options.log_dir)
    except NoEventFiles as error:
        print(f"{SCRIPT}: error: {error}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print(f"{SCRIPT}: error: cannot read {options.log_dir} (traceback above)", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
