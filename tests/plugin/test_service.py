"""`sam2roto serve --stdio` as a host sees it: a child process speaking JSON-RPC 2.0 with
LSP framing, driven through a whole shot, and fed bad requests that it must survive."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import CPU_TEST_INPUT_SIZE
from tests.sam2_core.tracking.conftest import write_png_clip

NAME = "sam2.1_hiera_tiny"
FIRST = 1001
N = 5
ROOT = Path(__file__).resolve().parents[2]


class Client:
    """A host's end of the pipe: requests with ids, notifications collected on the side."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "sam2roto", "serve", "--stdio", "--device", "cpu"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.next_id = 0
        self.notifications = []
        self.lock = threading.Lock()

    def send_raw(self, body: bytes) -> None:
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def send(self, message: dict) -> None:
        self.send_raw(json.dumps(message).encode())

    def read(self) -> dict:
        length = None
        while True:
            line = self.proc.stdout.readline()
            assert line, "the service closed its stdout: " + self.proc.stderr.read().decode()[-2000:]
            if line.strip() == b"":
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return json.loads(self.proc.stdout.read(length))

    def answer(self, request_id):
        while True:
            message = self.read()
            if "id" in message and message.get("method") is None and message["id"] == request_id:
                return message
            self.notifications.append(message)

    def request(self, method, params=None, *, wait=True):
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.answer(self.next_id) if wait else self.next_id

    def call(self, method, params=None):
        reply = self.request(method, params)
        assert "result" in reply, reply
        return reply["result"]

    def error(self, method, params=None) -> dict:
        reply = self.request(method, params)
        assert "error" in reply, reply
        return reply["error"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_png_clip(tmp_path_factory.mktemp("clip"), N, FIRST)


@pytest.fixture
def client():
    c = Client()
    yield c
    c.close()


def new_shot(client, clip, folder, official_checkpoint):
    return client.call("shot/create", {"shot": str(folder), "source": str(clip), "model": NAME,
                                       "checkpoint": str(official_checkpoint(NAME)), "device": "cpu",
                                       "image_size": CPU_TEST_INPUT_SIZE})


def read_mask(answer) -> np.ndarray:
    return cv2.imread(answer["mask"], cv2.IMREAD_UNCHANGED)


def test_a_whole_shot_through_the_service(client, clip, official_checkpoint, tmp_path):
    hello = client.call("initialize", {})
    assert hello["protocol"] == 1 and NAME in hello["models"]
    info = new_shot(client, clip, tmp_path / "shot", official_checkpoint)
    assert info["frames"] == [FIRST, FIRST + N - 1] and info["size"] == [320, 240] and info["objects"] == []

    assert client.call("object/add", {"object": "ball", "colour": [1, 0, 0]})["colour"] == [1, 0, 0]
    one = client.call("prompt/add", {"object": "ball", "frame": FIRST, "points": [[60, 120]], "labels": [1]})
    mask_one = read_mask(one)
    assert mask_one.shape == (240, 320) and one["area"] == int((mask_one > 0).sum())
    assert Path(one["mask"]).is_relative_to(tmp_path / "shot")
    two = client.call("prompt/add", {"object": "ball", "frame": FIRST, "points": [[20, 20]], "labels": [0]})
    assert two["frame"] == FIRST and isinstance(two["score"], float)
    undone = client.call("prompt/undo", {})
    assert (undone["object"], undone["frame"]) == ("ball", FIRST)
    assert np.array_equal(read_mask(undone), mask_one)  # the answer before the undone click

    rough = np.zeros((240, 320), np.uint8)
    cv2.rectangle(rough, (210, 20), (270, 80), 255, -1)
    cv2.imwrite(str(tmp_path / "rough.png"), rough)
    square = client.call("prompt/add", {"object": "square", "frame": FIRST, "mask": str(tmp_path / "rough.png")})
    assert ((read_mask(square) > 0) == (rough > 0)).mean() > 0.97

    request = client.request("track", {}, wait=False)
    result = client.answer(request)["result"]
    progress = [n["params"] for n in client.notifications if n["method"] == "$/progress"]
    assert result == {"frames": N, "cancelled": False}
    assert [p["frame"] for p in progress] == [FIRST + i for i in range(N)]
    assert progress[-1]["done"] == progress[-1]["total"] == N and progress[0]["id"] == request

    later = client.call("mask/get", {"object": "ball", "frame": FIRST + 3})
    assert read_mask(later).shape == (240, 320)
    # a correction re-tracks from its frame to the end, nothing before it
    client.call("prompt/add", {"object": "ball", "frame": FIRST + 2, "points": [[5, 5]], "labels": [0]})
    assert client.call("track", {}) == {"frames": 3, "cancelled": False}

    out = tmp_path / "mattes"
    exported = client.call("export", {"out": str(out), "format": "png16", "shapes": True, "shape_tolerance": 0.5,
                                      "cleanup": {"ball": {"feather": 1.0}}})
    assert exported["frames"] == N and set(exported["shapes"]) == {"ball", "square"}
    for name, pattern in exported["mattes"].items():
        assert Path(pattern.replace("####", str(FIRST + N - 1))).is_file(), name
    assert client.call("shot/info", {})["objects"][0]["cleanup"] == {"feather": 1.0}

    client.call("object/rename", {"object": "square", "name": "box"})
    client.call("object/remove", {"object": "ball"})
    assert [o["object"] for o in client.call("shot/info", {})["objects"]] == ["box"]
    assert client.call("shutdown", {}) is None
    assert client.proc.wait(timeout=30) == 0
    assert not (tmp_path / "shot" / "lock").exists()


def test_cancel_keeps_the_finished_frames_and_tracking_goes_on_later(client, clip, official_checkpoint, tmp_path):
    new_shot(client, clip, tmp_path / "shot", official_checkpoint)
    client.call("prompt/add", {"object": "ball", "frame": FIRST, "points": [[60, 120]]})
    request = client.request("track", {"direction": "forward"}, wait=False)
    while True:  # cancel once the first frame is reported
        message = client.read()
        if message.get("method") == "$/progress":
            client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": request}})
            break
    reply = client.answer(request)
    assert reply["result"]["cancelled"] is True and 1 <= reply["result"]["frames"] < N
    finished = client.call("mask/get", {"object": "ball", "frame": FIRST + reply["result"]["frames"] - 1})
    assert finished["mask"] is not None
    rest = client.call("track", {})
    assert rest["frames"] == N - reply["result"]["frames"] and not rest["cancelled"]


def test_a_cancelled_track_of_objects_prompted_on_different_frames_says_so(client, clip, official_checkpoint,
                                                                          tmp_path):
    """Two objects tracked from different frames: their runs pass the same frames, and the
    progress counts each frame run, so it reaches its total only at the end. A cancel after
    every frame was passed once still cancels (it answered "cancelled": false, half done)."""
    new_shot(client, clip, tmp_path / "shot", official_checkpoint)
    client.call("prompt/add", {"object": "ball", "frame": FIRST, "points": [[60, 120]]})
    client.call("prompt/add", {"object": "corner", "frame": FIRST + 3, "points": [[240, 50]]})
    request = client.request("track", {}, wait=False)
    told = []
    while len(told) < N:  # the ball's run has passed every frame: cancel as the corner's starts
        message = client.read()
        assert message.get("id") != request, message
        told.append(message["params"])
    client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": request}})
    reply = client.answer(request)["result"]
    told += [m["params"] for m in client.notifications if m.get("method") == "$/progress"]
    runs = N + 2 + 3  # the ball forward from the first frame; the corner forward, then backward
    assert reply == {"frames": N, "cancelled": True}
    assert [t["done"] for t in told] == list(range(1, len(told) + 1)) and len(told) < runs
    assert {t["total"] for t in told} == {runs}
    assert client.call("shot/info", {})["tracked"] is False
    client.notifications.clear()
    rest = client.call("track", {})  # the corner's frames left, each once
    left = [m["params"] for m in client.notifications if m.get("method") == "$/progress"]
    assert rest == {"frames": runs - len(told), "cancelled": False}
    assert left[-1]["done"] == left[-1]["total"] == runs - len(told)
    assert client.call("shot/info", {})["tracked"] is True
    for frame in range(FIRST, FIRST + N):
        assert client.call("mask/get", {"object": "corner", "frame": frame})["mask"] is not None


def test_a_track_cancelled_while_queued_does_not_run(client, clip, official_checkpoint, tmp_path):
    new_shot(client, clip, tmp_path / "shot", official_checkpoint)
    client.call("prompt/add", {"object": "ball", "frame": FIRST, "points": [[60, 120]]})
    running = client.request("track", {"direction": "forward"}, wait=False)
    queued = client.request("track", {"direction": "forward", "from": FIRST}, wait=False)
    unplannable = client.request("track", {"objects": ["nobody"]}, wait=False)  # (it would be an error)
    for request in (queued, unplannable):
        client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": request}})
    assert client.answer(running)["result"] == {"frames": N, "cancelled": False}
    assert client.answer(queued)["result"] == {"frames": 0, "cancelled": True}
    assert client.answer(unplannable)["result"] == {"frames": 0, "cancelled": True}
    again = client.call("track", {"direction": "forward", "from": FIRST})  # later requests run as usual
    assert again == {"frames": N, "cancelled": False}
    # any other request cancelled while it waits (a host that gave up on it) is not done later
    running = client.request("track", {"direction": "forward"}, wait=False)
    rename = client.request("object/rename", {"object": "ball", "name": "sphere"}, wait=False)
    client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": rename}})
    assert client.answer(running)["result"]["cancelled"] is False
    assert client.answer(rename)["error"] == {"code": -32800, "message": "object/rename was cancelled before it "
                                                                        "started: nothing was done."}
    assert [o["object"] for o in client.call("shot/info", {})["objects"]] == ["ball"]
    # a cancel that comes after its request was answered (the artist clicked Cancel as it
    # ended) stops nothing later, also a request that uses the same id again
    track = {"jsonrpc": "2.0", "id": "track", "method": "track", "params": {"direction": "forward", "from": FIRST}}
    client.send(track)
    assert client.answer("track")["result"] == {"frames": N, "cancelled": False}
    client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "track"}})
    client.send(track)
    assert client.answer("track")["result"] == {"frames": N, "cancelled": False}


