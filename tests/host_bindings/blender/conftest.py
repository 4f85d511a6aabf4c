"""Real Blender, headless: Blender as a Python module (bpy from the package registry), one
environment per Blender series (installers/blender_env.sh makes them on first use, at the repo
root: .venv-blender-4.2, .venv-blender-5.0). Each test session builds, validates and installs the
extension with the installer users run, into a temporary Blender user folder; the scripts in
in_blender/ then drive the extension there and write their findings as JSON.

SAM2ROTO_BLENDER_SERIES chooses the series (default "4.2 5.0"; 4.5 works too).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = Path(__file__).resolve().parent / "in_blender"
SERIES = os.environ.get("SAM2ROTO_BLENDER_SERIES", "4.2 5.0").split()


@dataclass
class Blender:
    series: str
    python: str
    user_folder: Path
    zip: Path
    installed: dict
    setup_seconds: float
    install_log: str  # the installer's stderr

    def run(self, script: str, tmp_path: Path, timeout: float = 600, **args) -> dict:
        """Runs in_blender/<script> with `args`; returns its findings (fails the test on its error)."""
        args.setdefault("core_env", sys.prefix)
        args["out"] = str(tmp_path / f"{script}.{self.series}.json")
        args_file = tmp_path / f"{script}.{self.series}.args.json"
        args_file.write_text(json.dumps(args))
        # its own temporary folder: the session leaves with os._exit, past Blender's clean-up of it
        (tmp_path / "tmp").mkdir(exist_ok=True)
        env = dict(os.environ, BLENDER_USER_RESOURCES=str(self.user_folder), TMPDIR=str(tmp_path / "tmp"))
        proc = subprocess.run([self.python, str(SCRIPTS / script), str(args_file)], capture_output=True, text=True,
                              env=env, timeout=timeout, cwd=tmp_path)
        out = Path(args["out"])
        if not out.is_file():
            pytest.fail(f"Blender {self.series} running {script} wrote no findings (exit code {proc.returncode}):\n"
                        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        result = json.loads(out.read_text())
        if not result["ok"]:
            pytest.fail(f"Blender {self.series} ({result['blender']}) running {script}:\n{result['error']}\n"
                        f"--- its log:\n{proc.stderr[-4000:]}")
        if proc.returncode != 0:
            pytest.fail(f"Blender {self.series} running {script} finished its work but exited with code "
                        f"{proc.returncode}:\n{proc.stderr[-3000:]}")
        return result["findings"]


def bpy_python(series: str) -> str:
    proc = subprocess.run([str(ROOT / "installers/blender_env.sh"), series], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"Could not set up Blender {series} as a Python module (bpy from the package registry) with "
                    f"installers/blender_env.sh {series}; the Blender tests need it:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session", params=SERIES)
def blender(request, tmp_path_factory) -> Blender:
    """Blender `series` with the extension built, validated and installed by installers/blender_extension.sh."""
    series = request.param
    started = time.monotonic()
    python = bpy_python(series)
    user = tmp_path_factory.mktemp(f"blender-{series}-user")
    out = tmp_path_factory.mktemp(f"blender-{series}-zip")
    # (no network in tests: the weights download the installer tries is refused on this machine)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(user), SAM2ROTO_WEIGHTS_BASE_URL="http://127.0.0.1:9/",
               SAM2ROTO_WEIGHTS_DIR=str(tmp_path_factory.mktemp(f"blender-{series}-weights")))
    proc = subprocess.run([str(ROOT / "installers/blender_extension.sh"), "--blender", python, "--core-env",
                           sys.prefix, "--out", str(out)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        pytest.fail(f"installers/blender_extension.sh failed for Blender {series}:\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-3000:]}")
    installed = json.loads(proc.stdout.strip().splitlines()[-1])
    zips = list(out.glob("sam2roto-*.zip"))
    assert len(zips) == 1, list(out.iterdir())
    return Blender(series, python, user, zips[0], installed, time.monotonic() - started, proc.stderr)
