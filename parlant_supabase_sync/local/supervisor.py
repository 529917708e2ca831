"""The supervisor process of the PostgreSQL launcher (`postgres.py`).

Run as a script, `python -I <this file> <json config>`, never imported by the launcher: it must
work whatever `sys.path` the parent had, so it imports nothing but the standard library.

It runs one command (initdb, postgres, cp) with the config's uid/gid, its output appended to a
log file. Its stdin is a pipe from the parent: EOF (the parent stopped us, or died, even by
SIGKILL) means send the child `stop_signal`, SIGKILL it after `kill_after` seconds, then delete
the `remove` paths. On Linux the child also gets `PR_SET_PDEATHSIG`, so it goes when only the
supervisor is killed. Without a command (`argv` null) it only waits for EOF and then deletes
`remove`. The exit code is the child's (128 + signal number if it was killed).

Config keys: argv (list or null), uid/gid (null: stay who we are), log, cwd, env,
stop_signal, kill_after, remove.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from typing import Any

_PR_SET_PDEATHSIG = 1


class _Supervisor:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.parent = os.getpid()
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.libc: ctypes.CDLL | None = None
        if sys.platform.startswith("linux"):
            try:
                self.libc = ctypes.CDLL(None, use_errno=True)
            except OSError:
                self.libc = None

    def _child_setup(self) -> None:
        # Runs in the child between fork and exec.
        if self.libc is not None:
            self.libc.prctl(_PR_SET_PDEATHSIG, self.config["stop_signal"], 0, 0, 0)
            if os.getppid() != self.parent:
                os._exit(1)

    def start_child(self) -> None:
        cfg = self.config
        if cfg["argv"] is None:
            return
        kwargs: dict[str, Any] = {}
        if cfg["uid"] is not None:
            kwargs = {"user": cfg["uid"], "group": cfg["gid"], "extra_groups": []}
        # preexec_fn is safe here: the child is started before this process starts any thread.
        with open(cfg["log"], "ab") as log:
            self.proc = subprocess.Popen(
                cfg["argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=cfg["cwd"],
                env=cfg["env"], preexec_fn=self._child_setup, **kwargs,  # noqa: PLW1509
            )
        sys.stdout.write(f"{self.proc.pid}\n")
        sys.stdout.flush()

    def kill_all(self) -> None:
        """SIGKILL the child and its children (backends run in their own sessions)."""
        proc = self.proc
        if proc is None:
            return
        try:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as fh:
                children = [int(pid) for pid in fh.read().split()]
        except (OSError, ValueError):
            children = []
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            proc.kill()
        except OSError:
            pass

    def shutdown(self, *_: object) -> None:
        with self.lock:
            if self.stopping.is_set():
                return
            self.stopping.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(self.config["stop_signal"])
            except OSError:
                pass
            timer = threading.Timer(self.config["kill_after"], self.kill_all)
            timer.daemon = True
            timer.start()

    def watch_parent(self) -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        self.shutdown()

    def run(self) -> int:
        self.start_child()
        signal.signal(signal.SIGTERM, self.shutdown)
        signal.signal(signal.SIGINT, self.shutdown)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        threading.Thread(target=self.watch_parent, daemon=True).start()
        if self.proc is None:
            while not self.stopping.wait(1.0):
                pass
            rc = 0
        else:
            rc = self.proc.wait()
        # When the command ended on its own the parent still wants its log; it deletes the dir.
        if self.stopping.is_set():
            for path in self.config["remove"]:
                shutil.rmtree(path, ignore_errors=True)
        return rc if rc >= 0 else 128 - rc


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: supervisor.py <json config>\n")
        return 2
    return _Supervisor(json.loads(argv[0])).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
