"""What every script run inside Blender (bpy as a module, headless) shares: its arguments, the
installed extension enabled from the user folder, and its findings written as JSON for pytest.

bpy as a module starts with factory preferences (it does not read userpref.blend), so the
extension that the installer put into $BLENDER_USER_RESOURCES is enabled here, and the core
environment the installer saved is set again from the arguments.
"""

import json
import os
import sys
import time
import traceback

import addon_utils
import bpy

MODULE = "bl_ext.user_default.sam2roto"


def arguments() -> dict:
    with open(sys.argv[-1], encoding="utf-8") as f:
        return json.load(f)


def enable_extension(args: dict):
    module = addon_utils.enable(MODULE, default_set=True, handle_error=None)
    if module is None:
        raise RuntimeError(f"the installed extension {MODULE} could not be enabled")
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.core_env = args.get("core_env", "")
    prefs.device = "cpu"
    return module


def pump(ext, timeout: float = 300.0) -> None:
    """Runs the extension's timer work until no request is in flight (no event loop here)."""
    ext.session.SESSION.wait(timeout)


def operator_error(call) -> str:
    """The message of an operator call that must fail (bpy raises RuntimeError from its ERROR report)."""
    try:
        call()
    except RuntimeError as e:
        return str(e)
    raise AssertionError("the operator succeeded but should have failed")


def run(main) -> None:
    """Runs main(args) -> findings, writes {"ok": ..., "findings"| "error"} to args["out"]."""
    args = arguments()
    started = time.monotonic()
    try:
        findings = main(args)
        result = {"ok": True, "findings": findings}
    except Exception:
        result = {"ok": False, "error": traceback.format_exc()}
    try:
        addon_utils.disable(MODULE, default_set=True, handle_error=None)  # unregister: stops the core
    except Exception:
        result = {"ok": False, "error": "disabling the extension failed:\n" + traceback.format_exc()}
    result["seconds"] = round(time.monotonic() - started, 2)
    result["blender"] = bpy.app.version_string
    with open(args["out"], "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    # bpy 4.2 as a module can crash in its own teardown after a session that ran the core and
    # rendered (not seen with 5.0, nor in Blender itself): the findings are written, leave now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