def test_a_host_that_goes_away_stops_the_track_and_what_waits(client, official_checkpoint, tmp_path):
    """Closing the service's stdin (the host quit or crashed) stops a running track at its
    next frame, keeping the frames done; of the requests waiting, an export is dropped and a
    click carried out; the shot is free for the host's next session at once."""
    (tmp_path / "long").mkdir()  # (a track long enough to be running still when the host goes)
    long_clip = write_png_clip(tmp_path / "long", 30, FIRST)
    new_shot(client, long_clip, tmp_path / "shot", official_checkpoint)
    client.call("prompt/add", {"object": "ball", "frame": FIRST, "points": [[60, 120]]})
    client.request("track", {"direction": "forward"}, wait=False)
    client.request("export", {"out": str(tmp_path / "mattes")}, wait=False)
    client.request("prompt/add", {"object": "ball", "frame": FIRST + 20, "points": [[70, 120]]}, wait=False)
    for done in (1, 2):  # (the prompted frame, then the first frame tracked from it)
        message = client.read()
        assert message["method"] == "$/progress" and message["params"]["done"] == done, message
    client.proc.stdin.close()
    assert client.proc.wait(timeout=60) == 0
    assert not (tmp_path / "mattes").exists() and not (tmp_path / "shot" / "lock").exists()
    after = Client()
    try:
        info = after.call("shot/open", {"shot": str(tmp_path / "shot")})
        assert info["objects"][0]["prompted_frames"] == [FIRST, FIRST + 20] and not info["tracked"]
        assert after.call("mask/get", {"object": "ball", "frame": FIRST + 1})["mask"] is not None  # (told done)
        assert after.call("mask/get", {"object": "ball", "frame": FIRST + 19})["mask"] is None  # (stopped)
    finally:
        after.close()


