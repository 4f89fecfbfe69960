"""tests/inprocess.py shows what a `keycam` process would show, and a call leaves nothing behind for the next."""

from __future__ import annotations

import logging
import os
import resource
import signal
import warnings

import pytest

from tests.inprocess import CommandHung, keycam


def _handler(monkeypatch, handler):
    """`keycam fingerprint` with its handler replaced by ``handler``."""
    monkeypatch.setattr("edge.cli.keys.fingerprint_command", handler)


def test_an_exception_that_escapes_main_fails_the_test_with_what_was_printed(monkeypatch, capsys):
    def broken(_):
        print("half a line")
        raise ValueError("a bug")

    _handler(monkeypatch, broken)
    with pytest.raises(ValueError, match="a bug"):
        keycam("fingerprint", "x")
    assert "half a line" in capsys.readouterr().err  # shown with the failure


def test_usage_errors_are_exit_2_and_known_errors_exit_1(tmp_path):
    assert keycam("fingerprint").returncode == 2
    done = keycam("fingerprint", tmp_path / "absent.key")
    assert done.returncode == 1 and done.stderr_lines == [done.stderr.strip()] and "does not exist" in done.stderr


def test_what_a_process_would_print_on_stderr_is_captured(monkeypatch):
    def noisy(_):
        logging.getLogger("edge.somewhere").warning("a warning logged")
        logging.getLogger("edge.somewhere").info("an info message nobody prints")
        warnings.warn("a python warning", RuntimeWarning, stacklevel=1)
        os.write(2, b"from C\n")
        os.write(1, b"out from C\n")
        return 0

    _handler(monkeypatch, noisy)
    done = keycam("fingerprint", "x")
    assert done.returncode == 0 and done.stdout == "out from C\n"
    assert "a warning logged\n" in done.stderr and "from C\n" in done.stderr and "RuntimeWarning" in done.stderr
    assert "nobody prints" not in done.stderr


def test_process_state_is_put_back_after_a_call(monkeypatch, tmp_path):
    def careless(_):
        os.chdir(tmp_path)
        os.environ["KEYCAM_TEST_LEFTOVER"] = "1"
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: None)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 200), hard))
        logging.getLogger("uvicorn").addHandler(logging.StreamHandler())
        logging.getLogger().setLevel(logging.DEBUG)
        return 0

    here, sigint, sigterm = os.getcwd(), signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    nofile, level = resource.getrlimit(resource.RLIMIT_NOFILE), logging.getLogger().level
    handlers = list(logging.getLogger("uvicorn").handlers)
    _handler(monkeypatch, careless)
    assert keycam("fingerprint", "x").returncode == 0
    assert os.getcwd() == here and "KEYCAM_TEST_LEFTOVER" not in os.environ
    assert signal.getsignal(signal.SIGINT) is sigint and signal.getsignal(signal.SIGTERM) is sigterm
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == nofile and logging.getLogger().level == level
    assert logging.getLogger("uvicorn").handlers == handlers


def test_a_command_that_hangs_fails_after_its_timeout(monkeypatch):
    import time

    def hangs(_):
        time.sleep(60)
        return 0

    _handler(monkeypatch, hangs)
    with pytest.raises(CommandHung):
        keycam("fingerprint", "x", timeout=0.5)


def test_a_thread_left_running_is_waited_for_as_a_process_would(monkeypatch):
    import threading
    import time

    release, finished = threading.Event(), []

    def leaves_a_thread(_):
        def work():
            release.wait(30)
            time.sleep(0.2)
            finished.append(True)

        threading.Thread(target=work, name="left-running").start()
        return 0

    _handler(monkeypatch, leaves_a_thread)
    with pytest.raises(CommandHung):
        keycam("fingerprint", "x", timeout=0.3)  # a process would not have exited
    release.set()
    for thread in threading.enumerate():
        if thread.name == "left-running":
            thread.join(30)
    # the next call's thread ends 0.2 s after it starts
    assert keycam("fingerprint", "x", timeout=30).returncode == 0 and len(finished) == 2  # waited for, as at exit
