"""Installs the SAM 2 Roto extension zip into a Blender user folder, enables it, points its
preferences at the core environment and saves the preferences. Runs inside Blender:

    blender --background --python installers/blender_install.py -- ZIP --core-env DIR
    <python with bpy> installers/blender_install.py ZIP --core-env DIR

Installed with Blender's own "Install from Disk" operator (extensions.package_install_files)
into the "user_default" repository, rather than by unzipping by hand: Blender then checks the
manifest, records the package in the repository's index, enables it, and will update or remove
it like any extension. The user folder is Blender's (or $BLENDER_USER_RESOURCES).
Prints one JSON line: {"installed": dir, "module": name, "core_env": dir, "blender": version}.
"""

import argparse
import json
import os
import sys

import bpy

PACKAGE_ID = "sam2roto"
REPO = "user_default"


def arguments(argv: list[str]) -> argparse.Namespace:
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    elif argv and argv[0].endswith(".py"):
        argv = argv[1:]
    parser = argparse.ArgumentParser(prog="blender_install.py")
    parser.add_argument("zip", help="the extension zip built by blender_extension.sh")
    parser.add_argument("--core-env", required=True, help="folder of the SAM 2 core's Python environment")
    parser.add_argument("--checkpoint", default="", help="checkpoint file new shots use (optional)")
    parser.add_argument("--device", default="", help="auto, cuda, mps or cpu (optional)")
    return parser.parse_args(argv)


def install(zip_path: str, core_env: str, checkpoint: str = "", device: str = "") -> dict:
    if "bl_pkg" not in bpy.context.preferences.addons:
        bpy.ops.preferences.addon_enable(module="bl_pkg")  # Blender's extension manager
    result = bpy.ops.extensions.package_install_files(filepath=os.path.abspath(zip_path), repo=REPO,
                                                      enable_on_install=True)
    module = f"bl_ext.{REPO}.{PACKAGE_ID}"
    if result != {"FINISHED"} or module not in bpy.context.preferences.addons:
        raise SystemExit(f"Blender did not install and enable {zip_path} (result {result}).")
    prefs = bpy.context.preferences.addons[module].preferences
    prefs.core_env = os.path.abspath(core_env)
    if checkpoint:
        prefs.checkpoint = os.path.abspath(checkpoint)
    if device:
        prefs.device = device
    bpy.context.preferences.use_preferences_save = True
    bpy.ops.wm.save_userpref()
    repo_dir = bpy.utils.user_resource("EXTENSIONS", path=REPO)
    return {"installed": os.path.join(repo_dir, PACKAGE_ID), "module": module, "core_env": prefs.core_env,
            "blender": bpy.app.version_string, "userpref": os.path.join(bpy.utils.user_resource("CONFIG"),
                                                                        "userpref.blend")}


if __name__ == "__main__":
    args = arguments(sys.argv)
    print(json.dumps(install(args.zip, args.core_env, args.checkpoint, args.device)))
    sys.stdout.flush()
