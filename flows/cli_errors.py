"""How ``im2sp`` reports a user's mistake: one line and an exit code, never a traceback (unless asked).

Every error a user can cause is an ``Im2SpError`` whose message names the fix; ``exit_code`` is 2 for usage and
configuration mistakes and 1 for data, model-file and store problems. ``--debug`` or ``IM2SP_DEBUG=1`` lets the
exception (and Prefect's logged tracebacks) through for a bug report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from storage.errors import Im2SpError, StoreAccessError

DEBUG_VARIABLE = "IM2SP_DEBUG"


def debugging() -> bool:
    """Whether tracebacks are wanted (``--debug`` sets the variable for the whole process)."""
    return os.environ.get(DEBUG_VARIABLE, "").lower() not in ("", "0", "false", "no")


def one_line(error: BaseException) -> str:
    """The error's message on one line (a config error lists its bad keys after a ``;`` each)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[0] + (": " + "; ".join(lines[1:]) if len(lines) > 1 and not lines[0].endswith(":") else "")


#: What a user (or the machine) causes: the project's own errors, and the operating system's (a full disk, a
#: read-only folder, a store that cannot be reached).
_USER_ERRORS: tuple[type[BaseException], ...] = (Im2SpError, OSError)


def _user_error_names() -> tuple[str, ...]:
    names: set[str] = set()
    todo: list[type[BaseException]] = list(_USER_ERRORS)
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return tuple(sorted(names))


class _QuietUserErrors(logging.Filter):
    """Keeps Prefect's console from repeating a user error as tracebacks: the CLI prints it once, on one line.

    The records still reach Prefect's API handler, so a run's logs in the UI keep the whole story.
    """

    def __init__(self) -> None:
        super().__init__()
        self.names = _user_error_names()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], _USER_ERRORS):
            return False
        if not record.name.startswith("prefect"):
            return True
        message = record.getMessage()
        failed = "Failed(" in message or "failed with exception" in message or "exception during execution" in message
        return not (failed and any(f"{name}(" in message or f"{name}:" in message for name in self.names))


def quiet_prefect_console() -> None:
    """Install the filter on the console handlers of the root logger (where Prefect's run loggers propagate)."""
    if debugging():
        return
    for handler in logging.getLogger().handlers:
        if type(handler).__name__ != "APILogHandler" and not any(
            isinstance(f, _QuietUserErrors) for f in handler.filters
        ):
            handler.addFilter(_QuietUserErrors())


@contextmanager
def reported() -> Iterator[None]:
    """Turn a user error into one ``error:`` line on stderr and its exit code (re-raised under ``--debug``)."""
    try:
        yield
    except PermissionError as error:  # an object store refused the credentials, a folder is read-only
        if debugging():
            raise
        raise _exit(StoreAccessError(f"access refused ({error}): check the store URL and its credentials")) from None
    except OSError as error:  # a full disk, a file where a folder should be, a store that cannot be reached
        if debugging():
            raise
        raise _exit(StoreAccessError(f"{error}: check store.url, the dataset folders and free disk space")) from None
    except Im2SpError as error:
        if debugging():
            raise
        raise _exit(error) from None


def _exit(error: Im2SpError) -> typer.Exit:
    typer.echo(f"error: {one_line(error)}", err=True)
    return typer.Exit(code=error.exit_code)
