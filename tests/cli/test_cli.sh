#!/usr/bin/env bash
# test_cli.sh — golden tests of the `flashlib` command.
#
#   bash tests/cli/test_cli.sh build/bin/flashlib            run the tests
#   bash tests/cli/test_cli.sh build/bin/flashlib --update   rewrite the golden files
#   FLASHLIB_TEST_WRAP="valgrind --error-exitcode=9 --leak-check=full -q" \
#       bash tests/cli/test_cli.sh build/bin/flashlib      run every command under valgrind
#
# Every fixture is made here (printf, and the CLI's own writer) so the test
# needs no Python. Outputs that are deterministic are compared with files
# under tests/cli/golden/ after normalising timings and temporary paths;
# the rest is checked by properties (same labels from fit and predict,
# centres equal to the known blob centres, exit codes, messages). The
# script stops at the first mismatch and shows a diff.
set -u

if [ $# -lt 1 ]; then
    echo "usage: bash tests/cli/test_cli.sh path/to/flashlib [--update]" >&2
    exit 2
fi
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
UPDATE=0
[ "${2:-}" = "--update" ] && UPDATE=1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GOLDEN=$HERE/golden
WRAP=${FLASHLIB_TEST_WRAP:-}
[ -x "$BIN" ] || { echo "test_cli: $BIN is not an executable" >&2; exit 2; }
# Sanitizer builds must be first in the preload list: the test that preloads
# a shim skips them.
ASAN=0
ldd "$BIN" 2>/dev/null | grep -q libasan && ASAN=1

T=$(mktemp -d "${TMPDIR:-/tmp}/flashlib-cli-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 2
export LC_ALL=C
unset FL_DISABLE_SM90 FL_NUM_THREADS

name=""
rc=0
n_tests=0

fail() {
    echo "FAIL [$name]: $*" >&2
    echo "--- stdout" >&2
    cat out.txt >&2 2>/dev/null
    echo "--- stderr" >&2
    cat err.txt >&2 2>/dev/null
    exit 1
}

# test NAME: starts a test case.
test_case() {
    name=$1
    n_tests=$((n_tests + 1))
}

# run ARGS...: runs the CLI; stdout in out.txt, stderr in err.txt, status in $rc.
run() {
    $WRAP "$BIN" "$@" >out.txt 2>err.txt
    rc=$?
    if [ -n "$WRAP" ] && [ "$rc" = 9 ]; then
        fail "the wrapper ($WRAP) reported an error"
    fi
}

expect_rc() { [ "$rc" = "$1" ] || fail "exit code $rc, expected $1"; }
expect_err() { grep -qF -- "$1" err.txt || fail "stderr lacks: $1"; }
expect_out() { grep -qF -- "$1" out.txt || fail "stdout lacks: $1"; }
expect_no_err() { [ ! -s err.txt ] || fail "stderr is not empty"; }
expect_absent() {
    for f in "$@"; do
        [ ! -e "$f" ] || fail "$f exists, but a failed command must not create outputs"
    done
    # No temporary output may survive either.
    if ls -A | grep -q '\.tmp\.'; then fail "temporary files left behind: $(ls -A | grep '\.tmp\.')"; fi
}

# Replaces what differs between machines and runs: timings, paths.
normalize() {
    sed -e "s#$T/##g" -e "s#$T#TMP#g" \
        -e 's/^\(  time  *\)[0-9.]* s$/\1X s/' \
        -e 's/"time_s": [0-9.e+-]*/"time_s": X/' \
        -e 's#^\(libflashlib [^ ]*\) (.*)$#\1 (LIBPATH)#'
}

# golden FILE [SOURCE]: compares normalised SOURCE (default out.txt) with golden/FILE.
golden() {
    local src=${2:-out.txt}
    normalize <"$src" >golden.got
    if [ "$UPDATE" = 1 ]; then
        cp golden.got "$GOLDEN/$1"
        return
    fi
    [ -f "$GOLDEN/$1" ] || fail "golden file $GOLDEN/$1 is missing (run with --update to create it)"
    diff -u "$GOLDEN/$1" golden.got >golden.diff || {
        cat golden.diff >&2
        fail "output differs from golden/$1"
    }
}

# ---- fixtures -------------------------------------------------------------

# Three blobs of four points at (0,0), (10,10), (20,0), each point at
# distance sqrt(2) from its centre: the optimum has inertia exactly 24.
{
    echo "x,y"
    for c in "0 0" "10 10" "20 0"; do
        set -- $c
        for dx in -1 1; do for dy in -1 1; do echo "$(($1 + dx)),$(($2 + dy))"; done; done
    done
} >blobs.csv
printf '0,0\n10,10\n20,0\n' >centres_expected.csv

# hexbyte N: the byte N as a printf escape.
hexbyte() { printf '\\x%02x' "$1"; }

# mknpy OUT MAJOR DICT DATAFILE: an .npy file with format version MAJOR.0, the
# header DICT (padded as numpy pads it) and the raw bytes of DATAFILE.
mknpy() {
    local out=$1 major=$2 dict=$3 data=$4
    local pre=10
    [ "$major" = 1 ] || pre=12
    local len=$((${#dict} + 1))
    local pad=$(((64 - (pre + len) % 64) % 64))
    len=$((len + pad))
    {
        printf '\x93NUMPY'
        printf "$(hexbyte "$major")\\x00"
        if [ "$major" = 1 ]; then
            printf "$(hexbyte $((len & 255)))$(hexbyte $((len >> 8)))"
        else
            printf "$(hexbyte $((len & 255)))$(hexbyte $(((len >> 8) & 255)))\\x00\\x00"
        fi
        printf '%s' "$dict"
        printf "%${pad}s" ""
        printf '\n'
        cat "$data"
    } >"$out"
}

# ---- version and help -------------------------------------------------------

test_case version
run --version
expect_rc 0
golden version.txt

test_case help
run --help
expect_rc 0
expect_out "exit codes:"
golden help.txt

test_case no-arguments
run
expect_rc 2
expect_err "usage: flashlib <command>"

test_case unknown-command
run fitt kmeans
expect_rc 2
golden err_unknown_command.txt err.txt

test_case fit-kmeans-help
run fit kmeans --help
expect_rc 0
# Generated from the library's parameter table: every row appears with its
# default and its doc line.
expect_out "parameters (-p NAME=VALUE)"
expect_out "n_clusters"
expect_out "default 8"
expect_out "aliases: K, k"
expect_out "max_iter"
expect_out "exit codes:"

test_case help-command
run help route
expect_rc 0
expect_out "usage: flashlib route ALGO"

test_case version-mismatch
# (Skipped for sanitizer builds: ASan must come first in the preload list.)
if command -v cc >/dev/null 2>&1 && [ "$ASAN" = 0 ]; then
    # A library that reports another version must be refused.
    printf 'const char *fl_version_string(void) { return "9.9.9"; }\n' >shim.c
    if cc -shared -fPIC -o shim.so shim.c 2>/dev/null; then
        LD_PRELOAD=$T/shim.so "$BIN" route kmeans --shape 10x2 >out.txt 2>err.txt
        rc=$?
        expect_rc 4
        expect_err "is version 9.9.9"
        LD_PRELOAD=$T/shim.so "$BIN" --version >out.txt 2>err.txt
        rc=$?
        expect_rc 4
        expect_out "libflashlib 9.9.9"
    fi
fi

test_case info-dispatch
# `flashlib info` (the cost model's command, tests of its own elsewhere) is
# reachable through the dispatcher and needs no GPU.
run info --help
expect_rc 0
expect_out "usage: flashlib info"

# ---- diagnose ---------------------------------------------------------------

test_case diagnose
run diagnose --json
expect_rc 0
expect_out '"library_version"'
expect_out '"version_match": true'
expect_out '"check": "ok'
if grep -q '"device_count": 0' out.txt; then
    # Without a GPU it must say why, and must not have loaded CUDA.
    grep -q '"why_none": "[^"]' out.txt || fail "no reason given for the missing GPU"
    expect_out '"cuda_loaded": false'
    run diagnose
    expect_rc 0
    expect_out "why none"
else
    expect_out '"compute_capability"'
fi

# ---- route ------------------------------------------------------------------

test_case route-h100
run route kmeans --shape 1000000x128 -p n_clusters=8192 --device H100
expect_rc 0
golden route_h100.txt

test_case route-h100-json
run route kmeans --shape 1000000x128 -p n_clusters=8192 --device H100 --json
expect_rc 0
golden route_h100.json

test_case route-h100-no-sm90
FL_DISABLE_SM90=1 $WRAP "$BIN" route kmeans --shape 1000000x128 -p n_clusters=8192 --device h100 >out.txt 2>err.txt
rc=$?
expect_rc 0
golden route_h100_nosm90.txt

test_case route-a100-small-k
run route kmeans --shape 50000x32 -p k=16 --device A100
expect_rc 0
golden route_a100_k16.txt

test_case route-cpu-f64
run route kmeans --shape 1000x8 --device cpu --dtype f64
expect_rc 0
golden route_cpu_f64.txt

test_case route-default-device
run route kmeans --shape 1000000x128 -p n_clusters=8192
expect_rc 0
if grep -q '"device_count": 0' <("$BIN" diagnose --json --no-check); then
    expect_out "assumed: no GPU here"
fi

test_case route-errors
run route kmeans --shape 1000000 -p n_clusters=8192
expect_rc 2
expect_err "--shape expects N x D"
run route kmean --shape 10x2
expect_rc 2
expect_err "did you mean 'kmeans'?"
run route kmeans --shape 10x2 --device H1000
expect_rc 2
expect_err "unknown device 'H1000'; did you mean 'H100'?"

# ---- fit and predict ----------------------------------------------------------

test_case fit-csv
run fit kmeans -i blobs.csv -p n_clusters=3 -p random_state=0 --device cpu --labels labels.npy --centers centres.csv \
    --model km.flm
expect_rc 0
expect_no_err
golden fit_csv.txt
sort centres.csv >got_centres.csv
sort centres_expected.csv >want_centres.csv
cmp -s got_centres.csv want_centres.csv || fail "centres are not the blob centres: $(cat centres.csv)"

# check_blob_labels FILE.npy: points 1-4, 5-8 and 9-12 share a label, and the
# three labels differ (any permutation of the cluster ids is right).
check_blob_labels() {
    "$BIN" convert -i "$1" -o "$1.csv" >/dev/null 2>&1 || fail "cannot convert $1"
    [ "$(wc -l <"$1.csv")" = 12 ] || fail "$1: expected 12 labels"
    awk 'NR<=4{a[$1]++} NR>4&&NR<=8{b[$1]++} NR>8{c[$1]++}
         END{ if (length(a)!=1||length(b)!=1||length(c)!=1) exit 1;
              for (x in a) for (y in b) for (z in c) if (x==y||y==z||x==z) exit 1 }' "$1.csv" ||
        fail "$1: labels do not follow the blobs: $(tr '\n' ' ' <"$1.csv")"
}

test_case fit-labels-partition
check_blob_labels labels.npy
cp labels.npy.csv labels.csv

test_case predict-same-labels
run predict --model km.flm --input blobs.csv --device cpu --labels labels2.npy --transform dist.csv
expect_rc 0
golden predict.txt
cmp -s labels.npy labels2.npy || fail "predict gave other labels than fit"
awk -F, 'NF!=3{exit 1}' dist.csv || fail "transform is not 12 x 3"
[ "$(wc -l <dist.csv)" = 12 ] || fail "transform is not 12 x 3"

test_case predict-stdout
run predict --model km.flm --input blobs.csv
expect_rc 0
cmp -s out.txt labels.csv || fail "labels printed by predict differ from fit's"

test_case fit-json
run fit kmeans -i blobs.csv -p n_clusters=3 -p random_state=0 --device cpu --json
expect_rc 0
golden fit_json.json

test_case fit-npy-f32
run convert -i blobs.csv -o blobs32.npy --dtype f32
expect_rc 0
run fit kmeans -i blobs32.npy -p n_clusters=3 -p random_state=0 --quiet --labels l32.npy
expect_rc 0
[ ! -s out.txt ] || fail "--quiet printed something"
cmp -s l32.npy labels.npy || fail "f32 .npy input gave other labels than the CSV"

test_case fit-init-centers
run fit kmeans -i blobs.csv -p n_clusters=3 --init-centers centres_expected.csv
expect_rc 0
expect_out "inertia     24"

test_case fit-sample-weight
printf '1\n1\n1\n1\n1\n1\n1\n1\n1\n1\n1\n1\n' >w.csv
run fit kmeans -i blobs.csv -p n_clusters=3 -p random_state=0 --sample-weight w.csv
expect_rc 0
expect_out "inertia     24"

# ---- .npy format versions (fixtures built from the CLI's own f8 writer) -----

run convert -i blobs.csv -o blobs64.npy
expect_rc 0
tail -c 192 blobs64.npy >blobs.f8 # 12 x 2 doubles
for v in 1 2 3; do
    test_case "npy-v$v"
    mknpy v$v.npy $v "{'descr': '<f8', 'fortran_order': False, 'shape': (12, 2), }" blobs.f8
    run fit kmeans -i v$v.npy -p n_clusters=3 -p random_state=0 --labels lv$v.npy
    expect_rc 0
    cmp -s lv$v.npy labels.npy || fail "v$v.npy gave other labels"
done

test_case npy-1d
head -c 96 blobs.f8 >col.f8
mknpy col.npy 1 "{'descr': '<f8', 'fortran_order': False, 'shape': (12,), }" col.f8
run convert -i col.npy -o col.csv
expect_rc 0
[ "$(wc -l <col.csv)" = 12 ] || fail "a 1-D .npy must read as n x 1"

if [ -x "${FLASHLIB_TEST_PYTHON:-}" ] || [ -x "$HERE/../../.venv/bin/python" ]; then
    PY=${FLASHLIB_TEST_PYTHON:-$HERE/../../.venv/bin/python}
    if "$PY" -c "import numpy" 2>/dev/null; then
        test_case npy-numpy-interop
        "$PY" - <<'EOF' || fail "numpy interop script failed"
import numpy as np
X = np.loadtxt("blobs.csv", delimiter=",", skiprows=1)
for v in [(1, 0), (2, 0), (3, 0)]:
    with open("np_v%d.npy" % v[0], "wb") as f:
        np.lib.format.write_array(f, X.astype(np.float32), version=v)
l = np.load("labels.npy")
assert l.dtype == np.int32 and l.shape == (12,), (l.dtype, l.shape)
C = np.load("blobs64.npy")
assert C.dtype == np.float64 and C.shape == (12, 2) and (C == X).all()
EOF
        for v in 1 2 3; do
            run fit kmeans -i np_v$v.npy -p n_clusters=3 -p random_state=0 --labels lnp$v.npy
            expect_rc 0
            cmp -s lnp$v.npy labels.npy || fail "numpy v$v file gave other labels"
        done
    fi
fi

# ---- input errors: exit 3, nothing written --------------------------------------

test_case missing-file
run fit kmeans -i nope.csv -p n_clusters=3 --labels out.npy
expect_rc 3
expect_err "nope.csv: cannot open: No such file or directory"
expect_absent out.npy

test_case truncated-npy
head -c 100 blobs.f8 >part.f8
mknpy trunc.npy 1 "{'descr': '<f8', 'fortran_order': False, 'shape': (12, 2), }" part.f8
run fit kmeans -i trunc.npy -p n_clusters=3 --labels out.npy --centers out.csv --model out.flm
expect_rc 3
golden err_truncated.txt err.txt
expect_absent out.npy out.csv out.flm

test_case trailing-bytes-npy
cat blobs.f8 blobs.f8 >twice.f8
mknpy long.npy 1 "{'descr': '<f8', 'fortran_order': False, 'shape': (12, 2), }" twice.f8
run fit kmeans -i long.npy -p n_clusters=3
expect_rc 3
expect_err "trailing bytes after the data: header says 12 x 2 f8 = 192 bytes of data, file has 384"

test_case hostile-npy-header
# Headers that claim far more data than the file holds are refused from the
# file size alone: "truncated" (not "out of memory" or a read error) proves
# that the check came before any allocation or read.
mknpy huge.npy 1 "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 1000), }" blobs.f8
run fit kmeans -i huge.npy
expect_rc 3
expect_err "truncated: header says 1000000000000 x 1000 f8 = 8000000000000000 bytes of data, file has 192"
mknpy big.npy 3 "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 1000), }" blobs.f8
run fit kmeans -i big.npy
expect_rc 3
expect_err "truncated: header says 100000 x 1000 f4 = 400000000 bytes of data, file has 192"
mknpy huge2.npy 1 "{'descr': '<f8', 'fortran_order': False, 'shape': (9223372036854775807, 4), }" blobs.f8
run convert -i huge2.npy -o x.csv
expect_rc 3
expect_err "dimension too large"

test_case fortran-npy
mknpy fortran.npy 1 "{'descr': '<f8', 'fortran_order': True, 'shape': (12, 2), }" blobs.f8
run fit kmeans -i fortran.npy -p n_clusters=3 --labels out.npy
expect_rc 3
golden err_fortran.txt err.txt
expect_absent out.npy

test_case npy-format-errors
mknpy be.npy 1 "{'descr': '>f8', 'fortran_order': False, 'shape': (12, 2), }" blobs.f8
run fit kmeans -i be.npy
expect_rc 3
expect_err "dtype '>f8' is big-endian"
mknpy f2.npy 1 "{'descr': '<f2', 'fortran_order': False, 'shape': (12, 2), }" blobs.f8
run fit kmeans -i f2.npy
expect_rc 3
expect_err "dtype '<f2' is not supported"
mknpy d3.npy 1 "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3, 4), }" blobs.f8
run fit kmeans -i d3.npy
expect_rc 3
expect_err "has 3 dimensions"
mknpy garbage.npy 1 "{'descr': '<f8', 'fortran_order': False, 'shape': __import__('os'), }" blobs.f8
run fit kmeans -i garbage.npy
expect_rc 3
expect_err "malformed header"
mknpy nokey.npy 1 "{'descr': '<f8', 'shape': (12, 2), }" blobs.f8
run fit kmeans -i nokey.npy
expect_rc 3
expect_err "missing key"
printf 'PK\x03\x04 not an npy at all' >zip.npy
run fit kmeans -i zip.npy
expect_rc 3
expect_err "not an .npy file"
printf '\x93NUMPY\x01\x00\xff' >short.npy
run fit kmeans -i short.npy
expect_rc 3
expect_err "too short to be an .npy file"
printf '\x93NUMPY\x02\x00\xf0\xff\xff\xff' >bighdr.npy
run fit kmeans -i bighdr.npy
expect_rc 3
expect_err "header length 4294967280 is implausible"
printf '\x93NUMPY\x04\x00\x10\x00' >v4.npy
run fit kmeans -i v4.npy
expect_rc 3
expect_err "unsupported .npy format version 4.0"

test_case csv-ragged
printf 'x,y\n1,2\n3,4\n5,6,7\n' >ragged.csv
run fit kmeans -i ragged.csv -p n_clusters=2 --labels out.npy
expect_rc 3
golden err_csv_ragged.txt err.txt
expect_absent out.npy

test_case csv-not-a-number
printf '1,2\n3,abc\n' >text.csv
run fit kmeans -i text.csv -p n_clusters=2
expect_rc 3
expect_err "text.csv: line 2, column 2: 'abc' is not a number"
printf '1;2\n3;4\n' >semi.csv
run fit kmeans -i semi.csv
expect_rc 3
expect_err "(fields must be separated by commas)"
printf '1,,2\n' >empty_field.csv
run fit kmeans -i empty_field.csv
expect_rc 3
expect_err "line 1, column 2: empty field"
printf 'a,b\n' >header_only.csv
run fit kmeans -i header_only.csv
expect_rc 3
expect_err "has a header line but no data rows"
: >empty.csv
run fit kmeans -i empty.csv
expect_rc 3
expect_err "no data rows"

test_case csv-lenient
printf '# comment\r\n"x", "y"\r\n\r\n 1 , 2\r\n3,4\r\n' >crlf.csv
run convert -i crlf.csv -o crlf_out.csv
expect_rc 0
printf '1,2\n3,4\n' >crlf_want.csv
cmp -s crlf_out.csv crlf_want.csv || fail "CRLF/quoted/commented CSV misread: $(cat crlf_out.csv)"

# ---- usage errors: exit 2 -------------------------------------------------------

test_case unknown-param
run fit kmeans -i blobs.csv -p n_cluster=3 --labels out.npy
expect_rc 2
golden err_unknown_param.txt err.txt
expect_absent out.npy

test_case param-out-of-range
run fit kmeans -i blobs.csv -p n_clusters=0
expect_rc 2
expect_err "n_clusters=0"

test_case param-syntax
run fit kmeans -i blobs.csv -p n_clusters
expect_rc 2
expect_err "-p expects NAME=VALUE"

test_case unknown-option
run fit kmeans -i blobs.csv --lables out.npy
expect_rc 2
golden err_unknown_option.txt err.txt

test_case bad-param-value
run fit kmeans -i blobs.csv -p metric=foo
expect_rc 2
golden err_param_value.txt err.txt

test_case bundled-flags
run fit kmeans -i blobs.csv -p n_clusters=3 --device cpu -qv
expect_rc 0
[ ! -s out.txt ] || fail "-q printed a summary"
expect_err "flashlib: info: kmeans 12 x 2, k=3: cpu/"
run fit kmeans -i blobs.csv -qi x
expect_rc 2
expect_err "'-i' in '-qi' is not a flag that can be combined"

test_case missing-value
run fit kmeans --input
expect_rc 2
expect_err "option --input needs a value (FILE)"

test_case same-output-twice
run fit kmeans -i blobs.csv --labels a.npy --centers a.npy
expect_rc 2
expect_err "--labels and --centers name the same file 'a.npy'"

test_case bad-device
run fit kmeans -i blobs.csv --device tpu
expect_rc 2
expect_err "device 'tpu' is not valid"

test_case init-array-without-centres
run fit kmeans -i blobs.csv -p init=array
expect_rc 2
expect_err "--init-centers FILE"

# ---- library errors: exit 4, nothing written ---------------------------------------

test_case too-many-clusters
echo "previous contents" >keep.npy
run fit kmeans -i blobs.csv -p n_clusters=20 --labels keep.npy --model out.flm
expect_rc 4
expect_err "n_clusters=20: must be in [1, n_samples=12]"
expect_err "[FL_STATUS_INVALID_ARG]"
expect_absent out.flm
[ "$(cat keep.npy)" = "previous contents" ] || fail "a failed fit replaced an existing output"

test_case nan-in-data
printf '1,2\n3,nan\n5,6\n' >nan.csv
run fit kmeans -i nan.csv -p n_clusters=2 --labels out.npy
expect_rc 4
expect_err "NaN"
expect_err "[FL_STATUS_INVALID_ARG]"
expect_absent out.npy

test_case weights-wrong-length
printf '1\n1\n' >w2.csv
run fit kmeans -i blobs.csv -p n_clusters=3 --sample-weight w2.csv
expect_rc 4
expect_err "sample_weight"

test_case predict-wrong-features
printf '1,2,3\n' >three.csv
run predict --model km.flm --input three.csv
expect_rc 4
expect_err "features"

test_case predict-corrupt-model
head -c 40 km.flm >bad.flm
run predict --model bad.flm --input blobs.csv --labels out.npy
expect_rc 3
expect_err "bad.flm"
expect_absent out.npy
run predict --model missing.flm --input blobs.csv
expect_rc 3

# ---- decompositions: pca, truncated_svd, transform ----------------------------------

# t (1, 2) + 0.1 s (2, -1) for t = -2..2 and s = 1,-2,2,-2,1 (sum t s = 0,
# both centred): the first principal axis is exactly (1, 2)/sqrt(5) =
# (0.447214, 0.894427), with a positive largest entry (scikit-learn's sign
# rule).
printf 'x,y\n-1.8,-4.1\n-1.4,-1.8\n0.4,-0.2\n0.6,2.2\n2.2,3.9\n' >line.csv

test_case fit-pca
run fit pca -i line.csv -p n_components=1 --device cpu --components comp.csv --transform t.csv --model p.flm
expect_rc 0
expect_no_err
golden fit_pca.txt
awk -F, '{ if ((NR==1) && (($1-0.447214)^2 + ($2-0.894427)^2 > 1e-4)) exit 1 }' comp.csv ||
    fail "the first component is not the line's direction: $(cat comp.csv)"
[ "$(wc -l <t.csv)" = 5 ] || fail "transform: expected 5 rows"

test_case transform-round-trip
run transform --model p.flm -i line.csv -o t2.csv
expect_rc 0
cmp -s t.csv t2.csv || fail "transform of a saved model differs from the fit's: $(paste t.csv t2.csv)"
run fit pca -i line.csv -p n_components=2 -p svd_solver=full --model p2.flm
expect_rc 0
run transform --model p2.flm -i line.csv -o t3.npy
expect_rc 0
run transform --model p2.flm -i t3.npy -o back.csv --inverse --json
expect_rc 0
expect_out '"inverse": true'
tail -n +2 line.csv | paste -d, - back.csv |
    awk -F, '{ if (($1-$3)^2 + ($2-$4)^2 > 1e-20) exit 1 }' || fail "inverse_transform is not X: $(cat back.csv)"

test_case fit-pca-help
run fit pca --help
expect_rc 0
golden help_fit_pca.txt

test_case route-pca
run route pca --shape 200000x128 -p n_components=16 --device cpu
expect_rc 0
golden route_pca_cpu.txt
run route pca --shape 2000x3000 -p n_components=10 --device cpu
expect_rc 0
expect_out "variant  randomized"

test_case fit-truncated-svd-json
run fit truncated_svd -i blobs.csv -p n_components=1 -p algorithm=arpack --device cpu --json
expect_rc 0
expect_out '"algo": "truncated_svd"'
expect_out '"n_components": 1'

test_case pca-errors
run fit pca -i line.csv -p n_components=3 --model out.flm
expect_rc 4
golden err_pca_n_components.txt err.txt
expect_absent out.flm
run fit pca -i line.csv --labels out.npy
expect_rc 2
expect_err "--labels does not apply to pca"
run fit pca -i line.csv -p svd_solver=lapack
expect_rc 2
expect_err "svd_solver=lapack: must be one of auto|full|covariance_eigh|arpack|randomized"
run transform --model p.flm -i three.csv -o out.npy
expect_rc 4
expect_err "X has 3 features, but PCA is expecting 2 features"
expect_absent out.npy
run transform --model km.flm -i blobs.csv -o out.npy --inverse
expect_rc 2
expect_err "a kmeans model has no inverse_transform"
expect_absent out.npy
run transform --model bad.flm -i line.csv -o out.npy
expect_rc 3
expect_absent out.npy

test_case transform-kmeans-distances
run transform --model km.flm -i blobs.csv -o kd.csv --device cpu
expect_rc 0
cmp -s kd.csv dist.csv || fail "transform of a kmeans model differs from predict --transform"

test_case unwritable-output
run fit kmeans -i blobs.csv -p n_clusters=3 --labels no/such/dir/l.npy --model ok.flm
expect_rc 3
expect_err "no/such/dir/l.npy"
expect_absent ok.flm

# ---- progress and Ctrl-C ----------------------------------------------------------

test_case progress
run fit kmeans -i blobs.csv -p n_clusters=3 -p random_state=0 --progress
expect_rc 0
expect_err "flashlib: progress: kmeans."
run fit kmeans -i blobs.csv -p n_clusters=3 -p random_state=0 --progress --quiet
expect_rc 0
expect_no_err

test_case interrupt
if [ -z "$WRAP" ] && command -v timeout >/dev/null 2>&1; then
    # A fit long enough to be interrupted: 100000 x 16, 256 clusters, tol 0.
    awk 'BEGIN { srand(7); for (i = 0; i < 100000; i++) { s = "";
         for (j = 0; j < 16; j++) s = s (j ? "," : "") sprintf("%.4f", rand() + i % 50); print s } }' >big.csv
    timeout --preserve-status -s INT 1 "$BIN" fit kmeans -i big.csv -p n_clusters=256 -p tol=0 \
        --labels big_labels.npy --model big.flm >out.txt 2>err.txt
    rc=$?
    if [ "$rc" = 0 ]; then
        echo "test_cli: note: the fit finished within 1 s; the interrupt was not exercised" >&2
    else
        expect_rc 130
        expect_err "interrupted; no output was written"
        expect_absent big_labels.npy big.flm
    fi
fi

# ---- mutation fuzzing: any damaged input ends in a clean exit code -------------

# flip FILE: overwrites one random byte of FILE (bash's $RANDOM, seeded below).
flip() {
    local size off
    size=$(wc -c <"$1")
    off=$((RANDOM % size))
    printf "$(hexbyte $((RANDOM % 256)))" | dd of="$1" bs=1 seek="$off" conv=notrunc status=none
}

# fuzz SEED ROUNDS SOURCE EXT CMD...: damages copies of SOURCE and runs CMD on
# them (the word INPUT is replaced by the damaged file). Exit codes 0 (a
# harmless change), 3 (refused) and 4 (the library refused the values) are
# fine; a crash (a signal: 128 and up) or any other code is a failure.
fuzz() {
    local seed=$1 rounds=$2 src=$3 ext=$4 i a
    shift 4
    RANDOM=$seed
    for ((i = 0; i < rounds; i++)); do
        cp "$src" fz.$ext
        flip fz.$ext
        [ $((i % 3)) = 0 ] && flip fz.$ext
        local args=()
        for a in "$@"; do [ "$a" = INPUT ] && args+=("fz.$ext") || args+=("$a"); done
        "$BIN" "${args[@]}" >out.txt 2>err.txt
        rc=$?
        case $rc in
        0 | 3 | 4) ;;
        *) cp fz.$ext "$T/crash.$ext"; fail "round $i: exit code $rc on a damaged $ext file" ;;
        esac
    done
}

ROUNDS=${FLASHLIB_TEST_FUZZ_ROUNDS:-60}
[ -n "$WRAP" ] && ROUNDS=5

test_case fuzz-npy
head -c 128 blobs64.npy >hdr.bin # damage the header, where the parser works
tail -c 192 blobs64.npy >dat.bin
for ((r = 0; r < ROUNDS; r++)); do
    cp hdr.bin fz_hdr.bin
    RANDOM=$((1000 + r))
    flip fz_hdr.bin
    cat fz_hdr.bin dat.bin >fz.npy
    "$BIN" convert -i fz.npy -o fz_out.csv >out.txt 2>err.txt
    rc=$?
    case $rc in
    0 | 3) ;;
    *) cp fz.npy "$T/crash.npy"; fail "round $r: exit code $rc on a damaged .npy header" ;;
    esac
