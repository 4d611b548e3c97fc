"""Progress a person can see: a bar on a terminal, plain timestamped lines otherwise.

Every long step of every verb reports here: ``status("loading dataset mnist")`` for a
step of unknown length, ``with bar(total, "sample") as b: ... b.advance()`` for a loop.
Plugins call the same two functions from their own loops (sampling chains, roll-outs,
decoding): a line or two each. Output goes to stderr, so stdout stays the verb's result.

It is silent in library use until a verb turns it on (:func:`enabled`), and off rank 0
under torchrun. Updating a bar never touches the device: callers pass numbers they
already hold on the host (the engine reads the loss only every ``log_every`` steps).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_ON: ContextVar[bool] = ContextVar("gm_progress", default=False)
HEARTBEAT_S = 10.0  # without a terminal, a line at least this often while a bar runs
REDRAW_S = 0.05  # a terminal bar redraws at most 20 times a second


def _main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def is_on() -> bool:
    return _ON.get() and _main_rank()


@contextlib.contextmanager
def enabled(on: bool = True) -> Iterator[None]:
    """Show progress inside this block (the CLI wraps each verb in it)."""
    token = _ON.set(on)
    try:
        yield
    finally:
        _ON.reset(token)


def _tty() -> bool:
    return sys.stderr.isatty()


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


STATUS_DELAY_S = 0.3  # a status line shows once its step has taken this long
_pending: list[threading.Timer] = []


def _print(message: str) -> None:
    prefix = "" if _tty() else f"{_stamp()} "
    print(f"{prefix}{message}", file=sys.stderr, flush=True)


def settle() -> None:
    """Drop a status line not shown yet (its step ended quickly, or failed: an error is
    then the only line a user sees)."""
    while _pending:
        _pending.pop().cancel()


def line(message: str) -> None:
    """One line on stderr: as is on a terminal, timestamped in a log."""
    settle()
    if is_on():
        _print(message)


def status(message: str) -> None:
    """A step of unknown length starts: ``gm: loading dataset swiss-roll ...``, shown only
    if the step is still running after :data:`STATUS_DELAY_S` (until the next line)."""
    settle()
    if not is_on():
        return
    if STATUS_DELAY_S <= 0:  # no delay: at once
        _print(f"gm: {message} ...")
        return
    timer = threading.Timer(STATUS_DELAY_S, _print, args=(f"gm: {message} ...",))
    timer.daemon = True
    _pending.append(timer)
    timer.start()


def _seconds(s: float) -> str:
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


class Bar:
    """A bar of ``total`` steps. ``advance`` is cheap (no redraw more often than 20/s)."""

    def __init__(self, total: int, desc: str, *, start: int = 0, unit: str = "it"):
        settle()  # the bar is what the user sees next
        self.total, self.desc, self.unit = total, desc, unit
        self.done, self.start_done, self.info = start, start, ""
        self.on = is_on()
        self.began = self.last_draw = self.last_line = time.perf_counter()
        self._rich: Any = None
        if self.on and _tty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._rich = Progress(
                TextColumn(f"[bold]{desc}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._task = self._rich.add_task(desc, total=total, completed=start, info="")

    def __enter__(self) -> Bar:
        if self._rich is not None:
            self._rich.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done, info=self.info)
            self._rich.__exit__(*exc)

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.began
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def _plain(self) -> None:
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        info = f"  {self.info}" if self.info else ""
        line(
            f"{self.desc} {self.done}/{self.total}{info}  {rate:.3g} {self.unit}/s  "
            f"elapsed {_seconds(time.perf_counter() - self.began)}  eta {_seconds(eta)}"
        )
        self.last_line = time.perf_counter()

    def advance(self, n: int = 1) -> None:
        self.goto(self.done + n)

    def goto(self, done: int, info: str | None = None) -> None:
        """Set the count (and the text beside it); ``info`` given also prints a plain line."""
        self.done = done
        if info is not None:
            self.info = info
        if not self.on:
            return
        now = time.perf_counter()
        if self._rich is not None:
            if info is not None or now - self.last_draw >= REDRAW_S or done >= self.total:
                self._rich.update(self._task, completed=done, info=self.info)
                self.last_draw = now
        elif info is not None or now - self.last_line >= HEARTBEAT_S:
            self._plain()


def bar(total: int, desc: str, **kw: Any) -> Bar:
    return Bar(total, desc, **kw)


def track(items: Iterable[T], total: int, desc: str, *, min_total: int = 0) -> Iterator[T]:
    """``for x in track(xs, len(xs), "decode"):`` with a bar; loops shorter than
    ``min_total`` (the many short chains inside an evaluation, say) pass through silently."""
    if total < min_total or not is_on():
        yield from items
        return
    with Bar(total, desc) as b:
        for x in items:
            yield x
            b.advance()


@contextlib.contextmanager
def timed(message: str) -> Iterator[None]:
    """``status(message)`` now and ``message: done in 3.2 s`` after, for a step that may
    take a while (building, compiling, one long sampling call)."""
    status(message)
    began = time.perf_counter()
    yield
    if time.perf_counter() - began >= 1.0:
        line(f"gm: {message}: done in {time.perf_counter() - began:.1f} s")
