"""Markdown table of the GPU KMeans figures: flashlib beside PyTorch and
scikit-learn on the same machine, the physical floor and the issue's target.

    python3 bench/gpu/summarize.py bench/results/kmeans_cuda_h100_<commit>.json \
        bench/results/kmeans_peers_*.json

Reads only recorded JSON (no measuring), so the README's table is
reproducible from bench/results/.
"""
import json
import sys


def main(paths):
    ours, peers, meta = [], {}, []
    for p in paths:
        with open(p) as f:
            d = json.load(f)
        if d.get("bench") == "kmeans_fit_lloyd":
            ours += d["results"]
            meta.append(f"{d['device']}, driver {d.get('nvidia_driver', '?')}, commit {d['commit']}, {d['date']}")
        else:
            for r in d.get("results", []):
                peers[(r["peer"], r["shape"], r["k"], r["precision"])] = r["median_ms"]
    print("| shape, k | precision | flashlib ms | floor ms | x floor | target ms | PyTorch ms | scikit-learn ms (16 cores) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in ours:
        shape, k, prec = r["shape"], r["k"], r["precision"]
        torch = peers.get(("torch", shape, k, prec))
        sk = peers.get(("sklearn", shape, k, "fp32"))
        target = r.get("target_ms") or 0
        print(f"| {shape}, {k} | {prec} | {r['median_ms']:.2f} | {r['floor_ms']:.2f} | {r['ratio_to_floor']:.2f} | "
              f"{target if target else '-'} | {f'{torch:.1f}' if torch else '-'} | {f'{sk:.0f}' if sk else '-'} |")
    for m in meta:
        print(f"\n{m}")


if __name__ == "__main__":
    main(sys.argv[1:])
