"""bench_ann.py — IVF-Flat on the GPU: recall@10 against queries per second
on 1,000,000 x 128 clustered float32 data, at batch 10,000 and at batch 1,
for a sweep of n_probes, against flashlib's exact GPU search and the
PyTorch brute force (torch.cdist + torch.topk) a user would write.

Usage (on the GPU machine; FLASHLIB_LIBRARY names libflashlib.so):
    PYTHONPATH=python python3 bench/gpu/bench_ann.py OUT.json [--quick]
    python3 bench/gpu/bench_ann.py --plot OUT.json   # PNG + markdown table

Data: 1000 Gaussian blobs (centres uniform in [-1, 1]^128 x 4, unit
spread), 1M rows, 10,000 queries drawn from the same blobs; seed fixed.
Ground truth: flashlib's exact GPU kNN in fp32 (precision='fp32'). Times
are wall-clock of the Python call, host arrays in and out (what a user
sees): batch 10,000 = median of 5 runs after a warm-up; batch 1 = median
latency over 300 single-query calls (QPS = 1 / median). The index is built
once (device 'cuda': the coarse k-means on the GPU), its build timed; the
first search uploads the lists (timed separately), later ones reuse them.
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

N, D, BLOBS, NQ, K = 1_000_000, 128, 1000, 10_000, 10
PROBES = [1, 2, 4, 8, 16, 32, 64, 125, 256, 512]
SINGLE = 300


def wall(fn, reps, warm=1):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), min(ts), max(ts)


def single_latency(fn, Q, n):
    for i in range(5):
        fn(Q[i:i + 1])
    ts = []
    for i in range(n):
        q = Q[i:i + 1]
        t = time.perf_counter()
        fn(q)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), float(np.percentile(ts, 10)), float(np.percentile(ts, 90))


def recall(ind, ref):
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(ind, ref))
    return hits / ref.size


def make_data(torch):
    g = torch.Generator(device="cuda").manual_seed(2024)
    centres = (torch.rand(BLOBS, D, device="cuda", generator=g) * 2 - 1) * 4
    lab = torch.randint(0, BLOBS, (N + NQ,), device="cuda", generator=g)
    pts = centres[lab] + torch.randn(N + NQ, D, device="cuda", generator=g)
    X = pts[:N].contiguous()
    Q = pts[N:].contiguous()
    return X, Q


def measure_exact(res, torch, flashlib, Xt, X, Q, single):
    """The ground truth (flashlib's exact fp32 GPU kNN) and the exact
    baselines: flashlib exact kNN (fp32; auto = tf32 scan + exact re-rank)
    and the PyTorch brute force, each at batch NQ and batch 1, into
    res["exact"]. Returns the true neighbours (NQ x K)."""
    exact32 = flashlib.NearestNeighbors(n_neighbors=K, precision="fp32", device="cuda").fit(X)
    t0 = time.perf_counter()
    _, truth = exact32.kneighbors(Q)
    res["ground_truth_s"] = time.perf_counter() - t0
    res["exact"] = {}
    for prec in ("fp32", "auto"):
        nn = flashlib.NearestNeighbors(n_neighbors=K, precision=prec, device="cuda").fit(X)
        med, lo, hi = wall(lambda: nn.kneighbors(Q), 3)
        _, ind = nn.kneighbors(Q)
        s1 = single_latency(lambda q: nn.kneighbors(q), Q, min(single, 100))
        res["exact"][f"flashlib_{prec}"] = {"batch_s": med, "batch_min_s": lo, "batch_max_s": hi,
                                            "qps_batch": NQ / med, "recall": recall(ind, truth),
                                            "single_median_s": s1[0], "single_p10_s": s1[1],
                                            "single_p90_s": s1[2], "qps_single": 1 / s1[0]}
        print("exact", prec, res["exact"][f"flashlib_{prec}"], flush=True)
        del nn

    def torch_knn(q_host, chunk=1000):
        q = torch.from_numpy(q_host).cuda()
        outs = []
        for s in range(0, q.shape[0], chunk):
            d = torch.cdist(q[s:s + chunk], Xt)
            outs.append(torch.topk(d, K, dim=1, largest=False, sorted=True)[1])
        return torch.cat(outs).cpu().numpy()

    med, lo, hi = wall(lambda: torch_knn(Q), 3)
    ind = torch_knn(Q)
    s1 = single_latency(lambda q: torch_knn(q), Q, min(single, 100))
    res["exact"]["torch_cdist_topk_fp32"] = {"batch_s": med, "batch_min_s": lo, "batch_max_s": hi,
                                             "qps_batch": NQ / med, "recall": recall(ind, truth),
                                             "single_median_s": s1[0], "single_p10_s": s1[1],
                                             "single_p90_s": s1[2], "qps_single": 1 / s1[0]}
    print("torch", res["exact"]["torch_cdist_topk_fp32"], flush=True)
    return truth


def main():
    import torch
    import flashlib

    out = sys.argv[1]
    quick = "--quick" in sys.argv
    probes = PROBES[:6] if quick else PROBES
    single = 50 if quick else SINGLE
    Xt, Qt = make_data(torch)
    X, Q = Xt.cpu().numpy(), Qt.cpu().numpy()
    res = {"benchmark": "IVF-Flat recall@10 vs QPS", "data": f"{N} x {D} float32, {BLOBS} Gaussian blobs",
           "queries": NQ, "k": K, "device": torch.cuda.get_device_name(0),
           "driver": subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True).stdout.strip(),
           "commit": os.environ.get("GIT_COMMIT", "unknown"), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "host": platform.node(), "timing": __doc__.split("Ground truth:")[1].strip()}

    truth = measure_exact(res, torch, flashlib, Xt, X, Q, single)

    # the index
    t0 = time.perf_counter()
    ix = flashlib.IVFFlat(n_neighbors=K, random_state=0, device="cuda").fit(X)
    res["build_s"] = time.perf_counter() - t0
    res["n_lists"] = int(ix.n_lists_)
    res["n_probes_auto"] = max(8, res["n_lists"] // 32)
    t0 = time.perf_counter()
    ix.kneighbors(Q[:1])
    res["first_search_s"] = time.perf_counter() - t0  # uploads the lists
    print("build", res["build_s"], "first search", res["first_search_s"], flush=True)
    res["ivf"] = []
    for p in probes:
        ix.set_params(n_probes=p)
        med, lo, hi = wall(lambda: ix.kneighbors(Q), 5)
        _, ind = ix.kneighbors(Q)
        s1 = single_latency(lambda q: ix.kneighbors(q), Q, single)
        row = {"n_probes": p, "batch_s": med, "batch_min_s": lo, "batch_max_s": hi, "qps_batch": NQ / med,
               "recall": recall(ind, truth), "single_median_s": s1[0], "single_p10_s": s1[1],
               "single_p90_s": s1[2], "qps_single": 1 / s1[0]}
        res["ivf"].append(row)
        print("ivf", row, flush=True)
        with open(out, "w") as f:
            json.dump(res, f, indent=1)
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


def plot(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = json.load(open(path))
    base = os.path.splitext(path)[0]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, key, title in ((axes[0], "qps_batch", f"batch {r['queries']:,}"), (axes[1], "qps_single", "batch 1")):
        rec = [e["recall"] for e in r["ivf"]]
        qps = [e[key] for e in r["ivf"]]
        ax.plot(rec, qps, "o-", label="flashlib IVF-Flat (n_probes sweep)")
        for e in r["ivf"]:
            ax.annotate(str(e["n_probes"]), (e["recall"], e[key]), textcoords="offset points", xytext=(4, 4),
                        fontsize=7)
        marks = {"flashlib_auto": ("s", "flashlib exact (tf32 + re-rank)"), "flashlib_fp32": ("D", "flashlib exact (fp32)"),
                 "torch_cdist_topk_fp32": ("^", "PyTorch cdist + topk (fp32)")}
        for name, (m, lab) in marks.items():
            e = r["exact"][name]
            ax.plot([e["recall"]], [e[key]], m, markersize=8, label=lab)
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second")
        ax.set_title(f"{title}: {r['data']}, k={r['k']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{r['device']} — commit {r['commit']} — {r['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(base + ".png", dpi=120)
    lines = [f"# IVF-Flat: recall@10 vs QPS ({r['device']}, commit {r['commit']}, {r['date']})", "",
             f"Data: {r['data']}; {r['queries']:,} queries from the same blobs; k = {r['k']}; "
             f"n_lists = {r['n_lists']} (auto), n_probes auto = {r['n_probes_auto']}. "
             f"Build (device 'cuda'): {r['build_s']:.2f} s; first search (uploads the lists): "
             f"{r['first_search_s'] * 1e3:.1f} ms. Ground truth: flashlib exact kNN, fp32.", "",
             "Timings are wall-clock around the Python call, host arrays in and out. Batch 10,000: median of "
             "5 runs; batch 1: median latency of single-query calls, QPS = 1 / median.", "",
             "| method | n_probes | recall@10 | batch 10,000: ms | QPS | batch 1: ms (p10-p90) | QPS |",
             "|---|---|---|---|---|---|---|"]
    for e in r["ivf"]:
        lines.append(f"| IVF-Flat | {e['n_probes']} | {e['recall']:.4f} | {e['batch_s'] * 1e3:.2f} | "
                     f"{e['qps_batch']:,.0f} | {e['single_median_s'] * 1e3:.3f} ({e['single_p10_s'] * 1e3:.3f}-"
                     f"{e['single_p90_s'] * 1e3:.3f}) | {e['qps_single']:,.0f} |")
    names = {"flashlib_auto": "flashlib exact kNN (tf32 scan + exact re-rank)",
             "flashlib_fp32": "flashlib exact kNN (fp32)", "torch_cdist_topk_fp32": "PyTorch cdist + topk (fp32)"}
    for name, lab in names.items():
        e = r["exact"][name]
        lines.append(f"| {lab} | — | {e['recall']:.4f} | {e['batch_s'] * 1e3:.2f} | {e['qps_batch']:,.0f} | "
                     f"{e['single_median_s'] * 1e3:.3f} ({e['single_p10_s'] * 1e3:.3f}-"
                     f"{e['single_p90_s'] * 1e3:.3f}) | {e['qps_single']:,.0f} |")
    open(base + ".md", "w").write("\n".join(lines) + "\n")
    print("wrote", base + ".png", base + ".md")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--plot":
        plot(sys.argv[2])
    else:
        main()
        if "--no-plot" not in sys.argv:
            plot(sys.argv[1])
