"""fresh_errors.py — a calibration's errors on shapes measured after it was fitted.

fit.py's held-out points are drawn from the same sweep the model was shaped
on. A second sweep (another --seed) measured after the model and its
coefficients were fixed is a cleaner test: this prints, per entry, the
median and p90 error of the coefficients in SUMMARY (fit.py --summary of
the earlier fit) on the points of NEW that OLD does not have.

  python3 bench/calib/fresh_errors.py --info-lib build/lib/libflashlib_info.so \\
      --summary old_summary.json --old old/H100-SXM.json --new bench/results/calib/H100-SXM.json
"""
import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fit  # noqa: E402
import infolib  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--info-lib", required=True)
    ap.add_argument("--summary", required=True, help="fit.py --summary of the earlier fit")
    ap.add_argument("--old", required=True, help="the measurement file that fit used")
    ap.add_argument("--new", required=True, help="the same device's file with the later sweep's points")
    a = ap.parse_args()
    info = infolib.Info(a.info_lib)
    with open(a.old) as f:
        old = json.load(f)
    with open(a.new) as f:
        new = json.load(f)
    with open(a.summary) as f:
        entries = {(e["op"], e["variant"], e["device"]): e for e in json.load(f)}
    dev = new["device"]
    seen = {(p["op"], p["variant"], fit.point_key(p)) for p in old["points"]}
    errs = {}
    for p in new["points"]:
        e = entries.get((p["op"], p["variant"], dev))
        if not e or (p["op"], p["variant"], fit.point_key(p)) in seen:
            continue
        est = fit.predict(info, dev, dict(p, device=dev), e["coef"])
        errs.setdefault((p["op"], p["variant"]), []).append(abs(est - p["ms"]) / p["ms"])
    print(f"{dev}: the earlier fit's coefficients on shapes measured after it")
    print("| op | variant | new shapes | median | p90 |")
    print("|---|---|---|---|---|")
    for (op, v), x in sorted(errs.items()):
        print(f"| {op} | {v} | {len(x)} | {statistics.median(x):.1%} | {fit.pct(x, 0.9):.1%} |")


if __name__ == "__main__":
    main()