def test_bad_requests_get_errors_and_the_service_lives_on(client, clip, official_checkpoint, tmp_path):
    def alive():
        assert client.call("initialize", {})["name"] == "sam2roto"

    client.send_raw(b"{this is not json")
    reply = client.read()
    assert reply["error"]["code"] == -32700 and reply["id"] is None
    alive()
    client.send_raw(b"[" * 200000)  # (nested past Python's recursion limit)
    assert client.read()["error"]["code"] == -32700
    alive()
    client.proc.stdin.write(b"Content-Length: abc\r\n\r\n" + json.dumps({"jsonrpc": "2.0", "id": 98}).encode())
    client.proc.stdin.flush()
    assert client.read()["error"]["message"] == "Unreadable message: bad Content-Length 'abc'"
    alive()  # (the stream is read again from the next message on)
    client.send({"jsonrpc": "1.0", "id": 99, "method": "initialize"})
    assert client.read()["error"]["code"] == -32600
    # ids that are not a string, a number or null; a cancel of one is ignored
    client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": [1]}})
    for bad_id in ([1], {"a": 1}, True):
        client.send({"jsonrpc": "2.0", "id": bad_id, "method": "initialize"})
        reply = client.read()
        assert reply["error"]["code"] == -32600 and reply["id"] is None, bad_id
    alive()
    client.send({"jsonrpc": "2.0", "id": float("nan"), "method": "initialize"})  # (not JSON's: not echoed)
    reply = client.read()
    assert reply["error"]["code"] == -32600 and reply["id"] is None
    # a Content-Length a few bytes too long: that message is refused, the next is answered
    body, after = (json.dumps({"jsonrpc": "2.0", "id": i, "method": "initialize"}).encode() for i in (96, 97))
    client.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % (len(body) + 6) + body
                            + b"Content-Length: %d\r\n\r\n" % len(after) + after)
    client.proc.stdin.flush()
    assert client.read()["error"]["code"] == -32700
    assert client.read() == {"jsonrpc": "2.0", "id": 97, "result": client.call("initialize", {})}
    assert client.error("paint/everything")["code"] == -32601
    assert client.error("$/setTrace", {"value": "off"})["code"] == -32601  # (a request: it gets its answer)
    err = client.error("shot/open", {"shot": str(tmp_path / "a\0b")})
    assert err["code"] == -32602 and "NUL" in err["message"]
    assert client.error("shot/info")["code"] == -32001
    assert client.error("shot/open", {"shot": "relative/shot"})["code"] == -32003
    assert client.error("shot/open", {"shot": str(tmp_path / "none")})["message"].startswith("No shot in")
    err = client.error("shot/create", {"shot": str(tmp_path / "s")})
    assert err["code"] == -32602 and "source" in err["message"]
    err = client.error("shot/create", {"shot": str(tmp_path / "s"), "source": str(clip), "colour": "red"})
    assert err["code"] == -32602 and "colour" in err["message"]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert client.error("shot/create", {"shot": str(busy), "source": str(clip)})["code"] == -32003
    assert (busy / "notes.txt").read_text() == "mine" and sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    assert client.error("shot/create", {"shot": str(busy / "notes.txt"), "source": str(clip)})["code"] == -32003
    alive()
    cut_off = tmp_path / "cut_off"  # what a service killed while it created a shot there leaves
    cut_off.mkdir()
    (cut_off / "lock").write_text("")
    (cut_off / ".shot.json.0123abcd.tmp").write_text("{")
    new_shot(client, clip, cut_off, official_checkpoint)
    assert (cut_off / "shot.json").is_file()
    # a setting the model refuses: a clear error, and nothing half-made blocks the next try in that folder
    err = client.error("shot/create", {"shot": str(tmp_path / "shot"), "source": str(clip), "image_size": 500,
                                       "checkpoint": str(official_checkpoint(NAME)), "device": "cpu"})
    assert err["code"] == -32000 and "image_size 500 is not a multiple of 32" in err["message"]

    new_shot(client, clip, tmp_path / "shot", official_checkpoint)
    bad_prompts = [
        ({"object": "ball", "frame": "first", "points": [[1, 1]]}, -32602, "frame"),
        ({"object": "ball", "frame": FIRST + 0.5, "points": [[1, 1]]}, -32602, "frame"),
        ({"object": "ball", "frame": FIRST, "points": [[1, "x"]]}, -32602, "points"),
        ({"object": "ball", "frame": FIRST, "points": [[1, 1]], "labels": [7]}, -32602, "labels"),
        ({"object": "ball", "frame": 7, "points": [[1, 1]]}, -32000, "Frame 7 is not in the shot"),
        ({"object": "ball", "frame": FIRST, "points": [[999, 1]]}, -32000, "outside the plate"),
        ({"object": "ball", "frame": FIRST, "mask": str(tmp_path / "nope.png")}, -32000, "Cannot read the mask"),
        ({"object": "", "frame": FIRST, "points": [[1, 1]]}, -32602, "object"),
    ]
    for params, code, words in bad_prompts:
        err = client.error("prompt/add", params)
        assert err["code"] == code and words in err["message"], (params, err)
    assert client.call("shot/info", {})["objects"] == []  # nothing was half-added
    assert client.call("prompt/add", {"object": " ball ", "frame": FIRST, "points": [[60, 120]]})["object"] == "ball"
    assert client.call("mask/get", {"object": " ball ", "frame": FIRST})["mask"] is not None  # (as prompt/add)
    assert client.call("mask/get", {"object": "ball", "frame": float(FIRST)})["frame"] == FIRST  # (OpenFX's doubles)
    # parameters of the wrong type: -32602 naming the parameter, and nothing done
    huge = int("9" * 400)
    wrong_types = [
        ("shot/create", {"shot": str(tmp_path / "t1"), "source": str(clip), "image_size": "abc"}, "image_size"),
        ("shot/create", {"shot": str(tmp_path / "t2"), "source": str(clip), "colorspace": 5}, "colorspace"),
        ("shot/create", {"shot": str(tmp_path / "t3"), "source": str(clip), "model": ["x"]}, "model"),
        ("shot/create", {"shot": str(tmp_path / "t3"), "source": str(clip), "missing_frames": "black"},
         "missing_frames"),
        ("shot/open", {"shot": str(tmp_path / "shot"), "download": "false"}, "download"),
        ("object/add", {"object": "sky", "colour": [0.1, 0.2, True]}, "colour"),
        ("object/add", {"object": "sky", "colour": [huge, 0, 0]}, "colour"),
        ("prompt/add", {"object": "ball", "frame": FIRST, "points": [[huge, 1]]}, "points"),
        ("prompt/add", {"object": "ball", "frame": FIRST, "box": [huge, 1, 2, 3]}, "box"),
        ("export", {"out": str(tmp_path / "m"), "format": ["png16"]}, "format"),
        ("export", {"out": str(tmp_path / "m"), "format": "gif"}, "format"),
        ("export", {"out": str(tmp_path / "m"), "force": "false"}, "force"),
        ("export", {"out": str(tmp_path / "m"), "shapes": "no"}, "shapes"),
    ]
    for method, params, name in wrong_types:
        err = client.error(method, params)
        assert err["code"] == -32602 and err["message"].startswith(name), (method, params, err)
    assert [o["object"] for o in client.call("shot/info", {})["objects"]] == ["ball"]
    assert not any((tmp_path / n).exists() for n in ("t1", "t2", "t3", "m"))
    err = client.error("shot/open", {"shot": str(clip / sorted(os.listdir(clip))[0])})  # a file, not a folder
    assert err["code"] == -32000, err
    # a shot that cannot be made keeps the open one open
    err = client.error("shot/create", {"shot": str(tmp_path / "s2"), "source": str(clip), "checkpoint": "rel.pt"})
    assert err["code"] == -32003 and client.call("shot/info", {})["shot"] == str((tmp_path / "shot").resolve())
    # an export that fails keeps the clean-up settings the shot had
    (tmp_path / "a file").write_text("")
    err = client.error("export", {"out": str(tmp_path / "a file" / "m"), "cleanup": {"ball": {"grow": 3}}})
    assert err["code"] == -32000 and client.call("shot/info", {})["objects"][0]["cleanup"] == {}
    err = client.error("export", {"out": str(tmp_path / "m"), "cleanup": {"ball": {"grow": "3"}}})
    assert err["code"] == -32000 and "grow must be a number from -100 to 100" in err["message"]
    err = client.error("export", {"out": str(tmp_path / "m"), "shapes": True, "shape_tolerance": -1})
    assert err["code"] == -32000 and "shape tolerance is pixels, 0 or more" in err["message"]
    assert not (tmp_path / "m").exists()
    plates = sorted(clip.iterdir())
    for out in (tmp_path / "shot" / "cache", tmp_path / "shot", clip):
        assert client.error("export", {"out": str(out), "force": True})["code"] == -32003
    assert sorted(clip.iterdir()) == plates
    holder = client.call("export", {"out": str(tmp_path), "force": True})  # the folder that holds the shot
    matte = Path(holder["mattes"]["ball"].replace("####", str(FIRST)))
    assert matte.is_file() and matte.is_relative_to(tmp_path) and not matte.is_relative_to(tmp_path / "shot")
    assert client.call("shot/info", {})["objects"][0]["object"] == "ball"  # the shot is as it was
    assert client.error("track", {"direction": "up"})["code"] == -32602

    other = Client()  # a second host on the same shot is told it is in use
    try:
        err = other.error("shot/open", {"shot": str(tmp_path / "shot")})
        assert err["code"] == -32002 and "in use by process" in err["message"]
    finally:
        other.close()
    alive()
    client.proc.stdin.close()  # the host went away: the service closes the shot and exits
    assert client.proc.wait(timeout=30) == 0
    assert not (tmp_path / "shot" / "lock").exists()
    time.sleep(0)