done

test_case fuzz-csv
fuzz 2 "$ROUNDS" blobs.csv csv fit kmeans -i INPUT -p n_clusters=3 -p random_state=0

test_case fuzz-model
fuzz 3 "$ROUNDS" km.flm flm predict --model INPUT --input blobs.csv

# ---- on a machine with a GPU: the same answers from the CUDA backend ---------------

test_case gpu-fit
if grep -q '"device_count": [1-9]' <("$BIN" diagnose --json --no-check); then
    run fit kmeans -i blobs.csv -p n_clusters=3 -p random_state=0 --device cuda --labels gpu_labels.npy \
        --centers gpu_centres.csv --model gpu.flm
    expect_rc 0
    expect_out "inertia     24"
    expect_out "device      cuda:0"
    check_blob_labels gpu_labels.npy
    sort gpu_centres.csv >got_centres.csv
    cmp -s got_centres.csv want_centres.csv || fail "GPU centres are not the blob centres: $(cat gpu_centres.csv)"
    run predict --model gpu.flm --input blobs.csv --device cuda --labels gpu_labels2.npy
    expect_rc 0
    cmp -s gpu_labels.npy gpu_labels2.npy || fail "GPU predict gave other labels than GPU fit"
    run predict --model gpu.flm --input blobs32.npy --device cpu --labels cpu_of_gpu.npy
    expect_rc 0
    cmp -s gpu_labels.npy cpu_of_gpu.npy || fail "the CPU disagrees with the GPU on the GPU's model"
    run route kmeans --shape 1000000x128 -p n_clusters=8192 --device this
    expect_rc 0
    expect_out "(this machine)"
