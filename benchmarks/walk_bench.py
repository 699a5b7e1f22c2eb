"""Time the simulator: one walk, the whole tour, and CLI start-up.

Prints figures, never fails: budgets are read by people, not asserted (these machines are noisy).
Run: .venv/bin/python benchmarks/walk_bench.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from eksnet.controllers import build_state
from eksnet.model import load_cluster
from eksnet.walk.engine import walk
from eksnet.walk.tour import TOUR


def timed(action: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return samples


def report(name: str, samples: list[float]) -> float:
    median = statistics.median(samples)
    print(
        f"{name:<42} median {median * 1000:9.2f} ms   "
        f"min {min(samples) * 1000:9.2f} ms   max {max(samples) * 1000:9.2f} ms"
        f"   (n={len(samples)})"
    )
    return median


def main() -> None:
    load = timed(load_cluster, 20)
    report("load demo cluster (YAML + validation)", load)
    cluster = load_cluster()
    report("controllers: build_state", timed(lambda: build_state(cluster), 20))
    state = build_state(cluster)
    one = report(
        "one walk (W2 forward + return)",
        timed(
            lambda: walk(
                state,
                "pod/default/app2-7c9f8d6b5-k5x2p",
                "pod/default/app1-5f7d9c6b8-z8h4k",
                dport=80,
            ),
            50,
        ),
    )

    def tour() -> None:
        for item in TOUR:
            walk(state, item.src, item.dst, proto=item.proto, dport=item.dport, sport=item.sport)

    whole = report(f"whole tour in process ({len(TOUR)} walks)", timed(tour, 20))
    startup = report(
        "CLI start-up (eksnet --help)",
        timed(
            lambda: subprocess.run(
                [sys.executable, "-m", "eksnet.cli", "--help"], capture_output=True, check=True
            ),
            5,
        ),
    )
    exec_cli = report(
        "CLI exec (eksnet exec node/1 -- ip rule show)",
        timed(
            lambda: subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "eksnet.cli",
                    "exec",
                    "node/ip-192-168-1-50.eu-west-2.compute.internal",
                    "--",
                    "ip",
                    "rule",
                    "show",
                ],
                capture_output=True,
                check=True,
            ),
            5,
        ),
    )
    print(f"ratio tour / one walk: {whole / one:.2f}; exec / start-up: {exec_cli / startup:.2f}")


if __name__ == "__main__":
    main()