def test_opening_a_shot_encodes_its_frames_nearest_the_hosts_frame_first(client, clip, official_checkpoint, tmp_path):
    from sam2_core.cache.store import SUFFIX

    err = client.error("shot/create", {"shot": str(tmp_path / "shot"), "source": str(clip), "frame": "now"})
    assert err["code"] == -32602 and "frame" in err["message"]
    client.call("shot/create", {"shot": str(tmp_path / "shot"), "source": str(clip), "model": NAME,
                                "checkpoint": str(official_checkpoint(NAME)), "device": "cpu",
                                "image_size": CPU_TEST_INPUT_SIZE, "frame": FIRST + 3})
    features = tmp_path / "shot" / "cache" / "features"
    seen = []  # frame indices whose features are on disk, as they came
    deadline = time.monotonic() + 120
    while len(seen) < N and time.monotonic() < deadline:
        now = {int(p.name[:-len(SUFFIX)]) for p in features.glob(f"*/*{SUFFIX}")} - {i for i, _ in seen}
        seen += [(i, len(seen)) for i in sorted(now)]  # (those found by one look share a turn)
        time.sleep(0.02)
    assert sorted(i for i, _ in seen) == list(range(N))  # every frame, with no click asked for
    first_turn = [i for i, turn in seen if turn == seen[0][1]]
    assert 3 in first_turn and all(abs(i - 3) <= 1 for i in first_turn)  # frame 1004 first
    # opened again from a frame before the clip's first: nothing left to encode, and no error
    client.call("shot/close", {})
    assert client.call("shot/open", {"shot": str(tmp_path / "shot"), "frame": FIRST - 50})["frames"] == [FIRST,
                                                                                                      FIRST + N - 1]


