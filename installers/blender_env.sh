#!/usr/bin/env bash
# Creates (or refreshes) a Python environment holding Blender as a module (`bpy` from the
# package registry), used to build, validate and test the Blender extension headless:
#     installers/blender_env.sh 4.2      ->  .venv-blender-4.2 with bpy 4.2.x
#     installers/blender_env.sh 5.0      ->  .venv-blender-5.0 with bpy 5.0.x
# Prints the environment's python. Idempotent: a stamp file records what was installed,
# so a second call costs nothing. bpy wheels exist for one Python minor per Blender
# series (3.11 for 4.2 .. 5.0); BLENDER_PYTHON names another interpreter if needed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
series="${1:?usage: blender_env.sh SERIES   (4.2, 4.5 or 5.0)}"
# the exact bpy release tested for each Blender series (LTS releases and the current one)
case "$series" in
    4.2) version=4.2.23 ;;
    4.5) version=4.5.15 ;;
    5.0) version=5.0.1 ;;
    *) echo "blender_env.sh: no tested bpy release for Blender $series (4.2, 4.5 or 5.0)" >&2; exit 2 ;;
esac
venv="$root/.venv-blender-$series"
py="${BLENDER_PYTHON:-python3.11}"
command -v "$py" >/dev/null || py=python3
# (hashed by Python: macOS has no sha256sum)
digest="$("$py" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()[:16])' "$root/installers/blender_env.sh")"
stamp="$venv/.sam2roto-bpy-$version-$digest"
if [ -f "$stamp" ]; then echo "$venv/bin/python"; exit 0; fi

if ! "$py" -c "import sys; sys.exit(sys.version_info[:2] != (3, 11))"; then
    echo "blender_env.sh: bpy $version needs Python 3.11; $py is $("$py" -V 2>&1)." \
         "Set BLENDER_PYTHON to a Python 3.11 interpreter." >&2
    exit 1
fi
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
echo "sam2roto set-up: installing bpy $version into $venv (first run only, ~400 MB)..." >&2
# the build machines' pip configuration names index folders that may be absent: hide that noise
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "bpy==$version" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); then
    echo "blender_env.sh: could not install bpy $version (Blender as a Python module) from the" \
         "package registry into $venv; check the network and disk space, then run again." >&2
    exit 1
fi
touch "$stamp"
echo "$venv/bin/python"
