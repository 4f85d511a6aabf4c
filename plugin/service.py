"""`sam2roto serve --stdio`: the service hosts talk to (PROTOCOL.md beside this file).

JSON-RPC 2.0 over stdin/stdout with LSP framing. A reader thread takes messages off
stdin so that a `$/cancelRequest` reaches a running `track`; requests are answered one
at a time, in order, on the main thread. A bad request gets an error answer; nothing a
host sends stops the service except `shutdown` or closing its stdin.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import queue
import shutil
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import numpy as np

PROTOCOL_VERSION = 1
log = logging.getLogger("sam2roto.service")

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
USER_ERROR, NO_SHOT, SHOT_IN_USE, REFUSED_PATH, WEIGHTS_MISSING = -32000, -32001, -32002, -32003, -32004
REQUEST_CANCELLED = -32800  # (as LSP numbers it)
# what a host that went away no longer waits for: they take minutes (tracking, writing mattes,
# downloading weights), and a new session would start them again
LONG_METHODS = ("track", "export", "shot/create", "shot/open")
DOWNLOAD_PROGRESS_S = 0.25  # the least time between two progress notifications of a download


class RpcError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


# -- framing ----------------------------------------------------------------------------

class FramingError(Exception):
    pass


MAX_MESSAGE_BYTES = 64 << 20  # (masks travel as files: a request is small)


def read_message(stream: BinaryIO) -> bytes | None:
    """One framed message body, or None at the end of the stream.

    A header that cannot be read raises FramingError, and the stream stays readable: the next
    call skips to the next Content-Length, also one that follows a bad message's body."""
    length, bad = None, None
    while True:
        line = stream.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            if bad is not None:
                raise FramingError(bad)
            if length is None:
                raise FramingError("a message header without Content-Length")
            break
        at = line.lower().rfind(b"content-length")  # (the last: what comes before may be a bad message's body)
        name, colon, value = line[at:].decode("ascii", "replace").partition(":") if at >= 0 else ("", "", "")
        if not colon or name.strip().lower() != "content-length":
            continue  # (another header, or what is left of a message that could not be framed)
        value = value.strip()
        length, bad = ((int(value), None) if value.isdigit() and len(value) <= 18  # (int() refuses 4,300 digits)
                       else (None, f"bad Content-Length {value[:40]!r}"))
        if length is not None and length > MAX_MESSAGE_BYTES:
            _skip(stream, length)
            raise FramingError(f"a message of {length} bytes, more than the {MAX_MESSAGE_BYTES} allowed")
    body = stream.read(length)
    if len(body) < length:
        return None
    return body


def _skip(stream: BinaryIO, length: int) -> None:
    """Read past the header and body of a message too large to take."""
    while stream.readline().strip():
        pass
    while length > 0 and (chunk := stream.read(min(length, 1 << 20))):
        length -= len(chunk)


