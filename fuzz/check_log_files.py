"""Reads what the log_writers fuzz target wrote for each input (LIGHTNING_FUZZ_EMIT) with
the readers Lightning users use, and checks that every name and string survived.

Usage: python fuzz/check_log_files.py <emit_dir>

For each <emit_dir>/<n>/ (the loggers' files under csv/ and tb/; input.txt: the metric name, hyperparameter name and text value
as hex), with each string decoded as Python decodes bytes (UTF-8, malformed sequences as
U+FFFD, what the C++ writers write):
  * csv/metrics.csv opens as UTF-8 and Python's csv module reads the name in its header
    and 1.5 in that column;
  * csv/hparams.yaml loads with yaml.safe_load as {name: value};
  * tb/ holds event files TensorBoard's reader takes whole (tests/python/read_tensorboard.py):
    the scalar 1.5 under the name, the hyperparameter, the metric in the experiment.
Exit status 0 when every input passes, 1 with one line per failure on stderr.
"""
import csv
import glob
import math
import os
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "python"))
import read_tensorboard  # noqa: E402


def decoded(hex_text: str) -> str:
    return bytes.fromhex(hex_text).decode("utf-8", "replace")


def only(pattern: str) -> str:
    found = glob.glob(pattern, recursive=True)
    if len(found) != 1:
        raise FileNotFoundError(f"{pattern}: {len(found)} matches")
    return found[0]


def check(case: str) -> list[str]:
    with open(os.path.join(case, "input.txt")) as f:
        metric, key, text = (decoded(line.strip()) for line in f.read().splitlines())
    problems = []
    with open(only(os.path.join(case, "csv", "**", "metrics.csv")), newline="",
              encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) != 2 or metric not in rows[0]:
        problems.append(f"metrics.csv: header {rows[:1]!r} lacks {metric!r}")
    elif metric != "step" and rows[1][rows[0].index(metric)] != "1.5":
        problems.append(f"metrics.csv: {rows!r}: {metric!r} is not 1.5")
    with open(only(os.path.join(case, "csv", "**", "hparams.yaml")), encoding="utf-8") as f:
        loaded = yaml.safe_load(f)
    if loaded != {key: text}:
        problems.append(f"hparams.yaml loads as {loaded!r}, not {{{key!r}: {text!r}}}")
    board = read_tensorboard.read(os.path.dirname(only(os.path.join(case, "tb", "**",
                                                                    "events.out.tfevents.*"))))
    scalars = [s for s in board["scalars"] if s["tag"] == metric]
    # log_hyperparams with metrics logs them too (as Lightning does): 1.5 each time.
    if not scalars or any(not math.isclose(s["value"], 1.5) for s in scalars):
        problems.append(f"events: scalars {board['scalars']!r} lack {metric!r} = 1.5")
    if board["hparams"] != {key: text}:
        problems.append(f"events: hparams {board['hparams']!r}, not {{{key!r}: {text!r}}}")
    if board["hparam_metrics"] != [metric]:
        problems.append(f"events: hparam metrics {board['hparam_metrics']!r}, not [{metric!r}]")
    return [f"{case}: {p}" for p in problems]


def main() -> int:
    root = sys.argv[1]
    cases = sorted(os.path.join(root, d) for d in os.listdir(root))
    failures = []
    for case in cases:
        try:
            failures += check(case)
        except Exception as error:  # a file a reader cannot take is a failure, not a crash
            failures.append(f"{case}: {type(error).__name__}: {error}")
    for line in failures:
        print(line, file=sys.stderr)
    failed = len({line.split(": ")[0] for line in failures})
    print(f"log files of {len(cases)} inputs read back: {len(cases) - failed} passed, "
          f"{failed} failed", file=sys.stderr)
    return 1 if failures or not cases else 0


if __name__ == "__main__":
    sys.exit(main())
