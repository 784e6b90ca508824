"""How ``im2sp`` reports a user's mistake: one line and an exit code, never a traceback (unless asked).

Every error a user can cause is an ``Im2SpError`` whose message names the fix; ``exit_code`` is 2 for usage and
configuration mistakes and 1 for data, model-file and store problems. ``--debug`` or ``IM2SP_DEBUG=1`` lets the
exception (and Prefect's logged tracebacks) through for a bug report.

An ``OSError`` is the user's (exit 1, one line) only when it concerns the machine, the store or the user's own
paths (``user_paths``: the store, dataset roots, checkpoints, a command's path arguments): a full disk, a
read-only folder, refused access, a store that cannot be reached (a connection error, or an error raised
from an object store's client library), or any error naming a file under one of those paths. Any other
``OSError`` (no path, or a path the code chose) is a bug in im2sp: its traceback is printed, then one
``error: internal error …`` line, and the exit code is ``INTERNAL_ERROR`` (3), so a script can tell it apart.

The Prefect API failing (a server error, e.g. its database is down) or out of reach is the machine's too: one
line naming the request and what to check, exit 1.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import typer

from storage.errors import Im2SpError, StoreAccessError

DEBUG_VARIABLE = "IM2SP_DEBUG"
#: The exit code of a bug in im2sp (1 and 2 are the user's to fix).
INTERNAL_ERROR = 3

#: Errors of the machine, whatever the path: disk full or over quota, read-only, refused, I/O failed.
_MACHINE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EMFILE, errno.ENFILE}
    | {errno.ESTALE, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNREFUSED, errno.ECONNRESET}
)
#: Object stores' client libraries: an OSError raised from (or caused by) them concerns the store. s3fs turns a
#: bucket's errors into OSErrors with neither errno nor path.
_STORE_CLIENTS = ("s3fs", "gcsfs", "adlfs", "aiobotocore", "botocore", "aiohttp", "google", "azure")
#: The current command's user paths (``reported`` starts a fresh list; ``user_paths`` adds to it).
_PATHS: list[list[str]] = []


def debugging() -> bool:
    """Whether tracebacks are wanted (``--debug`` sets the variable for the whole process)."""
    return os.environ.get(DEBUG_VARIABLE, "").lower() not in ("", "0", "false", "no")


def one_line(error: BaseException) -> str:
    """The error's message on one line (a config error lists its bad keys after a ``;`` each)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[0] + (": " + "; ".join(lines[1:]) if len(lines) > 1 and not lines[0].endswith(":") else "")


def user_paths(*paths: str | Path) -> None:
    """Name paths that are the user's (store URL, dataset roots, path arguments) for the ``reported`` block.

    An OSError that names a file under one of them is reported as the user's to fix, not as a bug.
    """
    if _PATHS:
        _PATHS[-1].extend(str(path) for path in paths)


def _under(filename: str, roots: list[str]) -> bool:
    candidates = {filename, str(Path(filename).resolve())}
    for root in roots:
        bare = root.split("://", 1)[1] if "://" in root else root  # fsspec names objects without the protocol
        for prefix in {root.rstrip("/"), bare.rstrip("/"), str(Path(bare).resolve())}:
            if prefix and any(c == prefix or c.startswith(prefix + "/") for c in candidates):
                return True
    return False


