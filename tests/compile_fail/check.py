"""Checks one compile-fail case against the log of the one compiler run of all cases.

    check.py LOG CASE REGEX

Each error GCC reports is attributed to the case whose file it names last: the error's
own location, the `required from here` line of the instantiation that led to it, or
the namespace (compile_fail_<case>) of a type it names.
The case passes when one of its errors matches REGEX; otherwise this prints the case's
errors (or says that it had none) and exits 1.
"""
import re
import sys

log_path, case, pattern = sys.argv[1], sys.argv[2], sys.argv[3]
case_file = re.compile(r"compile_fail/(\w+)\.cpp:\d+|compile_fail_(\w+)::")
with open(log_path, encoding="utf-8", errors="replace") as log:
    lines = log.read().splitlines()

errors = {}  # case -> its error lines
current = None
for line in lines:
    for match in case_file.finditer(line):
        current = match.group(1) or match.group(2)
    if "error: " in line and current is not None:
        errors.setdefault(current, []).append(line)
    if "error: " in line:
        current = None  # the next diagnostic names its own case

found = errors.get(case, [])
if any(re.search(pattern, line) for line in found):
    print(f"{case}: fails to compile, as it must: {pattern}")
    sys.exit(0)
if not found:
    print(f"{case}: no compile error was attributed to compile_fail/{case}.cpp; it compiles "
          f"(or its errors name another file). Full log: {log_path}")
else:
    print(f"{case}: fails to compile, but no error says /{pattern}/; its errors:")
    print("\n".join(found[:20]))
sys.exit(1)
