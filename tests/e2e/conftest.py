"""What the end-to-end tests share: a real Prefect server on a free port with a home of its own, and the main job.

Every process gets the server's address and home in its environment, which wins over the repository's
prefect.toml (issue 9.1): the tests never reach the operator's server at 4200 nor write to data/.

- `prefect_server(tmp, **env)` -> context manager yielding the environment (os.environ + PREFECT_HOME=tmp/prefect,
  PREFECT_API_URL / PREFECT_UI_API_URL of a server on a free port, analytics off, + `env`) once the server answers;
  the server is stopped (its process group: SIGINT, then SIGKILL after 30 s) on leaving.
- `main_job(data_dir, *args, env=None, cwd=ROOT, port=None)` -> context manager yielding (its port, its output lines so far)
  once `leadflow start --port <free port> *args` printed `serving every deployment`; stopped by SIGTERM on leaving.
- `stop(process)`, `free_port()`, `healthy(api)`, `wait(predicate, timeout, what)`.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(predicate, timeout: float, what: str):
    """The predicate's first truthy value, polled every second; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop(process: subprocess.Popen, signum: int = signal.SIGINT, timeout: float = 30) -> None:
    """Stop a process started with start_new_session=True, and everything it started (its process group)."""
    try:
        os.killpg(process.pid, signum)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def server_env(tmp: Path, port: int, **extra: str) -> dict[str, str]:
    api = f"http://127.0.0.1:{port}/api"
    return {**os.environ, "PREFECT_HOME": str(tmp / "prefect"), "PREFECT_API_URL": api, "PREFECT_UI_API_URL": api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


@contextmanager
def prefect_server(tmp: Path, **extra: str):
    env = server_env(tmp, free_port(), **extra)
    with open(tmp / "server.log", "wb") as log:
        server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                                   env["PREFECT_API_URL"].split(":")[-1].removesuffix("/api")],
                                  env=env, stdout=log, stderr=log, start_new_session=True)
        try:
            wait(lambda: healthy(env["PREFECT_API_URL"]), 120, "the Prefect server")
            yield env
        finally:
            stop(server)


@contextmanager
def main_job(data_dir: Path, *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT,
             port: int | None = None, timeout: float = 300):
    """`leadflow start --port <port> *args` with LEADFLOW_DATA_DIR=data_dir (its store, sample files and Prefect
    home); `env`: the environment to add that to (default: os.environ with a home and address of its own); `port`:
    a free one by default."""
    port = free_port() if port is None else port
    env = {**(server_env(data_dir, port) if env is None else env), "LEADFLOW_DATA_DIR": str(data_dir)}
    env.pop("LEADFLOW_DATABASE_URL", None)  # the main job's store: leadflow.db in its data folder
    job = subprocess.Popen([str(BIN / "leadflow"), "start", "--port", str(port), *args], env=env, cwd=cwd,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []

    def read() -> None:  # the pipe is drained to its end, so the job never blocks on a full pipe
        for line in job.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait(lambda: any("serving every deployment" in line for line in lines) or job.poll() is not None, timeout,
             "the main job to serve")
        assert job.poll() is None, "the main job stopped:\n" + "".join(lines[-40:])
        yield port, lines
    finally:
        stop(job, signal.SIGTERM, timeout=60)  # start stops the server it started (its own session)
        reader.join(timeout=10)
