"""A decoding progress bar with counts: rich on a terminal, a few plain lines otherwise."""

from __future__ import annotations

import sys
import time

from gm.progress import prefix  # timestamped lines in a log, as every gm progress line


class Progress:
    """``with Progress("decoding images:DIR train", n) as bar: bar.advance(k)``.

    On a terminal: a rich bar (done/total, time left). Elsewhere (logs, CI): one line at
    the start, one at most every 10 s, and one at the end, so a log stays short."""

    def __init__(self, what: str, total: int, *, every_s: float = 10.0):
        self.what, self.total, self.done, self.every_s = what, total, 0, every_s
        self.bar = None
        if sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as Bar,
            )

            self.bar = Bar(
                TextColumn(what),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=True,
            )

    def __enter__(self) -> Progress:
        self.start = self.last = time.perf_counter()
        if self.bar is not None:
            self.bar.__enter__()
            self.task = self.bar.add_task(self.what, total=self.total)
        else:
            self._line()
        return self

    def _line(self) -> None:
        print(
            f"{prefix()}gm: {self.what}: {self.done:,}/{self.total:,}", file=sys.stderr, flush=True
        )

    def advance(self, k: int) -> None:
        self.done += k
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        elif time.perf_counter() - self.last >= self.every_s:
            self.last = time.perf_counter()
            self._line()

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        if exc[0] is None:
            took = time.perf_counter() - self.start
            print(
                f"{prefix()}gm: {self.what}: {self.done:,}/{self.total:,} in {took:.1f} s",
                file=sys.stderr,
                flush=True,
            )
