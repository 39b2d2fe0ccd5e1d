"""The embedded emulator, owned by the caller: on 127.0.0.1 and a free port, one of two independently
written implementations of the AWS APIs (``FERRY_EMULATOR=moto|ministack``, default ministack: the
faster of the two, on which every suite passes; measured in README "Which emulator by default"):

- **moto** in server mode, from ferry's own virtualenv;
- **ministack**, from its own virtualenv (``.venv-ministack``, made by ``make install``: it pins a
  botocore older than ferry's), with its MQTT listener off and its Lambdas run as local processes.

Either speaks the AWS wire protocol over real HTTP, so everything above it is the code that runs
against AWS. Stopped by process group, then SIGKILL (moto may ignore SIGTERM for a while).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ferry.errors import SetupError

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


MOTO = "moto"
MINISTACK = "ministack"
EMULATORS = (MOTO, MINISTACK)
DEFAULT_EMULATOR = MINISTACK
EMULATOR_VARIABLE = "FERRY_EMULATOR"
MINISTACK_PYTHON_VARIABLE = "FERRY_MINISTACK_PYTHON"  # its interpreter; default .venv-ministack/bin/python
ROOT = Path(__file__).resolve().parent.parent


def emulator_kind(kind: str | None = None, default: str = DEFAULT_EMULATOR) -> str:
    """``kind``, else ``FERRY_EMULATOR``, else ``default``. SetupError naming the setting for anything else."""
    chosen = kind or os.environ.get(EMULATOR_VARIABLE) or default
    if chosen not in EMULATORS:
        source = "the emulator" if kind else EMULATOR_VARIABLE
        raise SetupError(f"{source}: {chosen!r} is not one of {', '.join(EMULATORS)}")
    return chosen


def ministack_python() -> str:
    """The interpreter of ministack's own virtualenv (``make install`` makes it)."""
    python = os.environ.get(MINISTACK_PYTHON_VARIABLE) or str(ROOT / ".venv-ministack" / "bin" / "python")
    if not os.path.exists(python):
        raise SetupError(
            f"ministack is not installed ({python} does not exist): run `make install`, "
            f"or set {MINISTACK_PYTHON_VARIABLE} to the Python of a virtualenv that has it"
        )
    return python


@dataclass(frozen=True)
class _Kind:
    """How to start one emulator, know it answers, and wipe it."""

    name: str
    health_path: str
    reset_path: str

    def command(self, port: int) -> list[str]:
        if self.name == MOTO:
            return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        return [ministack_python(), "-m", "ministack"]

    def environment(self, port: int) -> dict[str, str]:
        if self.name == MOTO:
            return {}
        # IOT_MTLS_ENABLED=0: else ministack binds 0.0.0.0:8883 for MQTT whatever BIND_HOST says.
        return {
            "GATEWAY_PORT": str(port),
            "BIND_HOST": "127.0.0.1",
            "IOT_MTLS_ENABLED": "0",
            "LAMBDA_EXECUTOR": "local",
        }


_KINDS = {
    MOTO: _Kind(MOTO, "/moto-api/", "/moto-api/reset"),
    MINISTACK: _Kind(MINISTACK, "/_ministack/health", "/_ministack/reset"),
}


def use_dummy_credentials() -> None:
    """Give this process credentials for the emulator, unless it has some (moto accepts any)."""
    os.environ.update({k: os.environ.get(k, v) for k, v in DUMMY_CREDENTIALS.items()})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Emulator:
    """``with Emulator() as emu: emu.endpoint_url`` — an emulator (``kind``, else ``FERRY_EMULATOR``,
    else ministack) for the duration."""

    def __init__(self, port: int | None = None, log_path: str | None = None, kind: str | None = None) -> None:
        self.kind = emulator_kind(kind)
        self._kind = _KINDS[self.kind]
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or os.devnull
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Emulator:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        env = {**os.environ, **DUMMY_CREDENTIALS, **self._kind.environment(self.port)}
        env.pop("AWS_ENDPOINT_URL", None)
        self._process = subprocess.Popen(
            self._kind.command(self.port),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SetupError(
                    f"the emulator ({self.kind}) exited with code {self._process.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}{self._kind.health_path}", timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SetupError(f"the emulator ({self.kind}) did not answer on {self.endpoint_url} within {timeout:.0f}s")

    def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=timeout)

    def reset(self) -> None:
        """Forget every resource (the emulator's own reset API)."""
        request = urllib.request.Request(f"{self.endpoint_url}{self._kind.reset_path}", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
