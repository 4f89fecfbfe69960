"""`keycam` run in this process, seen as a subprocess would show it: exit status, stdout and stderr.

Starting the console script costs a second or more of imports per call; most command-line tests only
check what ``edge.cli.main`` prints and returns, so they call it here (as httpx tests its command line).
What a separate process adds, and this keeps:

- stdout and stderr are the file descriptors 1 and 2, not only ``sys.stdout``/``sys.stderr``: what C
  libraries (OpenCV, onnxruntime) print there is captured too;
- a log record of WARNING or above that no handler of keycam's takes is printed on stderr, as
  logging's last-resort handler prints it in a process with no logging set up (pytest's own handlers
  would otherwise swallow it); a Python warning is printed there under Python's default filters;
- an argparse usage error (``SystemExit``) becomes its exit status;
- an exception that escapes ``main()`` is raised here, with the captured output printed, so the test
  fails and shows it (a process would print a traceback and exit 1);
- a non-daemon thread the command leaves running would keep a process from exiting: it is joined,
  and one still running after ``timeout`` seconds fails the test; so does a command that runs longer
  than ``timeout`` (hang protection, SIGALRM, not a time bound).

What a command changes in the process is put back after every call, so that no call sees another's:
the working directory, the environment, signal handlers, the soft limit on open files (``keycam
serve`` raises it), loggers' handlers and levels, and the warnings filters. ``keycam serve`` also fixes
glibc's mmap threshold for its whole process (``edge.server.process.return_freed_memory``), which
cannot be undone: here that call is skipped.

What only a process shows stays with real processes: exit statuses through the installed console
script and crashes on hostile files (tests/edge/cli/test_contract.py, tests/edge/cli/test_cli.py), OpenCV's
logging as a fresh process sets it up (test_cli.py), SIGINT/SIGTERM/SIGKILL (tests/edge/test_loop.py,
tests/edge/test_faults.py, tests/edge/sinks/test_forward_faults.py, tests/edge/test_recording.py), a
process's own file-descriptor limit (tests/edge/server/test_connections.py) and servers that are killed
and restarted (tests/edge/servers.py).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import resource
import signal
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass, field


@dataclass
class Done:
    """What ``subprocess.run(..., capture_output=True, text=True)`` returns, for the tests that read it."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    stderr_lines: list[str] = field(default_factory=list)


class CommandHung(BaseException):  # not an Exception: main()'s handlers must not turn it into an exit status
    pass


class _LastResort(logging.Handler):
    """What logging's last-resort handler prints in a process with no logging set up: the message alone."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - as logging's own handlers do
            self.handleError(record)


def _loggers() -> dict:
    manager = logging.root.manager
    found = {"": logging.root} | {name: logger for name, logger in manager.loggerDict.items()
                                  if isinstance(logger, logging.Logger)}
    return {name: (logger, list(logger.handlers), logger.level, logger.propagate, logger.disabled)
            for name, logger in found.items()}


@contextlib.contextmanager
def _isolated(cwd):
    """The process state a command may change, put back afterwards."""
    here = os.getcwd()
    environ = dict(os.environ)
    signals = {number: signal.getsignal(number) for number in signal.valid_signals()
               if number not in (signal.SIGKILL, signal.SIGSTOP)}
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    loggers = _loggers()
    disabled = logging.root.manager.disable
    threads = set(threading.enumerate())
    import edge.server.process

    freed_memory = edge.server.process.return_freed_memory
    edge.server.process.return_freed_memory = lambda: True
    try:
        if cwd is not None:
            os.chdir(cwd)
        yield threads
    finally:
        edge.server.process.return_freed_memory = freed_memory
        os.chdir(here)
        if dict(os.environ) != environ:
            os.environ.clear()
            os.environ.update(environ)
        for number, handler in signals.items():
            if handler is not None and signal.getsignal(number) is not handler:
                signal.signal(number, handler)
        if resource.getrlimit(resource.RLIMIT_NOFILE) != nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
        logging.disable(disabled)
        for name, (logger, *_rest) in _loggers().items():
            if name in loggers:
                _, handlers, level, propagate, was_disabled = loggers[name]
                logger.handlers[:] = handlers
                logger.setLevel(level)
                logger.propagate, logger.disabled = propagate, was_disabled
            else:
                logger.handlers.clear()  # they may hold this call's (closed) stderr


@contextlib.contextmanager
def _captured():
    """File descriptors 1 and 2, and sys.stdout/sys.stderr over them, into two files; yields a function that
    returns what was written (call it after the block)."""
    streams = sys.stdout, sys.stderr
    for stream in streams:
        with contextlib.suppress(Exception):
            stream.flush()
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    saved = os.dup(1), os.dup(2)
    wrappers = []
    try:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        for fd, like in ((1, sys.__stdout__ or streams[0]), (2, sys.__stderr__ or streams[1])):
            wrappers.append(io.TextIOWrapper(io.FileIO(fd, "w", closefd=False),
                                             encoding=getattr(like, "encoding", None) or "utf-8",
                                             errors=getattr(like, "errors", None) or "strict",
                                             line_buffering=True, write_through=True))
        sys.stdout, sys.stderr = wrappers

        def read() -> tuple[str, str]:
            texts = []
            for handle in (out, err):
                handle.seek(0)
                texts.append(handle.read().decode("utf-8", errors="replace"))
                handle.close()
            return texts[0], texts[1]

        yield read
    finally:
        for wrapper in wrappers:
            with contextlib.suppress(Exception):
                wrapper.flush()
        sys.stdout, sys.stderr = streams
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        for wrapper in wrappers:
            with contextlib.suppress(Exception):
                wrapper.close()
        # the files stay open until read() has read them


def _on_alarm(number, frame):
    raise CommandHung("the command ran past its hang-protection timeout")


def keycam(*args, cwd=None, timeout: float = 300) -> Done:
    """``keycam ARGS`` in this process, in ``cwd`` (default: the current folder); see the module's text."""
    from edge.cli import main

    argv = [os.fspath(a) if not isinstance(a, str) else a for a in args]
    last_resort = _LastResort()
    with _isolated(cwd) as threads, _captured() as read, warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()  # Python's defaults in a process started without -W
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        logging.root.addHandler(last_resort)
        logging.root.setLevel(logging.WARNING)
        previous_alarm = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        escaped = None
        try:
            try:
                code = main(argv)
            except SystemExit as done:
                code = done.code
                if code is not None and not isinstance(code, int):
                    print(code, file=sys.stderr)
                    code = 1
            code = 0 if code is None else code  # sys.exit(None): status 0
            from concurrent.futures.thread import _threads_queues  # executors' workers: stopped at exit, not waited

            for thread in set(threading.enumerate()) - threads:  # a process waits for these before it exits
                if not thread.daemon and thread not in _threads_queues:
                    thread.join(timeout)
                    if thread.is_alive():
                        raise CommandHung(f"the command left thread {thread.name} running")
        except BaseException as error:  # noqa: BLE001 - raised again below, with what the command printed
            escaped = error
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous_alarm)
            logging.root.removeHandler(last_resort)
            for warning in caught:
                sys.stderr.write(warnings.formatwarning(warning.message, warning.category, warning.filename,
                                                        warning.lineno, warning.line))
    stdout, stderr = read()
    if escaped is not None:
        shown = " ".join(argv).encode("utf-8", "backslashreplace").decode()  # a name that is not UTF-8, shown
        print(f"keycam {shown}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}", file=sys.stderr)
        raise escaped
    return Done(argv, code, stdout, stderr, stderr.strip().splitlines())
