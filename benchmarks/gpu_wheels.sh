#!/usr/bin/env bash
# Wheels that benchmarks/gpu_check.py needs on the lent GPU machine and its image lacks
# (Python 3.12, x86-64 manylinux), downloaded here into .whl/ (kept out of git through
# .git/info/exclude). See the docstring of gpu_check.py for the command that installs them there.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
for pkg in soundfile soxr pesq pystoi; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_27_x86_64 -d .whl "$pkg" \
  || python3 -m pip download -q --no-deps --python-version 3.12 --implementation cp \
    --platform any -d .whl "$pkg"
done
# cffi (soundfile's dependency) is in the image? if not, carry it too
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl cffi pycparser || true
ls -la .whl
