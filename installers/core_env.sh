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
stamp="$venv/.sam2roto-$want-$(cat "$root/pyproject.toml" "$root/installers/core_env.sh" | sha256sum | cut -c1-16)"
[ -f "$stamp" ] && exit 0

[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first, pinned: on the build machines this is a local CPU wheel; the later
# range in pyproject.toml is then already satisfied.
"${pip[@]}" "torch==${SAM2ROTO_TORCH_VERSION:-2.13.0}"
if [ "$want" = test ]; then
    "${pip[@]}" -e "$root[test]" setuptools wheel
    # sam2 1.1.0 is a source distribution whose build imports torch: build it against
    # ours, without its CUDA extension, and without pulling its other requirements.
    SAM2_BUILD_CUDA=0 "${pip[@]}" --no-deps --no-build-isolation "sam2==1.1.0"
else
    "${pip[@]}" -e "$root"
fi
touch "$stamp"
