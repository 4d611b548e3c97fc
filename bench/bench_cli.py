"""Latency of the listing commands against a bare `import torch`, in one run.

The listing commands read lazy registry records only, so they should cost a fraction
of importing torch (which every training or sampling command pays).
"""

import subprocess
import sys

from _report import table, timeit, write_section

COMMANDS = {
    "gm --help": [sys.executable, "-m", "gm", "--help"],
    "gm list-models": [sys.executable, "-m", "gm", "list-models"],
    "gm list-datasets": [sys.executable, "-m", "gm", "list-datasets"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
}


def main() -> None:
    times = {
        name: timeit(lambda c=cmd: subprocess.run(c, capture_output=True, check=True), repeat=5)
        for name, cmd in COMMANDS.items()
    }
    base = times["python -c 'import torch'"]
    rows = [{"command": k, "median s": v, "vs import torch": v / base} for k, v in times.items()]
    write_section(
        "cli",
        "CLI start-up (listing commands never import torch)",
        "python bench/bench_cli.py",
        table(rows, ["command", "median s", "vs import torch"]),
        {"seconds": times},
    )
    print(table(rows, ["command", "median s", "vs import torch"]))


if __name__ == "__main__":
    main()
