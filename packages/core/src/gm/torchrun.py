"""``python -m gm.torchrun ARGS``: ``torchrun ARGS`` whose agent, stopped by SIGINT or
SIGTERM, exits 130/143 without its own traceback. The agent has stopped the ranks by then,
and rank 0 has said the one line (saved at which step, how to resume)."""

from __future__ import annotations

import sys


def main() -> None:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.run import main as torchrun

    try:
        torchrun()
    except SignalException as err:
        sys.exit(128 + int(err.sigval))


if __name__ == "__main__":
    main()
