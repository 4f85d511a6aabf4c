"""The installer users run (installers/blender_extension.sh): the zip is built and validated by
Blender's own builder, installed into the Blender user folder with its preferences saved, and
bad set-ups stop with a message that says what to do."""

import subprocess
import sys
import zipfile

from tests.host_bindings.blender.conftest import ROOT


def test_the_extension_is_built_validated_installed_and_its_preferences_saved(blender):
    names = set(zipfile.ZipFile(blender.zip).namelist())
    assert {"blender_manifest.toml", "__init__.py", "client.py", "operators.py"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    manifest = zipfile.ZipFile(blender.zip).read("blender_manifest.toml").decode()
    assert 'license = ["SPDX:GPL-3.0-or-later"]' in manifest
    installed = blender.user_folder / "extensions" / "user_default" / "sam2roto"
    assert blender.installed["installed"] == str(installed) and (installed / "__init__.py").is_file()
    assert blender.installed["blender"].startswith(blender.series)
    userpref = (blender.user_folder / "config" / "userpref.blend").read_bytes()
    assert b"bl_ext.user_default.sam2roto" in userpref and sys.prefix.encode() in userpref
    # no torch in the extension: it must load in Blender's own Python
    for name in names:
        if name.endswith(".py"):
            source = zipfile.ZipFile(blender.zip).read(name).decode()
            assert "import torch" not in source and "sam2_core" not in source, name
    print(f"Blender {blender.series}: set-up, build, validate and install took {blender.setup_seconds:.1f} s")


def test_the_installer_fetches_the_default_weights_and_goes_on_without_them_offline(blender):
    # (the download is refused here: the installer says how the weights come, and installs)
    assert "weights fetch sam2.1_hiera_tiny" in blender.install_log
    assert "the first Create Shot downloads them" in blender.install_log
    assert blender.installed["core_env"]


def test_bad_set_ups_say_what_to_do(tmp_path):
    script = str(ROOT / "installers/blender_extension.sh")
    missing = subprocess.run([script, "--blender", str(tmp_path / "no-blender")], capture_output=True, text=True)
    assert missing.returncode != 0 and "pass --blender /path/to/blender" in missing.stderr
    bad = subprocess.run([script, "--frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option --frobnicate" in bad.stderr
    series = subprocess.run([str(ROOT / "installers/blender_env.sh"), "3.6"], capture_output=True, text=True)
    assert series.returncode == 2 and "no tested bpy release for Blender 3.6" in series.stderr


def test_bpy_as_a_module_refuses_to_overwrite_a_real_users_preferences(blender, tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k != "BLENDER_USER_RESOURCES"}
    proc = subprocess.run([str(ROOT / "installers/blender_extension.sh"), "--blender", blender.python,
                           "--core-env", sys.prefix], capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "BLENDER_USER_RESOURCES" in proc.stderr