def _from_a_store_client(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        modules = [type(current).__module__]
        tb = current.__traceback__
        while tb is not None:
            modules.append(str(tb.tb_frame.f_globals.get("__name__", "")))
            tb = tb.tb_next
        if any(m.split(".")[0] in _STORE_CLIENTS for m in modules):
            return True
        current = current.__cause__ or current.__context__
    return False


def is_users(error: OSError) -> bool:
    """Whether an OSError concerns the machine, the store or the user's paths (else it is a bug in im2sp)."""
    if error.errno in _MACHINE_ERRNOS or isinstance(error, PermissionError | ConnectionError | TimeoutError):
        return True
    if isinstance(error, socket.gaierror | socket.herror):  # a store host name that does not resolve
        return True
    roots = [path for paths in _PATHS for path in paths]
    names = [str(name) for name in (error.filename, error.filename2) if name not in (None, "")]
    return any(_under(name, roots) for name in names) or _from_a_store_client(error)


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
            error = record.exc_info[1]
            return isinstance(error, OSError) and not is_users(error)  # a bug's records stay
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
def reported(*paths: str | Path) -> Iterator[None]:
    """Turn a user error into one ``error:`` line on stderr and its exit code (re-raised under ``--debug``).

    Args:
        paths: The user's paths known before the block runs (see ``user_paths``).
    """
    _PATHS.append([str(path) for path in paths])
    try:
        yield
    except PermissionError as error:  # an object store refused the credentials, a folder is read-only
        if debugging():
            raise
        raise _exit(StoreAccessError(f"access refused ({error}): check the store URL and its credentials")) from None
    except OSError as error:  # a full disk, a file where a folder should be, a store that cannot be reached
        if debugging():
            raise
        if not is_users(error):
            raise _internal(error) from None
        raise _exit(StoreAccessError(f"{error}: check store.url, the dataset folders and free disk space")) from None
    except Im2SpError as error:
        if debugging():
            raise
        raise _exit(error) from None
    except (httpx.HTTPError, RuntimeError) as error:  # Prefect wraps an unreachable API in a RuntimeError
        api_error = _api_error(error)
        if debugging() or api_error is None:
            raise
        raise _exit(api_error) from None
    finally:
        _PATHS.pop()


class PrefectApiError(Im2SpError):
    """The Prefect API answered with a server error or could not be reached."""


#: HTTP statuses of the Prefect API that are the user's or the machine's to fix (others are a bug in a request).
_API_AUTH = frozenset({401, 403})


def _api_failure(error: BaseException) -> httpx.HTTPStatusError | httpx.TransportError | None:
    """The failed Prefect API call in an error's chain of causes (Prefect wraps some in a RuntimeError)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx.HTTPStatusError | httpx.TransportError):
            return current
        current = current.__cause__ or current.__context__
    return None


def _api_error(error: BaseException) -> PrefectApiError | None:
    """The one-line error for a failed Prefect API call, or None when it is not one, or a bug in a request."""
    failure = _api_failure(error)
    if isinstance(failure, httpx.HTTPStatusError):
        request, code = failure.request, failure.response.status_code
        failed = f"the Prefect API refused {request.method} {request.url} ({code} {failure.response.reason_phrase})"
        if code in _API_AUTH:
            return PrefectApiError(f"{failed}: check PREFECT_API_AUTH_STRING")
        if code >= 500:
            return PrefectApiError(f"{failed}: check the Prefect server and its database (its log says why)")
        return None
    if failure is None:
        return None
    try:
        where = f" at {failure.request.url}"
    except RuntimeError:  # raised by httpx when the error carries no request
        where = ""
    return PrefectApiError(
        f"cannot reach the Prefect API{where} ({type(failure).__name__}: {one_line(failure)}): check "
        "PREFECT_API_URL and that the server is up"
    )


def _internal(error: BaseException) -> typer.Exit:
    """A bug: the whole traceback (a bug report needs it; a rerun may take hours), then one line saying so."""
    traceback.print_exception(error, file=sys.stderr)
    typer.echo(
        f"error: internal error (a bug in im2sp, not a problem with the store or the data): "
        f"{type(error).__name__}: {one_line(error)}; please report it with the traceback above",
        err=True,
    )
    return typer.Exit(code=INTERNAL_ERROR)


def _exit(error: Im2SpError) -> typer.Exit:
    typer.echo(f"error: {one_line(error)}", err=True)
    return typer.Exit(code=error.exit_code)
