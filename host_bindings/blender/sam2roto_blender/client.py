"""A JSON-RPC 2.0 client for the sam2roto service, spoken over a child process's stdin/stdout
with Language Server Protocol framing (`Content-Length: N` header, blank line, N bytes of JSON).

Blender must never wait on the core: a reader thread parses what the service writes into a
queue, and `poll()` hands the messages to their callbacks on the caller's thread (Blender's
main thread, from a `bpy.app.timers` function). `call()` is the blocking form for scripts,
tests and short set-up steps.

Pure Python, no bpy: it is tested outside Blender.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

PROTOCOL = 1
NO_SHOT, SHOT_IN_USE, REFUSED_PATH, WEIGHTS_MISSING, CANCELLED = -32001, -32002, -32003, -32004, -32800
_EOF = object()  # what the reader thread queues when the service's stdout closes


class ServiceError(Exception):
    """An error the service answered (a JSON-RPC error), or a service that stopped or stalled."""

    def __init__(self, message: str, code: int | None = None, method: str = "", data=None):
        super().__init__(message)
        self.message, self.code, self.method, self.data = message, code, method, data


class ServiceStopped(ServiceError):
    """The service process is gone; `message` ends with the last lines it logged."""


@dataclass
class _Pending:
    method: str
    on_result: Callable | None
    on_error: Callable | None
    sent: float


def encode_message(message: dict) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read_message(stream) -> dict | None:
    """The next framed message from a binary stream, or None at its end."""
    length = None
    while True:
        line = stream.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            if length is None:
                continue  # stray blank line between messages
            break
        name, _, value = line.decode("ascii", "replace").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = stream.read(length)
    if len(body) < length:
        return None
    return json.loads(body.decode("utf-8"))


class ServiceClient:
    """One service process and the requests in flight to it.

    on_notification(method, params) receives what the service sends unasked ($/progress).
    """

    def __init__(self, command: list[str], *, cwd: str | None = None, env: dict | None = None,
                 on_notification: Callable[[str, dict], None] | None = None, log_lines: int = 200):
        self.command = list(command)
        self.cwd, self.env = cwd, env
        self.on_notification = on_notification
        self._log = collections.deque(maxlen=log_lines)
        self._inbox: queue.Queue = queue.Queue()
        self._pending: dict[int, _Pending] = {}
        self._next_id = 1
        self._write_lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._stopped: ServiceStopped | None = None

    # -- the process ------------------------------------------------------------------------

    def start(self) -> ServiceClient:
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0
        try:
            self._proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, cwd=self.cwd, env=self.env, creationflags=flags)
        except OSError as e:
            raise ServiceStopped(f"Could not start the SAM 2 core ({' '.join(self.command)}): {e}. "
                                 "Check the core environment in the add-on's preferences.") from e
        threading.Thread(target=self._read_stdout, name="sam2roto-service-out", daemon=True).start()
        threading.Thread(target=self._read_stderr, name="sam2roto-service-log", daemon=True).start()
        return self

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._stopped is None

    @property
    def busy(self) -> bool:
        """Requests still waiting for their answer."""
        return bool(self._pending)

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(list(self._log)[-lines:])

    def _read_stdout(self):
        stream = self._proc.stdout
        try:
            while (message := read_message(stream)) is not None:
                self._inbox.put(message)
        except (ValueError, OSError) as e:  # garbage on stdout: the service is not speaking the protocol
            self._log.append(f"[sam2roto client] unreadable service output: {e}")
        self._inbox.put(_EOF)

    def _read_stderr(self):
        for raw in iter(self._proc.stderr.readline, b""):
            self._log.append(raw.decode("utf-8", "replace").rstrip())

    # -- sending ----------------------------------------------------------------------------

    def _write(self, message: dict) -> None:
        if not self.alive:
            raise self._stopped or ServiceStopped("The SAM 2 core is not running.")
        try:
            with self._write_lock:
                self._proc.stdin.write(encode_message(message))
                self._proc.stdin.flush()
        except OSError as e:
            raise ServiceStopped(f"The SAM 2 core stopped listening ({e}).\n{self.log_tail()}") from e

    def send(self, method: str, params: dict | None = None, on_result: Callable | None = None,
             on_error: Callable | None = None) -> int:
        """Sends a request; `on_result(result)` or `on_error(ServiceError)` runs in a later `poll()`.
        Returns the request's id (for `cancel`)."""
        request_id = self._next_id
        self._next_id += 1
        self._pending[request_id] = _Pending(method, on_result, on_error, time.monotonic())
        try:
            self._write({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}})
        except ServiceError:
            del self._pending[request_id]
            raise
        return request_id

    def notify(self, method: str, params: dict | None = None) -> None:
        self._write({"jsonrpc": "2.0", "method": method, "params": params or {}})

    def cancel(self, request_id: int) -> None:
        """Asks the service to stop a long request (track); its answer still comes, saying so."""
        if request_id in self._pending:
            self.notify("$/cancelRequest", {"id": request_id})

    # -- receiving --------------------------------------------------------------------------

    def poll(self, wait: float = 0.0) -> int:
        """Dispatches every message that has arrived (waiting up to `wait` seconds for the first).
        Returns how many were handled."""
        handled = 0
        while True:
            try:
                message = self._inbox.get(timeout=wait) if wait > 0 and not handled else self._inbox.get_nowait()
            except queue.Empty:
                return handled
            handled += 1
            if message is _EOF:
                self._on_exit()
                return handled
            self._dispatch(message)

    def _dispatch(self, message: dict) -> None:
        if "id" in message and message.get("id") in self._pending and "method" not in message:
            pending = self._pending.pop(message["id"])
            if "error" in message:
                err = message["error"] or {}
                error = ServiceError(str(err.get("message", "unknown error")), err.get("code"), pending.method,
                                     err.get("data"))
                if pending.on_error:
                    pending.on_error(error)
            elif pending.on_result:
                pending.on_result(message.get("result"))
        elif "method" in message and "id" not in message:
            if self.on_notification:
                self.on_notification(message["method"], message.get("params") or {})
        else:
            self._log.append(f"[sam2roto client] ignored message: {json.dumps(message)[:200]}")

    def _on_exit(self) -> None:
        code = self._proc.wait(timeout=5) if self._proc else None
        time.sleep(0.05)  # let the log thread take the last lines
        self._stopped = ServiceStopped(f"The SAM 2 core stopped (exit code {code}). Its last words:\n"
                                       f"{self.log_tail() or '(nothing)'}")
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if p.on_error:
                p.on_error(self._stopped)

    # -- blocking use ------------------------------------------------------------------------

    def call(self, method: str, params: dict | None = None, timeout: float = 60.0):
        """Sends a request and waits for its answer; raises ServiceError on an error answer."""
        box: dict = {}
        request_id = self.send(method, params, lambda r: box.setdefault("result", r),
                               lambda e: box.setdefault("error", e))
        deadline = time.monotonic() + timeout
        while "result" not in box and "error" not in box:
            if self._stopped is not None and request_id in self._pending:
                raise self._stopped
            left = deadline - time.monotonic()
            if left <= 0:
                # (not left to run later behind other work: a rename the artist saw fail must not happen)
                self.cancel(request_id)
                self._pending.pop(request_id, None)
                raise ServiceError(f"The SAM 2 core did not answer {method} within {timeout:.0f} s, so it was "
                                   "called off (if it had started, it may still finish).", None, method)
            self.poll(wait=min(left, 0.1))
        if "error" in box:
            raise box["error"]
        return box["result"]

    def close(self, timeout: float = 10.0) -> None:
        """Asks the service to shut down, then makes sure the process is gone."""
        if self._proc is None:
            return
        if self.alive:
            try:
                self.call("shutdown", {}, timeout=timeout)
            except ServiceError:
                pass
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def core_python(env_dir: str) -> str:
    """The Python interpreter of a core environment (a virtual environment folder)."""
    if sys.platform == "win32":
        return os.path.join(env_dir, "Scripts", "python.exe")
    return os.path.join(env_dir, "bin", "python")


def service_command(env_dir: str) -> list[str]:
    return [core_python(env_dir), "-m", "sam2roto", "serve", "--stdio"]
