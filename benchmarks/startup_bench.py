"""Time CLI start-up: `eksnet --help` and `eksnet exec … ip rule show` against a bare interpreter.

Prints figures, never fails: budgets are read by people, not asserted (these machines are noisy).
The three commands run interleaved (one of each per round), so a burst of load on the machine
hits all of them alike; each figure is the median of the rounds. The goal is both commands
within 12x of `python -c pass`.

Run: .venv/bin/python benchmarks/startup_bench.py [--runs N] [--src DIR] [--phases]

`--src DIR` times the `eksnet` whose sources are in DIR (e.g. an unpacked older commit:
`git archive HEAD | tar -x -C /tmp/old`, then `--src /tmp/old/src`) with this interpreter, for
before/after figures. `--phases` also prints where one `exec` spends its time in process
(imports by package, loading the cluster, building the state, the command itself).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

NODE = "node/ip-192-168-1-50.eu-west-2.compute.internal"
GOAL = 12.0

PHASES = """\
import sys, time
start = time.perf_counter()
marks = []
def mark(name):
    marks.append((name, time.perf_counter()))
import pydantic.main
mark("import pydantic")
import eksnet.model
mark("import eksnet.model (its pydantic classes)")
import eksnet.controllers
mark("import eksnet.controllers")
import eksnet.render.exec, eksnet.render.linux
mark("import eksnet.render.exec and the views")
from eksnet.model import load_cluster
cluster = load_cluster()
mark("load the demo cluster (YAML, validation)")
from eksnet.controllers import build_state
state = build_state(cluster)
mark("build the state (controllers)")
from eksnet.dataplane.targets import parse_target, resolve_namespace
from eksnet.render.exec import run_command
run_command(state, resolve_namespace(state, parse_target(sys.argv[1])), ["ip", "rule", "show"])
mark("ip rule show")
last = start
for name, at in marks:
    print(f"  {name:<44} {(at - last) * 1000:8.1f} ms")
    last = at
print(f"  {'total in process':<44} {(last - start) * 1000:8.1f} ms")
"""


def commands(src: str | None) -> dict[str, list[str]]:
    python = sys.executable
    beside = str(Path(python).with_name("eksnet"))
    if src is None:
        eksnet = [beside]
    else:
        entry = (
            f"import sys; sys.path.insert(0, {src!r}); sys.argv[0] = 'eksnet'; "
            "from eksnet.cli import main; sys.exit(main())"
        )
        eksnet = [python, "-c", entry]
    return {
        "python -c pass": [python, "-c", "pass"],
        "eksnet --help": [*eksnet, "--help"],
        "eksnet exec NODE -- ip rule show": [*eksnet, "exec", NODE, "--", "ip", "rule", "show"],
    }


def interleaved(runs: dict[str, list[str]], rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for argv in runs.values():  # warm the page cache and the .pyc files once
        subprocess.run(argv, capture_output=True, check=True)
    for _ in range(rounds):
        for name, argv in runs.items():
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            samples[name].append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="rounds (default 21)")
    parser.add_argument("--src", help="the eksnet sources to time (default: the installed one)")
    parser.add_argument("--phases", action="store_true", help="where one exec spends its time")
    options = parser.parse_args()

    runs = commands(options.src)
    samples = interleaved(runs, options.runs)
    base = statistics.median(samples["python -c pass"])
    print(f"start-up, {options.runs} interleaved rounds ({options.src or 'installed eksnet'})")
    for name, values in samples.items():
        median = statistics.median(values)
        ratio = median / base
        verdict = "" if name.startswith("python") else ("  ok" if ratio <= GOAL else "  > goal")
        print(
            f"{name:<34} median {median * 1000:8.1f} ms   min {min(values) * 1000:8.1f} ms"
            f"   max {max(values) * 1000:8.1f} ms   x{ratio:5.1f}{verdict}"
        )
    print(f"goal: each within x{GOAL:.0f} of `python -c pass` ({base * 1000 * GOAL:.0f} ms here)")
    if options.phases:
        print("one exec, in process:")
        path = "" if options.src is None else f"import sys; sys.path.insert(0, {options.src!r})\n"
        completed = subprocess.run(
            [sys.executable, "-c", path + PHASES, NODE], capture_output=True, text=True
        )
        print(completed.stdout or completed.stderr, end="")


if __name__ == "__main__":
    main()
