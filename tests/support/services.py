"""Run wasched services as real child processes, the way production does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.waiting import eventually_sync
from wasched.cli.servers import die_with_parent


@dataclass
class ServiceProcess:
    service: str
    env: dict[str, str]
    log_path: Path
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    module: str | None = None
    """What `python -m` runs; default `wasched.<service>` (tests may wrap a service)."""

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module or f"wasched.{self.service}", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
            preexec_fn=die_with_parent,  # a killed pytest leaves no service behind
        )
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, text: str, timeout: float = 20.0) -> None:
        eventually_sync(
            lambda: text in self.log() or self._died(),
            timeout,
            what=f"{text!r} in {self.service} log",
        )
        assert text in self.log(), (
            f"{self.service} exited before logging {text!r}:\n{self.log()[-3000:]}"
        )

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None:
            return 0
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait(5)
            raise AssertionError(f"{self.service} did not stop within {timeout}s") from None

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)
