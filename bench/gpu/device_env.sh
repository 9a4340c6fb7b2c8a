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
# fl_build TARGET...: configures $B once (Release, FL_CUDA_ARCHS or 90) and
# builds the targets with all cores (a build kept on the machine from an
# earlier call may be stale, so every call builds); on failure prints the
# errors and exits. Also records the device in $OUT/device.txt and sets M
# (and FL_CUDA_MODULE) to the built CUDA module. Where the machine has no
# OpenMP OpenBLAS, the carried one under /tmp/debroot is named to CMake.
fl_build() {
    local blas=()
    if ! ls /usr/include/*/openblas-openmp/cblas.h >/dev/null 2>&1 &&
        [ -f /tmp/debroot/usr/include/x86_64-linux-gnu/openblas-openmp/cblas.h ]; then
        blas=(-DFL_BLAS_LIB=/tmp/debroot/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so
              -DFL_CBLAS_INCLUDE=/tmp/debroot/usr/include/x86_64-linux-gnu/openblas-openmp)
    fi
    ([ -f "$B/build.ninja" ] || cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DFL_CUDA_ARCHS="${FL_CUDA_ARCHS:-90}" "${blas[@]}" >"$OUT/build.log" 2>&1) &&
        cmake --build "$B" -j16 --target "$@" >>"$OUT/build.log" 2>&1 || {
        echo "build failed"
        grep -E "error|FAILED" "$OUT/build.log" | head -30
        exit 1
    }
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv >"$OUT/device.txt"
    M=$PWD/$B/lib/libflashlib_cuda.so
    export FL_CUDA_MODULE=$M
}
