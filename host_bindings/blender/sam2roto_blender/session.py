"""The SAM 2 core as this Blender session sees it: one service process, the shot it has open, the
requests in flight and what the artist is told about them.

Answers are read by a `bpy.app.timers` function (`_poll_timer`), never by a waiting loop, so
Blender stays responsive while the core works. Scripts and tests, which run without Blender's
event loop, pump the same function with `wait()`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import bpy

from . import client as rpc

POLL_SECONDS = 0.05
START_TIMEOUT = 120.0  # starting the core imports torch, and a first shot loads the model


class Session:
    def __init__(self):
        self.client: rpc.ServiceClient | None = None
        self.env_dir = ""
        self.shot: dict | None = None  # the service's shot info for the open shot
        self.masks: dict[tuple[str, int], str | None] = {}  # (object, source frame) -> mask PNG
        self.scores: dict[tuple[str, int], float | None] = {}
        self.track_id: int | None = None
        self.opening_id: int | None = None  # a shot being made or opened (maybe downloading weights)
        self.opening_downloads = True  # whether that opening may download weights (minutes) or not (seconds)
        self.import_id: int | None = None  # an Import Results whose export the core is writing
        self.progress: tuple[int, int, int] | None = None  # done, total, frame
        self.status = ""
        self.last_error = ""
        self._stop_told: Exception | None = None  # the core's stop the artist has been told of
        self.on_mask: list[Callable[[str, int, str | None], None]] = []  # called for each frame answer

    # -- the process ------------------------------------------------------------------------

    def ensure_started(self, env_dir: str, wait: bool = True) -> rpc.ServiceClient:
        """The running service of the core environment `env_dir` (started and greeted if needed).
        wait=False: started without waiting for its greeting (it imports torch: seconds); what is
        sent meanwhile waits behind the greeting in the core, and a core of another version is
        reported and stopped when the greeting comes."""
        if self.client is not None and self.client.alive and self.env_dir == env_dir:
            return self.client
        self.stop()
        python = rpc.core_python(env_dir) if env_dir else ""
        if not env_dir or not os.path.isfile(python):
            raise rpc.ServiceError(f"No SAM 2 core environment at {env_dir or '(not set)'}: run the installer "
                                   "(installers/blender_extension.sh), or set the core environment folder in "
                                   "Edit > Preferences > Add-ons > SAM 2 Roto.")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("PYTHONHOME", None)  # Blender's own Python must not leak into the core's
        env.pop("PYTHONPATH", None)
        client = rpc.ServiceClient(rpc.service_command(env_dir), env=env, on_notification=self._on_notification)
        client.start()
        if not wait:
            client.send("initialize", {}, lambda info: self._greeted(client, env_dir, info), self.report_error)
            self.client, self.env_dir = client, env_dir
            self._keep_polling()
            return client
        try:
            info = client.call("initialize", {}, timeout=START_TIMEOUT)
        except rpc.ServiceError:
            client.close(timeout=2)
            raise
        problem = _greeting_problem(env_dir, info)
        if problem:
            client.close(timeout=2)
            raise rpc.ServiceError(problem)
        self.client, self.env_dir = client, env_dir
        return client

    def _greeted(self, client: rpc.ServiceClient, env_dir: str, info: dict) -> None:
        problem = _greeting_problem(env_dir, info)
        if problem and client is self.client:
            self.report_error(problem)
            self.stop()

    def stop(self) -> None:
        if self.client is not None:
            self.client.close(timeout=5)
        if bpy.app.timers.is_registered(_poll_timer):
            bpy.app.timers.unregister(_poll_timer)  # bpy as a module crashes at exit with a timer left
        self.forget_core()
        self.progress = None
        self.masks.clear()
        self.scores.clear()

    @property
    def tracking(self) -> bool:
        return self.track_id is not None

    def is_open(self, shot) -> bool:
        """Whether a scene's shot is the one open in the core."""
        return (self.shot is not None and bool(shot.folder)
                and os.path.realpath(self.shot["shot"]) == os.path.realpath(bpy.path.abspath(shot.folder)))

    @property
    def opening(self) -> bool:
        return self.opening_id is not None

    @property
    def importing(self) -> bool:
        return self.import_id is not None

    @property
    def busy(self) -> bool:
        return self.client is not None and self.client.busy

    # -- requests ---------------------------------------------------------------------------

    def call(self, method: str, params: dict, timeout: float = 60.0):
        """A short request the caller waits for (shot and object bookkeeping, no model work)."""
        if self.client is None:
            raise rpc.ServiceError("The SAM 2 core is not running: create or open a shot first.")
        result = self.client.call(method, params, timeout=timeout)
        self._keep_polling()
        return result

    def request(self, method: str, params: dict, on_result: Callable | None = None,
                on_error: Callable | None = None) -> int:
        """A request answered later, on Blender's main thread, from the timer."""
        if self.client is None:
            raise rpc.ServiceError("The SAM 2 core is not running: create or open a shot first.")
        request_id = self.client.send(method, params, on_result, on_error or self.report_error)
        self._keep_polling()
        return request_id

    def release_shot(self) -> None:
        """Another .blend opens: the core lets go of its shot (stopping a track at its next
        frame, keeping what it did), so that another Blender or the command line may open
        it. The core keeps running for the next file's shot."""
        if self.client is None or not self.client.alive or (self.shot is None and not self.opening):
            return
        try:
            if self.tracking:
                self.client.cancel(self.track_id)
            self.client.send("shot/close", {}, None, lambda _error: None)  # (an error: nothing was open)
        except rpc.ServiceError:  # (the core is gone: so is its hold on the shot)
            pass
        self.shot = None
        self.masks.clear()
        self.scores.clear()

    def cancel_opening(self) -> None:
        """Stops the shot being opened from downloading the model's weights (what arrived is
        kept for the next try); a shot whose weights are there opens regardless."""
        if self.opening_id is not None and self.client is not None:
            try:
                self.client.cancel(self.opening_id)
            except rpc.ServiceError:  # (the core is gone: the request's end says so)
                return
            self.status = "Cancelling..."

    def finish_opening(self, timeout: float = START_TIMEOUT) -> None:
        """Waits for a shot opening that downloads nothing (the core starting, the model
        loading: seconds), pumping the core's answers meanwhile."""
        deadline = time.monotonic() + timeout
        while self.opening and not self.opening_downloads and self.client is not None:
            if time.monotonic() > deadline:
                raise rpc.ServiceError(f"The shot is still opening after {timeout:.0f} s: try again in a moment.")
            self.client.poll(wait=POLL_SECONDS)

    def frame_answer(self, answer: dict) -> None:
        """Records a mask the service answered and tells the overlay."""
        key = (answer["object"], int(answer["frame"]))
        self.masks[key] = answer.get("mask")
        self.scores[key] = answer.get("score")  # None where the frame is not tracked
        for listener in self.on_mask:
            listener(key[0], key[1], answer.get("mask"))
        _redraw_clip_editors()

    def _on_notification(self, method: str, params: dict) -> None:
        if method == "$/progress" and params.get("what") == "download" and params.get("id") == self.opening_id:
            done, total = int(params.get("done", 0)), params.get("total")
            file = str(params.get("file", ""))
            self.status = (f"Checking and loading {file}..." if total and done >= int(total)
                           else _download_status(file, done, total))
            if total:
                _progress_update((done, int(total), 0))
            _redraw_clip_editors()
        elif method == "$/progress" and self.tracking:
            self.progress = (int(params.get("done", 0)), int(params.get("total", 0)), int(params.get("frame", 0)))
            _progress_update(self.progress)
            _redraw_clip_editors()

    def forget_core(self) -> None:
        """The core stopped: nothing of it is open, tracking or opening any more."""
        if self.tracking or self.opening:
            _progress_end()
        self.client, self.shot, self.track_id, self.opening_id, self.import_id = None, None, None, None, None

    def report_error(self, error: Exception | str) -> None:
        """Tells the artist (status bar popup in the UI, stderr always) what went wrong."""
        if isinstance(error, rpc.ServiceStopped):
            if error is self._stop_told:  # (each request in flight ends with the same stop: told once)
                return
            self._stop_told = error
            self.forget_core()
        message = error.message if isinstance(error, rpc.ServiceError) else str(error)
        self.last_error = message
        print(f"SAM 2 Roto: {message}", file=sys.stderr)
        if not bpy.app.background:
            def draw(menu, _context):
                for line in message.splitlines()[:12]:
                    menu.layout.label(text=line)
            bpy.context.window_manager.popup_menu(draw, title="SAM 2 Roto", icon="ERROR")
        _redraw_clip_editors()

    # -- the timer --------------------------------------------------------------------------

    def _keep_polling(self) -> None:
        if not bpy.app.timers.is_registered(_poll_timer):
            bpy.app.timers.register(_poll_timer, first_interval=POLL_SECONDS, persistent=True)

    def poll(self) -> float | None:
        """Handles what the service sent; the timer's interval, or None when nothing is in flight."""
        if self.client is None:
            return None
        self.client.poll()
        return POLL_SECONDS if (self.client is not None and self.client.busy) else None

    def wait(self, timeout: float | None = 600.0) -> None:
        """Pumps answers until no request is in flight (for scripts and tests: no event loop
        there); None: for as long as the core works (it answers, or stops)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.client is not None and self.client.busy:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the SAM 2 core is still working after {timeout:.0f} s")
            self.client.poll(wait=POLL_SECONDS)


SESSION = Session()


def _greeting_problem(env_dir: str, info: dict) -> str:
    """What is wrong with the core's answer to `initialize` (empty: nothing)."""
    if info.get("protocol") != rpc.PROTOCOL:
        return (f"The SAM 2 core at {env_dir} speaks protocol {info.get('protocol')}, this add-on speaks "
                f"{rpc.PROTOCOL}: install matching versions.")
    return ""


def _poll_timer():
    try:
        return SESSION.poll()
    except Exception as e:  # a timer that raises is dropped for good: report and keep going
        SESSION.report_error(f"internal error while reading the core's answers: {e!r}")
        return POLL_SECONDS


def _download_status(file: str, done: int, total) -> str:
    mb = 1e6
    if total:
        return f"Downloading {file}: {100 * done // int(total)}% ({done / mb:.0f} of {int(total) / mb:.0f} MB)"
    return f"Downloading {file}: {done / mb:.0f} MB"


def _redraw_clip_editors() -> None:
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type == "CLIP_EDITOR":
                area.tag_redraw()


def _progress_update(progress: tuple[int, int, int]) -> None:
    done, total, _ = progress
    wm = bpy.context.window_manager
    if not bpy.app.background and total:
        wm.progress_update(int(100 * done / total))


def progress_begin() -> None:
    if not bpy.app.background:
        bpy.context.window_manager.progress_begin(0, 100)


def _progress_end() -> None:
    if not bpy.app.background:
        bpy.context.window_manager.progress_end()


progress_end = _progress_end
