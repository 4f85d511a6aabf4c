#!/usr/bin/env bash
# Creates (or refreshes) the core environment in .venv: torch, numpy, OpenCV and the
# project itself, editable. With "test", also the test tools and the official SAM 2
# package that the tests compare against. Idempotent: a stamp file records what was
# installed, so a second call costs nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
want="${1:-run}"
venv="$root/.venv"
py="${PYTHON:-python3}"
# (hashed by Python: macOS has no sha256sum)
digest="$("$py" -c 'import hashlib, sys; print(hashlib.sha256(b"".join(open(p, "rb").read() for p in sys.argv[1:])).hexdigest()[:16])' "$root/pyproject.toml" "$root/installers/core_env.sh")"
stamp="$venv/.sam2roto-$want-$digest"
[ -f "$stamp" ] && exit 0

# Debian and Ubuntu ship venv/ensurepip in a separate package
if ! "$py" -c "import venv, ensurepip" 2>/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    else
        echo "sam2roto set-up: $py cannot create virtual environments; install python3-venv" \
             "(e.g. sudo apt-get install python3-venv) and run again." >&2
        exit 1
    fi
fi

[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
echo "sam2roto set-up: installing into $venv (first run only)..." >&2
pip_install() {
    # the build machines' pip configuration names index folders that may be absent: hide that noise
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
# torch first, pinned: on the build machines this is a local CPU wheel; the later
# range in pyproject.toml is then already satisfied.
pip_install "torch==${SAM2ROTO_TORCH_VERSION:-2.13.0}"
if [ "$want" = test ]; then
    pip_install -e "$root[test]" setuptools wheel
    # sam2 1.1.0 is a source distribution whose build imports torch: build it against
    # ours, without its CUDA extension, and without pulling its other requirements.
    SAM2_BUILD_CUDA=0 pip_install --no-deps --no-build-isolation "sam2==1.1.0"
else
    pip_install -e "$root"
fi
touch "$stamp"
