"""Progress a person can see: a bar on a terminal, plain timestamped lines otherwise.

Every long step of every verb reports here: ``status("loading dataset mnist")`` for a
step of unknown length, ``with bar(total, "sample") as b: ... b.advance()`` for a loop.
Plugins call the same two functions from their own loops (sampling chains, roll-outs,
decoding): a line or two each. Output goes to stderr, so stdout stays the verb's result.

It is silent in library use until a verb turns it on (:func:`enabled`), and off rank 0
under torchrun. Updating a bar never touches the device by itself: callers pass numbers
they already hold on the host, or a ``live`` function the bar calls only when it redraws
(the engine's running mean of the loss: one read per redraw, never one per step).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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
TICK_S = 1.0  # on a terminal, a status line's elapsed time is redrawn this often
_lock = threading.Lock()
_pending: list[_Status] = []


def prefix() -> str:
    """What starts a progress line: nothing on a terminal, the time in a log."""
    return "" if _tty() else f"{_stamp()} "


def _print(message: str) -> None:
    print(f"{prefix()}{message}", file=sys.stderr, flush=True)


class _Status(threading.Thread):
    """A status line that says it is alive: shown after :data:`STATUS_DELAY_S`, then on a
    terminal its elapsed time counts up in place; in a log a line every :data:`HEARTBEAT_S`
    (a step with no loop of its own, an evaluation say, is never silent for long)."""

    def __init__(self, message: str):
        super().__init__(daemon=True)
        self.message, self.tty, self.shown = message, _tty(), False
        self.stop = threading.Event()
        self.began = time.perf_counter()

    def run(self) -> None:
        if self.stop.wait(STATUS_DELAY_S):
            return
        with _lock:
            if self.stop.is_set():
                return
            if self.tty:  # the line stays open: its clock is redrawn in place
                print(f"gm: {self.message} ...", end="", file=sys.stderr, flush=True)
            else:
                _print(f"gm: {self.message} ...")
            self.shown = True
        while not self.stop.wait(TICK_S if self.tty else HEARTBEAT_S):
            spent = _seconds(time.perf_counter() - self.began)
            with _lock:
                if self.stop.is_set():
                    break
                if self.tty:
                    print(f"\r\x1b[Kgm: {self.message} ... {spent}", end="", file=sys.stderr,
                          flush=True)  # fmt: skip
                else:
                    _print(f"gm: {self.message} ... still running, {spent}")

    def end(self) -> None:
        with _lock:
            self.stop.set()
            if self.shown and self.tty:
                print(file=sys.stderr, flush=True)  # close the open line
        self.join()


def settle() -> None:
    """End the status line (drop it if not shown yet: its step ended quickly, or failed,
    and an error is then the only line a user sees)."""
    while _pending:
        _pending.pop().end()


def line(message: str) -> None:
    """One line on stderr: as is on a terminal, timestamped in a log."""
    settle()
    if is_on():
        _print(message)


def status(message: str) -> None:
    """A step of unknown length starts: ``gm: loading dataset swiss-roll ...``, shown only
    if the step is still running after :data:`STATUS_DELAY_S` (until the next line), with
    its elapsed time while it runs."""
    settle()
    if not is_on():
        return
    if STATUS_DELAY_S <= 0:  # no delay: at once
        _print(f"gm: {message} ...")
        return
    ticker = _Status(message)
    _pending.append(ticker)
    ticker.start()


def _seconds(s: float) -> str:
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


_bars: list[Bar] = []  # the bar being drawn


class Bar:
    """A bar of ``total`` steps. ``advance`` is cheap (no redraw more often than 20/s)."""

    def __init__(
        self,
        total: int,
        desc: str,
        *,
        start: int = 0,
        unit: str = "it",
        live: Callable[[], str | None] | None = None,
    ):
        settle()  # the bar is what the user sees next
        self.total, self.desc, self.unit, self.live = total, desc, unit, live
        self.done, self.start_done, self.info, self.info_at = start, start, "", start
        self.plain_done = -1  # the count the last plain line showed
        # one bar at a time: a loop inside a bar's step (validation inside training) is silent
        self.on = is_on() and not _bars
        self.began = self.last_draw = self.last_line = time.perf_counter()
        self._rich: Any = None
        if self.on and _tty():
            from rich.console import Console
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
                console=Console(stderr=True),  # rich's default is stdout: the verb's result
            )
            self._task = self._rich.add_task(desc, total=total, completed=start, info="")

    def __enter__(self) -> Bar:
        if self.on:
            _bars.append(self)
        if self._rich is not None:
            self._rich.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self in _bars:
            _bars.remove(self)
            slow = time.perf_counter() - self.began >= 1.0
            if self._rich is None and slow and self.plain_done != self.done:
                self._plain()  # in a log: where a loop of more than a second ended
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done, info=self._info())
            self._rich.__exit__(*exc)

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.began
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def _info(self) -> str:
        """The numbers beside the count, saying which step they are from when older (the
        loss is read only every log_every steps)."""
        if not self.info or self.info_at == self.done:
            return self.info
        return f"{self.info} (step {self.info_at})"

    def _plain(self) -> None:
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        info = f"  {self._info()}" if self.info else ""
        line(
            f"{self.desc} {self.done}/{self.total}{info}  {rate:.3g} {self.unit}/s  "
            f"elapsed {_seconds(time.perf_counter() - self.began)}  eta {_seconds(eta)}"
        )
        self.last_line, self.plain_done = time.perf_counter(), self.done

    def advance(self, n: int = 1) -> None:
        self.goto(self.done + n)

    def goto(self, done: int, info: str | None = None) -> None:
        """Set the count (and the text beside it); ``info`` given also prints a plain line.
        Without ``info``, a redraw shows what ``live()`` says now (when the bar has one)."""
        self.done = done
        if info is not None:
            self.info, self.info_at = info, done
        if not self.on:
            return
        now = time.perf_counter()
        if self._rich is not None:
            if info is not None or now - self.last_draw >= REDRAW_S or done >= self.total:
                self._refresh(info)
                self._rich.update(self._task, completed=done, info=self._info())
                self.last_draw = now
        elif info is not None or now - self.last_line >= HEARTBEAT_S:
            self._refresh(info)
            self._plain()

    def _refresh(self, info: str | None) -> None:
        """The live numbers, read now (only at a redraw: the read may wait for the device)."""
        if info is None and self.live is not None:
            fresh = self.live()
            if fresh is not None:
                self.info, self.info_at = fresh, self.done


def bar(total: int, desc: str, **kw: Any) -> Bar:
    return Bar(total, desc, **kw)


def track(
    items: Iterable[T], total: int, desc: str, *, min_total: int = 0, first: str | None = None
) -> Iterator[T]:
    """``for x in track(xs, len(xs), "decode"):`` with a bar; loops shorter than
    ``min_total`` (the many short chains inside an evaluation, say) pass through silently.
    ``first`` says what the first item is waiting for ("compiling"), until it is done."""
    if total < min_total or not is_on():
        yield from items
        return
    with Bar(total, desc) as b:
        if first:
            b.goto(0, first)
        for i, x in enumerate(items):
            yield x
            if first and i == 0:
                b.goto(1, "")
            else:
                b.advance()


@contextlib.contextmanager
def timed(message: str) -> Iterator[None]:
    """``status(message)`` now and ``message: done in 3.2 s`` after, for a step that may
    take a while (building, compiling, one long sampling call)."""
    status(message)
    began = time.perf_counter()
    try:
        yield
    finally:
        settle()  # the step is over: its status line stops counting, also when it failed
    if time.perf_counter() - began >= 1.0:
        line(f"gm: {message}: done in {time.perf_counter() - began:.1f} s")
