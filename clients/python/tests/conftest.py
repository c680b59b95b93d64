"""pytest fixtures: a real tiercached, built once per run from this
repository (or $TIERCACHED), on a temporary Unix socket; and the
needs_module marker for tests of an optional module."""

import importlib
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import redis

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "needs_module(name, package): the test needs the Python module name, from the Debian "
        "package package; without it the test skips, or fails under CI=true")


def pytest_runtest_setup(item):
    """A test marked needs_module whose module is missing skips, as Go's
    testutil.ToolMissing does, but fails under CI (CI=true): .ci/run
    installs every such module, and a CI run must not pass without the
    tests that need one."""
    for mark in item.iter_markers("needs_module"):
        name, package = mark.args
        err = _import_error(name)
        if err is None:
            continue
        msg = "%s is not installed (Debian: %s; .ci/run installs it): %s" % (name, package, err)
        if os.environ.get("CI") == "true":
            pytest.fail(msg + "\n(CI=true: a tool missing under CI fails the test instead of skipping it)",
                        pytrace=False)
        pytest.skip(msg)


def _import_error(name):
    """The ImportError importing module name raises, or None."""
    try:
        importlib.import_module(name)
    except ImportError as e:
        return e
    return None


@pytest.fixture(scope="session")
def tiercached_bin(tmp_path_factory):
    path = os.environ.get("TIERCACHED")
    if path:
        return path
    go = shutil.which("go") or "/usr/local/go/bin/go"
    out = str(tmp_path_factory.mktemp("bin") / "tiercached")
    subprocess.run([go, "build", "-o", out, "./cmd/tiercached"], cwd=ROOT, check=True)
    return out


class Daemon:
    """A running tiercached; stop() and start() again keep its data.

    args come after the defaults and override them (the last of a flag
    given twice wins): Daemon(binary, ["--nats", "embedded"]). Its log
    (stdout and stderr) goes to a file in its directory, self.log."""

    def __init__(self, binary, args=()):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="tcpy")  # short: socket paths are limited to 108 bytes
        self.socket = os.path.join(self.dir, "s.sock")
        self.log = os.path.join(self.dir, "log")
        self.args = list(args)
        self.proc = None

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self):
        argv = [self.binary, "--socket", self.socket, "--data-dir", os.path.join(self.dir, "data"),
                "--mem-max", "64MiB", "--disk-max", "1GiB", "--nats", "off", "--log-level", "warn"] + self.args
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        r = redis.Redis(unix_socket_path=self.socket, socket_timeout=5)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("tiercached exited: %s" % self.read_log())
            try:
                if r.ping():
                    break
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("tiercached not answering PING after 60 s")
            time.sleep(0.01)  # polling the socket until it answers
        r.close()
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def daemon(tiercached_bin):
    d = Daemon(tiercached_bin).start()
    yield d
    d.cleanup()


@pytest.fixture
def cache(daemon):
    from tiercache import Cache

    c = Cache(socket=daemon.socket, timeout=30)
    yield c
    c.close()
