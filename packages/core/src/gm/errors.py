"""User-facing errors: the CLI prints the message as one line and exits 2."""


class GMError(Exception):
    """A mistake the user can fix; the message says what is wrong and how to fix it."""

    exit_code = 2


class TrainingStopped(Exception):
    """Training could not go on (a NaN loss, say); not a user mistake, exit code 1."""

    exit_code = 1


class Interrupted(Exception):
    """Ctrl-C during training; the checkpoint was saved (exit code 130)."""

    exit_code = 130