fi

# ---- nearest neighbours: kneighbors ------------------------------------------------------

# Points 0, 1, 3, 6, 10 on a line: each one's two nearest others are known
# by hand; 3 is at distance 3 from both 0 and 6, a tie broken by index.
printf '0\n1\n3\n6\n10\n' >pts.csv

test_case kneighbors-self
run kneighbors --data pts.csv -k 2 --device cpu
expect_rc 0
expect_no_err
printf '1:1 2:3\n0:1 2:2\n1:2 0:3\n2:3 4:4\n3:4 2:7\n' >want_knn.txt
cmp -s out.txt want_knn.txt || fail "self kneighbors: $(cat out.txt)"

test_case kneighbors-queries-files-model
printf '2\n9\n' >q.csv
run kneighbors --data pts.csv --input q.csv -k 3 --indices I.npy --distances D.csv --save-model nn.flm --device cpu
expect_rc 0
expect_out "indices     I.npy"
[ "$(head -1 D.csv | tr ',' ' ' | awk '{print $1+0, $2+0, $3+0}')" = "1 1 2" ] || fail "distances: $(cat D.csv)"
run kneighbors --model nn.flm --input q.csv -k 3 --json
expect_rc 0
expect_out '"indices": ['
expect_out '"k": 3'
# 2 -> 1 and 3 (both at 1: by index), then 0 (2); 9 -> 10 (1), 6 (3), 3 (6)
tr -d ' \n' <out.txt | grep -q '"indices":\[1,2,0,4,3,2\]' || fail "model kneighbors: $(cat out.txt)"

