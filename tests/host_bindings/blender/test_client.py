"""The extension's JSON-RPC client (pure Python, loaded outside Blender) against a small stand-in
service: framing, callbacks only from poll(), notifications, cancellation, errors, a dying service."""

import importlib.util
import io
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
spec = importlib.util.spec_from_file_location(
    "sam2roto_blender_client", ROOT / "host_bindings/blender/sam2roto_blender/client.py")
rpc = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = rpc  # dataclasses look their module up
spec.loader.exec_module(rpc)

STAND_IN = textwrap.dedent('''
    import json, sys, time
    sys.path.insert(0, {client_dir!r})
    from client import encode_message, read_message
    out = sys.stdout.buffer
    def send(msg):
        out.write(encode_message(msg)); out.flush()
    cancelled = set()
    while (msg := read_message(sys.stdin.buffer)) is not None:
        method, params, rid = msg.get("method"), msg.get("params", {{}}), msg.get("id")
        print("got", method, file=sys.stderr, flush=True)
        if method == "$/cancelRequest":
            cancelled.add(params["id"]); continue
        if method == "echo":
            send({{"jsonrpc": "2.0", "id": rid, "result": params}})
        elif method == "fail":
            send({{"jsonrpc": "2.0", "id": rid, "error": {{"code": -32602, "message": "bad 'frame'"}}}})
        elif method == "count":
            done = 0
            for i in range(params["n"]):
                time.sleep(0.02)
                import select
                while select.select([sys.stdin], [], [], 0)[0]:
                    m = read_message(sys.stdin.buffer)
                    if m and m.get("method") == "$/cancelRequest": cancelled.add(m["params"]["id"])
                if rid in cancelled: break
                done += 1
                send({{"jsonrpc": "2.0", "method": "$/progress", "params": {{"done": done, "total": params["n"]}}}})
            send({{"jsonrpc": "2.0", "id": rid, "result": {{"frames": done, "cancelled": rid in cancelled}}}})
        elif method == "sleep":
            time.sleep(params["seconds"])
            send({{"jsonrpc": "2.0", "id": rid, "result": None}})
        elif method == "die":
            print("out of memory on frame 12", file=sys.stderr, flush=True); sys.exit(3)
        elif method == "shutdown":
            send({{"jsonrpc": "2.0", "id": rid, "result": None}}); break
''')


@pytest.fixture
def service(tmp_path):
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN.format(client_dir=str(ROOT / "host_bindings/blender/sam2roto_blender")))
    notes = []
    client = rpc.ServiceClient([sys.executable, str(script)], on_notification=lambda m, p: notes.append((m, p)))
    client.start()
    client.notes = notes
    yield client
    client.close(timeout=5)


def test_framing_round_trip_with_unicode_and_several_messages_in_one_read():
    a, b = {"jsonrpc": "2.0", "id": 1, "result": {"name": "caf\u00e9 \u2713"}}, {"jsonrpc": "2.0", "method": "x"}
    stream = io.BytesIO(rpc.encode_message(a) + rpc.encode_message(b))
    assert rpc.read_message(stream) == a
    assert rpc.read_message(stream) == b
    assert rpc.read_message(stream) is None
    truncated = io.BytesIO(rpc.encode_message(a)[:-3])
    assert rpc.read_message(truncated) is None


def test_answers_arrive_only_through_poll(service):
    results = []
    service.send("echo", {"frame": 1001}, on_result=results.append)
    time.sleep(0.5)
    assert results == [] and service.busy  # nothing runs behind the caller's back
    deadline = time.monotonic() + 10
    while not results and time.monotonic() < deadline:
        service.poll(wait=0.05)
    assert results == [{"frame": 1001}] and not service.busy


def test_error_answers_carry_code_and_message(service):
    with pytest.raises(rpc.ServiceError) as err:
        service.call("fail", {}, timeout=10)
    assert err.value.code == -32602 and "frame" in err.value.message and err.value.method == "fail"
    assert service.call("echo", {"still": "alive"}, timeout=10) == {"still": "alive"}


def test_progress_notifications_and_cancel(service):
    done = []
    rid = service.send("count", {"n": 200}, on_result=done.append)
    while len(service.notes) < 3:
        service.poll(wait=0.05)
    service.cancel(rid)
    deadline = time.monotonic() + 20
    while not done and time.monotonic() < deadline:
        service.poll(wait=0.05)
    assert done and done[0]["cancelled"] is True and 3 <= done[0]["frames"] < 200
    assert all(m == "$/progress" for m, _ in service.notes)
    assert [p["done"] for _, p in service.notes] == list(range(1, done[0]["frames"] + 1))


def test_a_dying_service_fails_pending_requests_with_its_last_words(service):
    errors = []
    service.send("die", {}, on_error=errors.append)
    deadline = time.monotonic() + 10
    while not errors and time.monotonic() < deadline:
        service.poll(wait=0.05)
    assert isinstance(errors[0], rpc.ServiceStopped)
    assert "exit code 3" in errors[0].message and "out of memory on frame 12" in errors[0].message
    assert not service.alive
    with pytest.raises(rpc.ServiceStopped):
        service.send("echo", {})


def test_a_missing_core_says_where_to_look(tmp_path):
    client = rpc.ServiceClient(rpc.service_command(str(tmp_path / "no-env")))
    with pytest.raises(rpc.ServiceStopped, match="core environment"):
        client.start()


def test_a_stalled_call_times_out_with_the_method_name_and_is_called_off(service):
    with pytest.raises(rpc.ServiceError, match="did not answer sleep within 1 s, so it was called off"):
        service.call("sleep", {"seconds": 1.5}, timeout=1)
    assert service.call("echo", {"after": 1}) == {"after": 1}  # (the late answer is not taken for another's)
    deadline = time.monotonic() + 10  # (the stand-in's log comes on its own pipe)
    while "got $/cancelRequest" not in service.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "got $/cancelRequest" in service.log_tail()
