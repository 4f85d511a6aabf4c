#!/usr/bin/env bash
# One command for Blender users: creates the SAM 2 core environment (.venv, via core_env.sh),
# builds the SAM 2 Roto extension zip with Blender's own extension builder, validates it, and
# installs and enables it in Blender's user folder with its preferences pointing at the core.
#
#   installers/blender_extension.sh [--blender PATH] [--core-env DIR] [--out DIR] [--zip-only]
#                                   [--checkpoint FILE] [--device auto|cuda|mps|cpu] [--no-weights]
#
# --blender: a Blender 4.2+ executable (default: `blender` on PATH), or a Python that has Blender
#   as a module (bpy); the latter only installs into $BLENDER_USER_RESOURCES, since bpy saves
#   factory preferences and would replace yours.
# --core-env: use this existing core environment instead of creating .venv.
# --out: where the zip goes (default: a temporary folder). --zip-only: build and validate, no install.
# The default model's official weights are downloaded now (unless --checkpoint or --no-weights),
# so that the first Create Shot does not wait for them; offline, the first shot downloads them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source_dir="$root/host_bindings/blender/sam2roto_blender"
blender="blender"; core_env=""; out="${TMPDIR:-/tmp}/sam2roto-blender-extension"; zip_only=0; extra=()
weights=1
while [ $# -gt 0 ]; do
    case "$1" in
        --blender) blender="$2"; shift 2 ;;
        --core-env) core_env="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --zip-only) zip_only=1; shift ;;
        --checkpoint) extra+=("$1" "$2"); weights=0; shift 2 ;;
        --device) extra+=("$1" "$2"); shift 2 ;;
        --no-weights) weights=0; shift ;;
        -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "blender_extension.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
fail() { echo "blender_extension.sh: $*" >&2; exit 1; }

command -v "$blender" >/dev/null || [ -x "$blender" ] || \
    fail "Blender not found ('$blender'): pass --blender /path/to/blender (Blender 4.2 or newer)."
if "$blender" -c "import bpy" >/dev/null 2>&1; then
    kind=module
    [ "$zip_only" = 1 ] || [ -n "${BLENDER_USER_RESOURCES:-}" ] || \
        fail "$blender is Blender as a Python module, which saves factory preferences over yours:" \
             "set BLENDER_USER_RESOURCES to the user folder to install into, or use a Blender executable."
else
    kind=executable
fi

# 1. the core environment
if [ -z "$core_env" ] && [ "$zip_only" = 0 ]; then
    "$root/installers/core_env.sh"
    core_env="$root/.venv"
fi

# 2. build and validate, with the builder Blender ships (`blender --command extension`; in the
# bpy module the same script, bl_pkg/cli/blender_ext.py, run with Blender's list of valid tags)
mkdir -p "$out"
version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$source_dir/blender_manifest.toml")"
zip="$out/sam2roto-$version.zip"
rm -f "$zip"
if [ "$kind" = executable ]; then
    builder=("$blender" --background --factory-startup --command extension)
    tags=()
else
    scripts="$("$blender" -c "import bpy; print(bpy.utils.system_resource('SCRIPTS'))" 2>/dev/null | tail -n 1)"
    builder=("$blender" "$scripts/addons_core/bl_pkg/cli/blender_ext.py")
    tags=(--valid-tags "$scripts/modules/_bpy_internal/extensions/tags.py")
fi
"${builder[@]}" build --source-dir "$source_dir" --output-filepath "$zip" "${tags[@]}" || \
    fail "building the extension failed (see above)."
"${builder[@]}" validate "$zip" || fail "Blender's validator rejected $zip (see above)."
echo "sam2roto: extension built and validated: $zip" >&2
[ "$zip_only" = 1 ] && { echo "$zip"; exit 0; }

# 3. the default model's weights (on stderr: stdout's last line is the install's report)
if [ "$weights" = 1 ]; then
    python="$core_env/bin/python"
    model="$("$python" -c 'from sam2_core.model import DEFAULT_MODEL; print(DEFAULT_MODEL)')"
    "$python" -m sam2roto weights fetch "$model" >&2 || \
        echo "sam2roto: the weights of $model could not be downloaded now (see above); the first Create Shot" \
             "downloads them, or run: $python -m sam2roto weights fetch $model" >&2
fi

# 4. install, enable, set the core environment, save the preferences
if [ "$kind" = executable ]; then
    "$blender" --background --python "$root/installers/blender_install.py" -- "$zip" --core-env "$core_env" \
        "${extra[@]}"
else
    "$blender" "$root/installers/blender_install.py" "$zip" --core-env "$core_env" "${extra[@]}"
fi