test_case kneighbors-metric-param
run kneighbors --data pts.csv --input q.csv -k 1 -p metric=sqeuclidean --device cpu
expect_rc 0
printf '1:1\n4:1\n' >want_sq.txt
cmp -s out.txt want_sq.txt || fail "sqeuclidean: $(cat out.txt)"

test_case kneighbors-errors
echo "previous contents" >keep.npy
run kneighbors --data pts.csv -k 5 --indices keep.npy --device cpu
expect_rc 4
expect_err "n_neighbors"
expect_err "[FL_STATUS_INVALID_ARG]"
[ "$(cat keep.npy)" = "previous contents" ] || fail "a failed search replaced an existing output"
run kneighbors --data pts.csv --model nn.flm
expect_rc 2
expect_err "exactly one of --data FILE and --model FILE"
run kneighbors --data pts.csv -p metric=chebyshev
expect_rc 2
expect_err "chebyshev"
run kneighbors --model km.flm --input q.csv
expect_rc 2
expect_err "not a neighbour model"
printf '1,2\n' >q2.csv
run kneighbors --data pts.csv --input q2.csv --indices out.npy
expect_rc 4
expect_err "features"
expect_absent out.npy
run fit knn -i pts.csv
expect_rc 2
expect_err "flashlib kneighbors --data FILE"