def test_a_first_use_downloads_the_weights_telling_the_host_and_a_cancel_stops_it(
        clip, official_checkpoint, tmp_path, monkeypatch):
    """A shot of an official model not downloaded yet: the host gets the download's progress,
    its cancel stops it (no shot made, the data kept), and the next try resumes and makes it.
    An open that may not download (a host that waits for it) says at once that it would.
    (In-process: the random checkpoint stands for the official file, served locally.)"""
    from sam2_core.model import weights
    from sam2roto.service import REQUEST_CANCELLED, WEIGHTS_MISSING, RpcError, Service
    from tests.sam2_core.model.test_weights import FileServer

    ckpt = official_checkpoint(NAME)
    server = FileServer()
    server.files[f"/{NAME}.pt"] = ckpt.read_bytes()
    monkeypatch.setitem(weights.OFFICIAL_WEIGHTS, NAME, weights.OfficialWeights(
        NAME, f"{NAME}.pt", "http://127.0.0.1:9/unused", ckpt.stat().st_size, weights.sha256_of(ckpt)))
    monkeypatch.setenv("SAM2ROTO_WEIGHTS_BASE_URL", server.url)
    monkeypatch.setenv("SAM2ROTO_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("no_proxy", "*")
    sent = []

    def notify(method, params):
        sent.append((method, params))
        if service.request_id == 1:
            service.cancel.set()  # the host's $/cancelRequest, as the download starts

    service = Service(notify, device="cpu")
    create = {"shot": str(tmp_path / "shot"), "source": str(clip), "model": NAME, "device": "cpu",
              "image_size": CPU_TEST_INPUT_SIZE}
    try:
        service.request_id = 1
        with pytest.raises(RpcError) as stopped:
            service.call("shot/create", create)
        assert stopped.value.code == REQUEST_CANCELLED and f"{NAME}.pt" in str(stopped.value)
        assert not (tmp_path / "shot" / "shot.json").exists() and service.session is None
        kept = (tmp_path / "weights" / f"{NAME}.pt.part").stat().st_size
        assert kept > 0 and not (tmp_path / "weights" / f"{NAME}.pt").exists()

        sent.clear()
        service.request_id = 2
        service.cancel.clear()
        info = service.call("shot/create", create)
        assert info["frames"] == [FIRST, FIRST + N - 1]
        assert server.requests[-1] == (f"/{NAME}.pt", f"bytes={kept}-")  # resumed, not started over
        told = [p for m, p in sent if m == "$/progress"]
        size = ckpt.stat().st_size
        assert told[0] == {"id": 2, "what": "download", "file": f"{NAME}.pt", "done": kept, "total": size}
        assert told[-1]["done"] == size and all(p["id"] == 2 for p in told)
        assert (tmp_path / "weights" / f"{NAME}.pt").read_bytes() == ckpt.read_bytes()

        # the weights gone (another machine): an open that may not download says so at once
        service.call("shot/close", {})
        for name in (f"{NAME}.pt", f"{NAME}.pt.verified"):
            (tmp_path / "weights" / name).unlink()
        asked = len(server.requests)
        with pytest.raises(RpcError) as missing:
            service.call("shot/open", {"shot": str(tmp_path / "shot"), "download": False})
        assert missing.value.code == WEIGHTS_MISSING and f"{NAME}.pt" in str(missing.value)
        assert len(server.requests) == asked and not (tmp_path / "weights" / f"{NAME}.pt.part").exists()
        assert service.session is None
        assert service.call("shot/open", {"shot": str(tmp_path / "shot")})["frames"] == [FIRST, FIRST + N - 1]
    finally:
        service.shutdown()
        server.close()


def test_a_shot_whose_footage_moved_opens_where_the_host_says_it_is(client, official_checkpoint, tmp_path):
    plates = tmp_path / "plates"
    plates.mkdir()
    write_png_clip(plates, 3, 1001)
    new_shot(client, plates, tmp_path / "shot", official_checkpoint)
    client.call("prompt/add", {"object": "ball", "frame": 1001, "points": [[60, 120]]})
    client.call("shot/close", {})
    plates.rename(tmp_path / "plates v2")
    err = client.error("shot/open", {"shot": str(tmp_path / "shot")})
    assert err["code"] == -32000 and f"missing: {plates}" in err["message"], err
    info = client.call("shot/open", {"shot": str(tmp_path / "shot"), "source": str(tmp_path / "plates v2")})
    assert info["source"] == str(tmp_path / "plates v2") and [o["object"] for o in info["objects"]] == ["ball"]
    assert client.call("mask/get", {"object": "ball", "frame": 1001})["mask"] is not None  # its answer kept
    client.call("shot/close", {})
    again = client.call("shot/open", {"shot": str(tmp_path / "shot")})  # (the new place was recorded)
    assert again["source"] == str(tmp_path / "plates v2")


def test_the_masks_handed_to_the_host_are_cleared_when_the_shot_opens_again(client, official_checkpoint, tmp_path):
    plates = tmp_path / "plates"
    plates.mkdir()
    write_png_clip(plates, 3, 1001)
    new_shot(client, plates, tmp_path / "shot", official_checkpoint)
    shown = [client.call("prompt/add", {"object": "ball", "frame": f, "points": [[60, 120]]})["mask"]
             for f in (1001, 1003)]
    assert all(Path(p).is_file() for p in shown)
    client.call("shot/close", {})
    client.call("shot/open", {"shot": str(tmp_path / "shot")})
    assert not any(Path(p).exists() for p in shown)  # (one file a frame ever shown would pile up)
    again = client.call("mask/get", {"object": "ball", "frame": 1003})["mask"]
    assert Path(again).is_file()


def test_a_shot_whose_own_checkpoint_moved_opens_where_the_host_says_it_is(client, clip, official_checkpoint,
                                                                          tmp_path):
    mine = tmp_path / "mine.pt"
    shutil.copy(official_checkpoint(NAME), mine)
    client.call("shot/create", {"shot": str(tmp_path / "shot"), "source": str(clip), "model": NAME,
                                "checkpoint": str(mine), "device": "cpu", "image_size": CPU_TEST_INPUT_SIZE})
    client.call("shot/close", {})
    moved = mine.rename(tmp_path / "moved.pt")
    err = client.error("shot/open", {"shot": str(tmp_path / "shot")})
    assert err["code"] == -32000 and f"The shot's checkpoint file {mine} is not there any more" in err["message"]
    other = tmp_path / "other.pt"
    other.write_bytes(moved.read_bytes() + b"\0")
    err = client.error("shot/open", {"shot": str(tmp_path / "shot"), "checkpoint": str(other)})
    assert err["code"] == -32000 and "holds other weights than the shot was tracked with" in err["message"]
    info = client.call("shot/open", {"shot": str(tmp_path / "shot"), "checkpoint": str(moved)})
    assert info["model"] == NAME
    assert json.loads((tmp_path / "shot" / "shot.json").read_text())["model"]["checkpoint"] == str(moved)
