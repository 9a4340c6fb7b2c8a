#!/bin/bash
# bench/info/same_estimates.sh — whether a change to the cost model's code
# (not to its data) leaves every estimate exactly as it was: dumps every
# field of ~20,000 requests (bench/info/dump_estimates.c) with a library
# saved before the change and with the current one, and compares the text.
#   bash bench/info/same_estimates.sh save  [build-dir]   before the change
#   bash bench/info/same_estimates.sh check [build-dir]   after it (rebuilds)
# EXCEPT=op1,op2 leaves those ops' estimates out of the comparison (a change
# meant to alter them: the check then proves every other op unchanged).
set -e
cd "$(dirname "$0")/../.."
B=${2:-build}
base=$B/info-base
case "$1" in
save)
    nice cmake --build "$B" -j2 --target flashlib_info dump_estimates >/dev/null
    rm -rf "$base" && mkdir -p "$base"
    cp -a "$B"/lib/libflashlib_info.so* "$base"/
    echo "saved $(git rev-parse --short HEAD) (with the tree's changes) in $base"
    ;;
check)
    [ -d "$base" ] || { echo "no saved library: run '$0 save' before the change" >&2; exit 2; }
    nice cmake --build "$B" -j2 --target flashlib_info dump_estimates >/dev/null
    LD_LIBRARY_PATH=$PWD/$base "$B/bin/dump_estimates" >"$B/estimates-before.txt"
    "$B/bin/dump_estimates" >"$B/estimates-after.txt"
    if [ -n "$EXCEPT" ]; then
        # drop each block (an "estimate <op> ..." line and the lines up to the next request) of those ops
        for f in before after; do
            awk -v ops=",$EXCEPT," '/^(estimate|pareto|compare|model_eval) / { skip = $1 == "estimate" && index(ops, "," $2 ",") > 0 }
                                    !skip' "$B/estimates-$f.txt" >"$B/estimates-$f.tmp"
            mv "$B/estimates-$f.tmp" "$B/estimates-$f.txt"
        done
    fi
    if cmp -s "$B/estimates-before.txt" "$B/estimates-after.txt"; then
        echo "same: $(grep -c '^estimate' "$B/estimates-after.txt") estimates, byte-identical${EXCEPT:+ (all but $EXCEPT)}"
    else
        echo "DIFFERENT: diff $B/estimates-before.txt $B/estimates-after.txt" >&2
        exit 1
    fi
    ;;
*)
    echo "usage: $0 save|check [build-dir]" >&2
    exit 2
    ;;
esac