test_case kneighbors-ivf-flat
# two lists, every list probed: the index answers exactly
run kneighbors --data pts.csv --index ivf_flat -p n_lists=2 -p n_probes=2 -p random_state=0 -k 2 \
    --save-model ivf.flm --device cpu
expect_rc 0
cmp -s out.txt want_knn.txt || fail "ivf_flat self kneighbors: $(cat out.txt)"
run kneighbors --model ivf.flm --input q.csv -k 3 --json
expect_rc 0
expect_out '"algo": "ivf_flat"'
tr -d ' \n' <out.txt | grep -q '"indices":\[1,2,0,4,3,2\]' || fail "ivf_flat model kneighbors: $(cat out.txt)"
# a CAGRA graph over 5 points: every node within reach, so exact here
run kneighbors --data pts.csv --index cagra -p graph_degree=2 -p intermediate_graph_degree=4 -k 2 --device cpu
expect_rc 0
cmp -s out.txt want_knn.txt || fail "cagra self kneighbors: $(cat out.txt)"
run kneighbors --data pts.csv --index ivf_flat -p n_lists=2 -p n_probes=3
expect_rc 4
expect_err "n_probes=3: must be <= n_lists=2"
run kneighbors --data pts.csv --index hnsw
expect_rc 2
expect_err "--index must be knn, ivf_flat, ivf_pq or cagra"

test_case kneighbors-help
run kneighbors --help
expect_rc 0
expect_out "usage: flashlib kneighbors"
expect_out "n_neighbors"
expect_out "inner_product"

# ---- GPU required: exit 5 -----------------------------------------------------------

test_case device-cuda-without-gpu
if grep -q '"device_count": 0' <("$BIN" diagnose --json --no-check); then
    run fit kmeans -i blobs.csv -p n_clusters=3 --device cuda --labels out.npy
    expect_rc 5
    expect_err "--device cuda: no usable GPU"
    expect_absent out.npy
    run predict --model km.flm -i blobs.csv --device cuda:1
    expect_rc 5
fi

echo "test_cli: all $n_tests tests passed"