class FdReader:
    """readline/read straight off a file descriptor. sys.stdin's buffered reader would do,
    but a thread blocked in it makes Python abort at exit ("could not acquire lock")."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = bytearray()  # (consumed from the front, in time linear in what is read)

    def _fill(self) -> bool:
        chunk = os.read(self.fd, 1 << 16)
        self.buffer += chunk
        return bool(chunk)

    def _take(self, n: int) -> bytes:
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def readline(self) -> bytes:
        searched = 0
        while (end := self.buffer.find(b"\n", searched)) < 0:
            searched = len(self.buffer)
            if not self._fill():
                return self._take(len(self.buffer))
        return self._take(end + 1)

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n and self._fill():
            pass
        return self._take(n)

    def unread(self, data: bytes) -> None:
        """Give bytes back, to be read again first."""
        self.buffer[:0] = data


def write_message(stream: BinaryIO, message: dict) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    stream.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    stream.flush()


# -- parameters -------------------------------------------------------------------------

def _number(value, name: str) -> float:
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(float(value)):
            raise ValueError
    except (ValueError, OverflowError):  # (OverflowError: an integer with hundreds of digits)
        raise RpcError(INVALID_PARAMS, f"{name} must be a number, got {_shown(value)}") from None
    return float(value)


def _integer(value, name: str, kind: str = "an integer") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RpcError(INVALID_PARAMS, f"{name} must be {kind}, got {_shown(value)}")
    return value


def _text(value, name: str) -> str:
    if not isinstance(value, str):
        raise RpcError(INVALID_PARAMS, f"{name} must be a string, got {_shown(value)}")
    return value


def _flag(value, name: str) -> bool:
    if not isinstance(value, bool):  # ("false" as a string would read as true)
        raise RpcError(INVALID_PARAMS, f"{name} must be true or false, got {_shown(value)}")
    return value


def _colour(value, name: str = "colour") -> list[float]:
    if not isinstance(value, list) or len(value) != 3:
        raise RpcError(INVALID_PARAMS, f"colour must be [r, g, b], numbers from 0 to 1, got {_shown(value)}")
    return [_number(v, name) for v in value]


def _optional(check, value, name: str):
    return None if value is None else check(value, name)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _frame(value, name: str = "frame") -> int:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        value = int(value)  # (1001.0: hosts such as OpenFX keep times as doubles)
    return _integer(value, name, "a frame number (an integer)")


def _name(value, name: str = "object") -> str:
    if not isinstance(value, str) or not value.strip():
        raise RpcError(INVALID_PARAMS, f"{name} must be a non-empty string, got {value!r}")
    return value


def _path(value, name: str) -> Path:
    if not isinstance(value, str) or not value:
        raise RpcError(INVALID_PARAMS, f"{name} must be a path (a string), got {value!r}")
    if "\0" in value:
        raise RpcError(INVALID_PARAMS, f"{name} {value!r} is not a path: it holds a NUL character")
    if not os.path.isabs(value):
        raise RpcError(REFUSED_PATH, f"{name} {value!r} is refused: paths must be absolute")
    return Path(os.path.normpath(value))


def _points(value, name: str) -> list[list[float]]:
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise RpcError(INVALID_PARAMS, f"{name} must be a list of [x, y] pairs, got {value!r}")
    return [[_number(x, name), _number(y, name)] for x, y in value]


# -- the service ------------------------------------------------------------------------

class Service:
    """The methods of PROTOCOL.md on one shot at a time."""

    def __init__(self, notify, device: str = "auto"):
        self.notify = notify  # notify(method, params): send a notification to the host
        self.device = device
        self.session = None
        self.cancel = threading.Event()  # set by the host's $/cancelRequest for the running request
        self.request_id = None  # the id of the request being answered

    def call(self, method: str, params) -> object:
        handler = METHODS.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, f"unknown method {method!r}; methods: {', '.join(METHODS)}")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "params must be an object (named parameters)")
        _check_names(handler, params, method)
        return handler(self, **params)

    @property
    def shot(self):
        if self.session is None:
            raise RpcError(NO_SHOT, "No shot is open: call shot/create or shot/open first.")
        return self.session

    # -- shots

    def initialize(self):
        from importlib.metadata import PackageNotFoundError, version

        from sam2_core.model.configs import CONFIGS

        try:
            ours = version("sam2roto")
        except PackageNotFoundError:
            ours = "unknown"
        return {"name": "sam2roto", "version": ours, "protocol": PROTOCOL_VERSION, "models": list(CONFIGS)}

    def shot_create(self, shot, source, colorspace=None, model=None, checkpoint=None, device=None, dtype="float32",
                    image_size=None, frame=None, missing_frames="error"):
        from sam2_core.shot.session import ShotSession
        from sam2_core.shot.shot import holds_other_files

        folder, footage = _path(shot, "shot"), _path(source, "source")
        frame = None if frame is None else _frame(frame)
        colorspace, model = _optional(_text, colorspace, "colorspace"), _optional(_text, model, "model")
        device, dtype = _optional(_text, device, "device"), _text(dtype, "dtype")
        image_size = _optional(_integer, image_size, "image_size")
        if missing_frames not in ("error", "hold"):
            raise RpcError(INVALID_PARAMS, f"missing_frames must be error or hold, got {_shown(missing_frames)}")
        if folder.exists() and not folder.is_dir():
            raise RpcError(REFUSED_PATH, f"shot {folder} is refused: it is a file; a shot needs a new or empty folder")
        if (folder / "shot.json").exists():
            raise RpcError(USER_ERROR, f"There is already a shot in {folder}: open it with shot/open.")
        if holds_other_files(folder):  # (what a creation cut off left is not in the way)
            raise RpcError(REFUSED_PATH, f"shot {folder} is refused: the folder holds other files; "
                                         "a shot needs a new or empty folder")
        if not footage.exists() and "%" not in source and "#" not in source:
            raise RpcError(USER_ERROR, f"Source not found: {footage}")
        checkpoint = None if checkpoint is None else _path(checkpoint, "checkpoint")
        return self._switch_to(folder, frame, lambda: ShotSession.create(
            folder, footage, colour={"colorspace": colorspace} if colorspace else {}, model_name=model,
            checkpoint=checkpoint, device=device or self.device, dtype=dtype, image_size=image_size,
            on_download=self._download_progress(), missing_frames=missing_frames))

    def shot_open(self, shot, device=None, frame=None, download=True, source=None, checkpoint=None,
                  other_weights=False):
        from sam2_core.shot.session import ShotSession

        folder = _path(shot, "shot")
        frame = None if frame is None else _frame(frame)
        device = _optional(_text, device, "device")
        moved_to = None if source is None else _path(source, "source")
        checkpoint = None if checkpoint is None else _path(checkpoint, "checkpoint")
        other_weights = _flag(other_weights, "other_weights")
        told = self._download_progress() if _flag(download, "download") else _refuse_download
        return self._switch_to(folder, frame, lambda: ShotSession.open(
            folder, device=device or self.device, on_download=told, moved_to=moved_to, checkpoint=checkpoint,
            other_weights=other_weights))

    def _download_progress(self):
        """For a shot whose official weights are downloaded first: `$/progress` notifications
        for the host (a few a second), and the host's cancel stops the download (what
        arrived is kept and resumed next time)."""
        request_id, last = self.request_id, [0.0]

        def told(file, done, total):
            if self.cancel.is_set():
                raise RpcError(REQUEST_CANCELLED, f"Cancelled while downloading {file}: the {done} bytes that "
                                                  "arrived are kept, and the download goes on from there next time.")
            now = time.monotonic()
            if now - last[0] >= DOWNLOAD_PROGRESS_S or done == total:
                last[0] = now
                self.notify("$/progress", {"id": request_id, "what": "download", "file": file, "done": done,
                                           "total": total})
        return told

    def _switch_to(self, folder: Path, frame: int | None, open_session) -> dict:
        """Make the shot in `folder` the open one and start encoding its frames in the
        background, nearest `frame` (the host's current frame) first. The shot open until
        now stays open if the new one fails (unless it is the same folder, which must be
        let go first)."""
        if self.session is not None and self.session.shot.folder.resolve() == folder.resolve():
            self._close()
        from sam2_core.shot.shot import DISPLAY_FOLDER

        new = open_session()
        self._close()
        self.session = new
        # the masks handed to hosts before (read as they were answered): gone, so that the
        # folder does not grow with every frame ever shown
        shutil.rmtree(new.shot.folder / DISPLAY_FOLDER, ignore_errors=True)
        new.encode_ahead(frame)
        return new.info()

    def shot_info(self):
        return self.shot.info()

    def shot_close(self):
        self._close()

    def _close(self):
        if self.session is not None:
            session, self.session = self.session, None
            session.close()

    # -- objects

    def object_add(self, object, colour=None):
        s = self.shot
        return s.object_info(s.add_object(_name(object), _optional(_colour, colour, "colour")))

    def object_rename(self, object, name):
        s = self.shot
        return s.object_info(s.rename_object(_name(object), _name(name, "name")))

    def object_remove(self, object):
        self.shot.remove_object(_name(object))

    # -- prompts and masks

    def prompt_add(self, object, frame, points=None, labels=None, box=None, mask=None):
        s = self.shot
        name, frame = _name(object), _frame(frame)
        if points is not None:
            points = _points(points, "points")
        if labels is not None and (not isinstance(labels, list) or any(v not in (0, 1) for v in labels)
                                   or any(isinstance(v, bool) for v in labels)):
            raise RpcError(INVALID_PARAMS, f"labels must be a list of 1 (object) and 0 (not), got {labels!r}")
        if box is not None:
            if not isinstance(box, list) or len(box) != 4:
                raise RpcError(INVALID_PARAMS, f"box must be [x0, y0, x1, y1], got {box!r}")
            box = [_number(v, "box") for v in box]
        if mask is not None:
            from sam2_core.shot.session import read_mask_file

            mask = read_mask_file(_path(mask, "mask"), frame)
        logits = s.add_prompt(name, frame, points=points, labels=labels, box=box, mask=mask)
        return self._answer(name.strip(), frame, logits)  # (the name as the shot keeps it)

    def prompt_undo(self):
        record, frame, logits = self.shot.undo()
        return self._answer(record.name, frame, logits)

    def mask_get(self, object, frame):
        name, frame = _name(object), _frame(frame)
        return self._answer(name, frame, self.shot.logits(name, frame))

    def _answer(self, name: str, frame: int, logits: np.ndarray | None) -> dict:
        """A frame's mask as an 8-bit PNG in the shot folder, for the host to show."""
        from sam2_core.media.cv_files import write_image
        from sam2_core.shot.shot import DISPLAY_FOLDER

        s = self.shot
        if logits is None:
            return {"object": name, "frame": frame, "mask": None, "area": 0, "score": None}
        record = s.object(name)
        folder = s.shot.folder / DISPLAY_FOLDER / str(record.id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{frame}.png"
        tmp = folder / f".{frame}.{os.getpid()}.png"
        try:
            write_image(tmp, (logits > 0).astype(np.uint8) * 255)
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise RpcError(USER_ERROR, f"Could not write the mask of {name!r}, frame {frame}, into {folder}: "
                                       f"{e.strerror}.") from None
        return {"object": name, "frame": frame, "mask": str(path.resolve()), "area": int((logits > 0).sum()),
                "score": s.object_score(name, frame)}

    # -- tracking and export

    def track(self, direction="both", objects=None, **span):
        s = self.shot
        start = None if span.get("from") is None else _frame(span["from"], "from")
        end = None if span.get("to") is None else _frame(span["to"], "to")
        if objects is not None and (not isinstance(objects, list) or not all(isinstance(o, str) for o in objects)):
            raise RpcError(INVALID_PARAMS, f"objects must be a list of object names, got {objects!r}")
        if direction not in ("forward", "backward", "both"):
            raise RpcError(INVALID_PARAMS, f"direction must be forward, backward or both, got {direction!r}")
        if self.cancel.is_set():  # cancelled while it waited: it does not run, nor plan
            return {"frames": 0, "cancelled": True}
        counts = [0, 0]  # frames run, of all to run (a frame two objects' runs pass counts in each)

        def progress(done, total):
            counts[:] = [done, total]

        request_id, tracked = self.request_id, set()
        for frame_number, _ in s.track(direction, start, end, objects, cancel=self.cancel, progress=progress):
            tracked.add(frame_number)
            self.notify("$/progress", {"id": request_id, "what": "track", "done": counts[0], "total": counts[1],
                                       "frame": frame_number})
        # (a cancel that came after the last frame came too late to stop anything)
        return {"frames": len(tracked),
                "cancelled": self.cancel.is_set() and (counts[1] == 0 or counts[0] < counts[1])}

    def export(self, out, format="png16", shapes=False, shape_tolerance=None, force=False, cleanup=None):
        s = self.shot
        folder = _path(out, "out")  # (the shot checks that it keeps its mattes apart from its own files)
        if cleanup is not None and (not isinstance(cleanup, dict)
                                    or not all(isinstance(v, dict) for v in cleanup.values())):
            raise RpcError(INVALID_PARAMS, "cleanup must map object names to settings, e.g. "
                                           '{"car": {"grow": 2, "feather": 1.5}}')
        tolerance = None if shape_tolerance is None else _number(shape_tolerance, "shape_tolerance")
        format, shapes, force = _text(format, "format"), _flag(shapes, "shapes"), _flag(force, "force")
        from sam2_core.mattes.export import FORMATS

        if format not in FORMATS:
            raise RpcError(INVALID_PARAMS, f"format must be one of {', '.join(FORMATS)}; got {format!r}")
        kept = {o.name: dict(o.cleanup) for o in s.objects}
        try:
            for name, settings in (cleanup or {}).items():
                s.set_cleanup(_name(name), settings)
            return s.export(folder, format, shapes=shapes, shape_tolerance=tolerance, force=force)
        except BaseException:
            if cleanup:  # a failed export keeps the clean-up settings the shot had
                for o in s.objects:
                    o.cleanup = kept.get(o.name, o.cleanup)
                s.shot.save()
            raise

    def shutdown(self):
        self._close()


METHODS = {
    "initialize": Service.initialize,
    "shot/create": Service.shot_create, "shot/open": Service.shot_open, "shot/info": Service.shot_info,
    "shot/close": Service.shot_close,
    "object/add": Service.object_add, "object/rename": Service.object_rename, "object/remove": Service.object_remove,
    "prompt/add": Service.prompt_add, "prompt/undo": Service.prompt_undo, "mask/get": Service.mask_get,
    "track": Service.track, "export": Service.export, "shutdown": Service.shutdown,
}
SPAN_PARAMS = {"from", "to"}  # `track` names that are Python keywords


def _check_names(handler, params: dict, method: str) -> None:
    sig = inspect.signature(handler)
    names = [n for n in sig.parameters if n not in ("self", "span")]
    allowed = set(names) | (SPAN_PARAMS if method == "track" else set())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise RpcError(INVALID_PARAMS, f"{method}: unknown parameter(s) {', '.join(unknown)}; "
                                       f"it takes {', '.join(sorted(allowed)) or 'none'}")
    missing = [n for n in names if sig.parameters[n].default is inspect.Parameter.empty and n not in params]
    if missing:
        raise RpcError(INVALID_PARAMS, f"{method}: missing parameter(s) {', '.join(missing)}")


def _error_code(e: Exception) -> int | None:
    """The JSON-RPC code of an error the user can act on; None for a bug."""
    from sam2_core.cache.store import CacheError
    from sam2_core.mattes.writers import ExportError
    from sam2_core.model.checkpoint import CheckpointError
    from sam2_core.model.weights import WeightsError
    from sam2_core.shot import ManifestError, ShotInUseError
    from sam2_core.shot.session import ExportRefused

    if isinstance(e, RpcError):
        return e.code
    if isinstance(e, ShotInUseError):
        return SHOT_IN_USE
    if isinstance(e, ExportRefused):  # (the footage's own folder)
        return REFUSED_PATH
    if isinstance(e, (ValueError, KeyError, IndexError, CacheError, ExportError, CheckpointError, WeightsError,
                      ManifestError, OSError)):  # (OSError: a path the system refuses, a disk gone)
        return USER_ERROR
    return None


def _refuse_download(file, _done, _total):
    """`shot/open` with `"download": false`: a host that waits for the answer (no progress
    shown) learns at once that the weights must come first."""
    raise RpcError(WEIGHTS_MISSING, f"The weights of the shot's model ({file}) are not downloaded yet: open the "
                                    "shot allowing the download (it tells how far it is).")


# -- the loop ---------------------------------------------------------------------------

class Server:
    def __init__(self, inp: BinaryIO, out: BinaryIO, device: str = "auto"):
        self.inp, self.out = inp, out
        self._send_lock = threading.Lock()
        self.service = Service(self.notify, device)
        self.inbox: queue.Queue = queue.Queue()
        self._cancel_lock = threading.Lock()  # (guards the five below, shared with the reader)
        self.running_id = None  # the id of the request being answered
        self.running_method = None
        self.queued: Counter = Counter()  # the ids of the requests waiting in the inbox
        # cancels of requests still queued: they start cancelled (a track then does nothing)
        self.cancelled_early: set = set()
        # the host went away: a track or export stops (or does not start); the quick requests
        # it sent before (a click, a rename) are still carried out
        self.input_closed = False

    def send(self, message: dict) -> None:
        with self._send_lock:
            try:
                write_message(self.out, message)
            except OSError:  # (a host gone altogether: what it asked is still done, unanswered)
                if not self.input_closed:
                    raise

    def notify(self, method: str, params: dict) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def _reader(self) -> None:
        """Messages off stdin; a cancel for the running request acts at once."""
        try:
            self._read_messages()
        finally:  # (the end of input, or a reader that failed: the service must not wait for ever)
            with self._cancel_lock:
                self.input_closed = True
                if self.running_method in LONG_METHODS:
                    self.service.cancel.set()  # (a track stops at its next frame, keeping what it did)
            self.inbox.put(("eof", None))

    def _read_messages(self) -> None:
        while True:
            try:
                body = read_message(self.inp)
            except FramingError as e:
                self.inbox.put(("error", str(e)))
                continue
            if body is None:
                return
            try:
                message = json.loads(body)
            except (ValueError, RecursionError) as e:  # (RecursionError: JSON nested thousands deep)
                self._read_on_from_next_header(body)
                self.inbox.put(("error", f"not JSON: {e}"))
                continue
            if isinstance(message, dict) and message.get("method") == "$/cancelRequest":
                target = (message.get("params") or {}).get("id") if isinstance(message.get("params"), dict) else None
                if target is not None and _is_id(target):
                    self._cancel(target)
                continue
            with self._cancel_lock:
                if (request_id := _cancellable_id(message)) is not None:
                    self.queued[request_id] += 1
                self.inbox.put(("message", message))

    def _read_on_from_next_header(self, body: bytes) -> None:
        """A body that is not JSON may be a message whose Content-Length said more than it
        has, followed by the start of the next message: that start is read again."""
        text = body.decode("utf-8", "surrogateescape")  # (bytes cut mid-character come back as they were)
        try:
            _, end = json.JSONDecoder().raw_decode(text, len(text) - len(text.lstrip()))
        except (ValueError, RecursionError):
            return
        rest = text[end:].encode("utf-8", "surrogateescape")
        if rest.strip() and hasattr(self.inp, "unread"):
            self.inp.unread(rest)

    def _cancel(self, request_id) -> None:
        with self._cancel_lock:
            if request_id == self.running_id:
                self.service.cancel.set()
            elif self.queued[request_id] > 0:
                self.cancelled_early.add(request_id)
            # (else a cancel of a request answered already, or never sent: nothing to stop)

    def _start(self, message) -> None:
        """The message leaves the inbox and is answered now."""
        with self._cancel_lock:
            self.running_id = request_id = _cancellable_id(message)
            self.running_method = message.get("method") if isinstance(message, dict) else None
            if request_id is not None:
                self.queued[request_id] -= 1
                if self.queued[request_id] <= 0:
                    del self.queued[request_id]
            self.service.cancel.clear()
            if request_id in self.cancelled_early or (self.input_closed and self.running_method in LONG_METHODS):
                self.cancelled_early.discard(request_id)
                self.service.cancel.set()

    def _finish(self) -> None:
        with self._cancel_lock:
            self.running_id = self.running_method = None

    def run(self) -> None:
        threading.Thread(target=self._reader, name="sam2roto-stdin", daemon=True).start()
        try:
            while True:
                kind, item = self.inbox.get()
                if kind == "eof":  # (after every request that came before it)
                    return
                if kind == "error":
                    self.send(_error(None, PARSE_ERROR, f"Unreadable message: {item}"))
                    continue
                self._start(item)
                try:
                    if self.handle(item) == "shutdown":
                        return
                finally:
                    self._finish()
        finally:
            self.service.shutdown()

    def handle(self, message) -> str | None:
        valid = isinstance(message, dict) and message.get("jsonrpc") == "2.0" and isinstance(message.get("method"), str)
        if not valid:
            self.send(_error(message.get("id") if isinstance(message, dict) else None, INVALID_REQUEST,
                             "Not a JSON-RPC 2.0 request (it needs \"jsonrpc\": \"2.0\" and a \"method\")"))
            return None
        if not _is_id(message.get("id")):
            self.send(_error(None, INVALID_REQUEST, "A request's id must be a string, a number or null"))
            return None
        method, request_id, is_request = message["method"], message.get("id"), "id" in message
        if method.startswith("$/"):  # (notifications the service does not use; a request among them gets told)
            if is_request:
                self.send(_error(request_id, METHOD_NOT_FOUND, f"Unknown method {method!r}"))
            return None
        params = message.get("params")
        if self.service.cancel.is_set() and method != "track":  # (a track answers that it did not run)
            if is_request:
                self.send(_error(request_id, REQUEST_CANCELLED, f"{method} was cancelled before it started: "
                                                                "nothing was done."))
            return None
        try:
            self.service.request_id = request_id
            result = self.service.call(method, params)
        except Exception as e:  # the service never dies from a bad request
            code = _error_code(e)
            if code is None:
                log.exception("sam2roto service: %s failed", method)
                code, text = INTERNAL_ERROR, f"{method} failed: {type(e).__name__}: {e}"
            else:
                text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
            if is_request:
                self.send(_error(request_id, code, text))
            return None
        if is_request:
            self.send({"jsonrpc": "2.0", "id": request_id, "result": result})
        return "shutdown" if method == "shutdown" else None


def _is_id(value) -> bool:
    """A JSON-RPC id: a string, a number or null (and nothing the service cannot key by or
    write back as JSON: NaN and infinity are not JSON)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or (isinstance(value, (str, int)) and not isinstance(value, bool))


def _cancellable_id(message) -> object:
    """The id a `$/cancelRequest` can name: a request's, not null's."""
    request_id = message.get("id") if isinstance(message, dict) else None
    return request_id if request_id is not None and _is_id(request_id) else None


def _error(request_id, code: int, message: str) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def serve_stdio(device: str = "auto") -> int:
    """Serve on this process's stdin/stdout. Anything else that prints goes to stderr,
    so that stdout carries protocol messages only."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr
    Server(FdReader(sys.stdin.fileno()), out, device).run()
    return 0
