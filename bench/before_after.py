"""conveyor's run_all figures for two source trees, interleaved, with the ratio of medians.

    git worktree add --detach /tmp/before <rev>      # the tree to compare against
    .venv/bin/python bench/before_after.py /tmp/before/src src --rounds 6
    .venv/bin/python bench/before_after.py /tmp/before/src src --rounds 4 --backend postgresql

Each round runs `run_all.py --only conveyor[-pg] --quick --no-claim --no-record` once per tree
(PYTHONPATH selects the tree, worker processes included), the order swapped every round: a run
may pay for what the run before it left behind (the kernel writing back its files), so each
tree goes first as often as second. Bytecode is written (PYTHONDONTWRITEBYTECODE unset): installed
packages are compiled, and compiling on every start would be measured as start-up otherwise.
Prints one markdown table: the median of each figure per tree, and after / before.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WATCH = "enqueue one at a time, jobs/s (1,000 jobs)"  # shown per round, as a progress line


def figures(output: str) -> dict[str, float]:
    """The conveyor column of run_all's first table: workload -> number."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        if not line.startswith("| "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0].startswith(("-", "workload", "target", "goal")):
            continue
        try:
            found.setdefault(cells[0], float(cells[1].replace(",", "").split()[0]))
        except (ValueError, IndexError):
            continue
    return found


def run(tree: Path, backend: str) -> dict[str, float]:
    env = {key: value for key, value in os.environ.items()
           if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(tree)
    system = "conveyor-pg" if backend == "postgresql" else "conveyor"
    done = subprocess.run(
        [sys.executable, str(HERE / "run_all.py"), "--backend", backend, "--only", system,
         "--quick", "--no-claim", "--no-record"],
        env=env, capture_output=True, text=True, timeout=900, check=True)
    return figures(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path, help="src folder of the tree to compare against")
    parser.add_argument("after", type=Path, help="src folder of the tree measured")
    parser.add_argument("--rounds", type=int, default=4, help="an even number: each tree first "
                        "as often as second")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    options = parser.parse_args()
    trees = {"before": options.before.resolve(), "after": options.after.resolve()}
    seen: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    for round_ in range(1, options.rounds + 1):
        order = list(trees.items())
        if round_ % 2 == 0:
            order.reverse()
        for label, tree in order:
            for key, value in run(tree, options.backend).items():
                seen[label].setdefault(key, []).append(value)
        print(f"round {round_} of {options.rounds} done: " + ", ".join(
            f"{label} {seen[label].get(WATCH, [0])[-1]:,.0f}" for label in trees),
            file=sys.stderr)
    print(f"| {options.backend}, median of {options.rounds} | before | after | after / before |")
    print("| --- | ---: | ---: | ---: |")
    for key, values in seen["before"].items():
        after = seen["after"].get(key)
        if not after or len(after) != len(values):
            continue
        old, new = statistics.median(values), statistics.median(after)
        ratio = f"{new / old:.2f}" if old else "n/a"
        print(f"| {key} | {old:,.2f} | {new:,.2f} | {ratio} |")


if __name__ == "__main__":
    main()
