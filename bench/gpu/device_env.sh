# bench/gpu/device_env.sh — the set-up every one-call device script shares,
# sourced from the repository root after the script has set B (its build
# directory): $OUT, the commit to record (GIT_COMMIT: the device copy's git
# may name another commit, so pass it), unbuffered Python, and the carried
# Debian OpenBLAS packages unpacked under /tmp/debroot (never over /) and
# put on the loader path after B's libraries.
OUT=${OUT:-out}
mkdir -p "$OUT"
export GIT_COMMIT=${GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export PYTHONUNBUFFERED=1
if ls .debs/*.deb >/dev/null 2>&1; then
    mkdir -p /tmp/debroot
    for f in .debs/*.deb; do dpkg -x "$f" /tmp/debroot; done
fi
export LD_LIBRARY_PATH=$PWD/$B/lib:/tmp/debroot/usr/lib/x86_64-linux-gnu/openblas-openmp:/tmp/debroot/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH
