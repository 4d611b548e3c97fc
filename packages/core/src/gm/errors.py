"""User-facing errors: the CLI prints the message as one line and exits with its code."""

import signal


class GMError(Exception):
    """A mistake the user can fix; the message says what is wrong and how to fix it."""

    exit_code = 2


class GMFault(GMError):
    """Something outside the user's command failed (the network, a remote server); exit 1."""

    exit_code = 1


class GMWarning(UserWarning):
    """Something the user should know that does not stop gm; the CLI prints it as one line."""


class TrainingStopped(Exception):
    """Training could not go on (a NaN loss, a full disk, a lost peer); a fault, exit 1."""

    exit_code = 1


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; exit 128 + the signal's number (130, 143), as a shell
    reports a process the signal ended. A BaseException, like KeyboardInterrupt, so that
    ``except Exception`` in a plugin does not swallow it."""

    def __init__(self, message: str = "", signum: int = signal.SIGINT):
        super().__init__(message or f"interrupted ({signal.Signals(signum).name}).")
        self.signum = signum
        self.exit_code = 128 + int(signum)


def raise_interrupted(signum: int, frame=None) -> None:
    """A signal handler: SIGINT/SIGTERM become :class:`Interrupted` where they land."""
    raise Interrupted(signum=signum)
