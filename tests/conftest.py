"""Shared test fixtures: run the installed executables through real pipes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# HYPOTHESIS_PROFILE=thorough multiplies the examples of every property test.
settings.register_profile("thorough", max_examples=5000, deadline=None)
settings.register_profile("default", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def exe(name: str) -> str:
    """The installed executable ``name`` (from the venv running the tests)."""
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (pip install -e .)")
    return found


def run(name: str, *args: str, input: bytes | str | None = None, env: dict | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    """Run an executable to completion with ``input`` on stdin; bytes in, bytes out."""
    if isinstance(input, str):
        input = input.encode()
    return subprocess.run([exe(name), *args], input=input, capture_output=True, timeout=timeout,
                          env=env if env is not None else os.environ.copy())


def run_on_terminal(name: str, *args: str, stream: str, input: bytes, env: dict) -> bytes:
    """Run an executable with its ``stream`` ("stdout" or "stderr") on a pseudo-terminal,
    as a person sees it; return what it wrote there."""
    import pty

    master, slave = pty.openpty()
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, stream: slave}
    proc = subprocess.Popen([exe(name), *args], env=env, **pipes)
    os.close(slave)
    proc.communicate(input, timeout=60)
    out = b""
    try:
        while chunk := os.read(master, 65536):
            out += chunk
    except OSError:  # EIO: the other end is closed and everything was read
        pass
    os.close(master)
    return out


@pytest.fixture
def isolated_env(tmp_path):
    """Environment with XDG dirs under a temp dir, so tests never touch the user's files."""
    env = os.environ.copy()
    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env[var] = str(tmp_path / var.lower())
    env.pop("VT_API_KEY", None)
    return env


FREE_KEY = "test-key-free"


@pytest.fixture(scope="session")
def server():
    """The VirusTotal-compatible server on 127.0.0.1, one per test session."""
    from vtserver import VTServer

    vt = VTServer()
    vt.start()
    yield vt
    vt.stop()


@pytest.fixture
def vt(server):
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def env(isolated_env, vt):
    """An environment pointing vex-lookup at the test server, with fast retries and no quota waits."""
    isolated_env.update({"VT_API_KEY": FREE_KEY, "VEXPIPE_BASE_URL": vt.base_url, "VEXPIPE_BACKOFF": "0.01",
                         "VEXPIPE_PER_MINUTE": "100000"})
    return isolated_env
