#!/usr/bin/env python3
"""Plot the GEMM precision ladder measured by bench_linalg: time against
relative error, one panel per shape, the Pareto front (no other variant is
both faster and more accurate) joined and marked; plus a markdown table.

Usage: plot_gemm_ladder.py gemm_ladder.json out_prefix
writes out_prefix.png and out_prefix.md
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def pareto(points):
    """Indices of the points not dominated in (time, error), both minimised."""
    front = []
    for i, (t, e) in enumerate(points):
        dominated = any(
            (t2 <= t and e2 <= e) and (t2 < t or e2 < e) for j, (t2, e2) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def label(r):
    return r["variant"] + ("" if r["dtype"] == "f32" else " (f64)")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    doc = json.load(open(sys.argv[1]))
    prefix = sys.argv[2]
    cases = doc["cases"]
    fig, axes = plt.subplots(1, len(cases), figsize=(6.5 * len(cases), 5.5), squeeze=False)
    md = [
        f"# GEMM precision ladder on {doc['device']}",
        "",
        f"commit {doc['commit']}, {doc['date']}, driver {doc['driver']}, runtime {doc['runtime']}; "
        f"median of {doc['reps']} calls of fl_gemm on device arrays; inputs {doc.get('inputs', '?')}; "
        f"error {doc['error']}.",
        "",
    ]
    for ax, case in zip(axes[0], cases):
        ok = [r for r in case["results"] if "median_ms" in r and r["rel_err"] > 0]
        zero = [r for r in case["results"] if "median_ms" in r and r["rel_err"] == 0]
        pts = [(r["median_ms"], r["rel_err"]) for r in ok]
        front = pareto(pts)
        for i, r in enumerate(ok):
            ax.scatter(r["median_ms"], r["rel_err"], s=40, marker="o" if r["dtype"] == "f32" else "s",
                       color="tab:red" if i in front else "tab:blue", zorder=3)
            ax.annotate(label(r), (r["median_ms"], r["rel_err"]), textcoords="offset points", xytext=(5, 3),
                        fontsize=8)
        if front:
            ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", color="tab:red", zorder=2,
                    label="Pareto front")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("median time (ms)")
        ax.set_ylabel("relative error vs fp64")
        ax.set_title(f"{case['shape']}  (M={case['M']}, N={case['N']}, K={case['K']})", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        md += [
            f"## {case['shape']}: M={case['M']}, N={case['N']}, K={case['K']}",
            "",
            f"fp64 reference vs a host long-double product of 3 rows: {case['ref_spot_check']:.2e}"
            + (f" (float32 inputs' reference: {case['ref32_spot_check']:.2e})" if "ref32_spot_check" in case else ""),
            "",
            "| variant | data | median ms | min | max | TFLOP/s | relative error | Pareto |",
            "|---|---|---:|---:|---:|---:|---:|:-:|",
        ]
        fset = {id(ok[i]) for i in front}
        for r in sorted(case["results"], key=lambda r: (r["dtype"], r.get("median_ms", 1e30))):
            if "median_ms" not in r:
                md.append(f"| {r['variant']} | {r['dtype']} | failed: {r.get('message', '')} | | | | | |")
                continue
            md.append(
                f"| {r['variant']} | {r['dtype']} | {r['median_ms']:.3f} | {r['min_ms']:.3f} | {r['max_ms']:.3f} "
                f"| {r['tflops']:.1f} | {r['rel_err']:.2e} | {'yes' if id(r) in fset else ''} |"
            )
        if zero:
            md.append("")
            md.append("Zero error (the reference itself, not plotted): " + ", ".join(label(r) for r in zero))
        md.append("")
    fig.suptitle(f"GEMM ladder, {doc['device']} (commit {doc['commit']})")
    fig.tight_layout()
    fig.savefig(prefix + ".png", dpi=120)
    open(prefix + ".md", "w").write("\n".join(md) + "\n")
    print("wrote", prefix + ".png", prefix + ".md")


if __name__ == "__main__":
    main()
