"""bench_ann_pq_cagra.py — IVF-PQ and CAGRA searched on the GPU: recall@10
against queries per second on bench_ann.py's data (1,000,000 x 128
clustered float32, 10,000 queries), at batch 10,000 and at batch 1, for a
sweep of each index's recall knob (IVF-PQ: n_probes at the default
refine, recorded in the JSON; CAGRA: itopk_size, search_width 1 and 4), against flashlib's
exact GPU search and the PyTorch brute force (torch.cdist + torch.topk).

Usage (on the GPU machine; FLASHLIB_LIBRARY names libflashlib.so):
    PYTHONPATH=python python3 bench/gpu/bench_ann_pq_cagra.py OUT.json [--quick] [--no-exact]
    python3 bench/gpu/bench_ann_pq_cagra.py --plot OUT.json   # PNG + markdown table

Both indexes are built once with device 'cuda' (IVF-PQ: the coarse and
codebook k-means and the list assignment on the GPU, encoding on the CPU;
CAGRA: the exact kNN graph on the GPU, pruning on the CPU), their builds
timed. The first search uploads the index (timed separately). Times are
wall-clock of the Python call, host arrays in and out: batch 10,000 =
median of 5 runs after a warm-up; batch 1 = median latency over single-
query calls (QPS = 1 / median). Ground truth: flashlib's exact GPU kNN in
fp32. For one setting of each index the CPU backend searches the first
1,000 queries of the same index: its recall and the share of its ids the
GPU returned too are recorded (the GPU search's agreement with the CPU).
"""
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_ann import NQ, K, N, D, BLOBS, make_data, measure_exact, recall, single_latency, wall  # noqa: E402

PQ_PROBES = [4, 8, 16, 32, 64, 125, 256]
CAGRA_SWEEP = [(16, 1), (32, 1), (64, 1), (128, 1), (256, 1), (64, 4), (128, 4)]
SINGLE = 200
CPU_Q = 1000


def agreement(ig, ic):
    """Share of the CPU's ids the GPU returned for the same query."""
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / len(b) for a, b in zip(ig, ic)]))


def sweep_point(ix, Q, truth, single):
    med, lo, hi = wall(lambda: ix.kneighbors(Q), 5)
    _, ind = ix.kneighbors(Q)
    s1 = single_latency(lambda q: ix.kneighbors(q), Q, single)
    return {"batch_s": med, "batch_min_s": lo, "batch_max_s": hi, "qps_batch": NQ / med,
            "recall": recall(ind, truth), "single_median_s": s1[0], "single_p10_s": s1[1],
            "single_p90_s": s1[2], "qps_single": 1 / s1[0]}


def cpu_check(ix, Q, truth):
    """The same index searched by the CPU backend on the first CPU_Q queries."""
    cls = type(ix)
    state = ix.__getstate__()
    state["device"] = "cpu"
    c = cls.__new__(cls)
    c.__setstate__(state)
    t0 = time.perf_counter()
    _, ic = c.kneighbors(Q[:CPU_Q])
    t = time.perf_counter() - t0
    _, ig = ix.kneighbors(Q[:CPU_Q])
    return {"queries": CPU_Q, "cpu_s": t, "cpu_qps": CPU_Q / t, "cpu_recall": recall(ic, truth[:CPU_Q]),
            "gpu_recall": recall(ig, truth[:CPU_Q]), "gpu_cpu_agreement": agreement(ig, ic)}


def save(out, res):
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


def main():
    import torch
    import flashlib

    out = sys.argv[1]
    quick = "--quick" in sys.argv
    single = 50 if quick else SINGLE
    probes = PQ_PROBES[1::2] if quick else PQ_PROBES
    csweep = CAGRA_SWEEP[1::2] if quick else CAGRA_SWEEP
    Xt, Qt = make_data(torch)
    X, Q = Xt.cpu().numpy(), Qt.cpu().numpy()
    res = {"benchmark": "IVF-PQ and CAGRA recall@10 vs QPS", "data": f"{N} x {D} float32, {BLOBS} Gaussian blobs",
           "queries": NQ, "k": K, "device": torch.cuda.get_device_name(0),
           "driver": subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True).stdout.strip(),
           "commit": os.environ.get("GIT_COMMIT", "unknown"), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "host": platform.node(), "timing": __doc__.split("Both indexes")[1].strip()}
    if "--no-exact" in sys.argv:
        nn = flashlib.NearestNeighbors(n_neighbors=K, precision="fp32", device="cuda").fit(X)
        truth = nn.kneighbors(Q)[1]
        del nn
    else:
        truth = measure_exact(res, torch, flashlib, Xt, X, Q, single)
    save(out, res)

    # ---- IVF-PQ
    t0 = time.perf_counter()
    pq = flashlib.IVFPQ(n_neighbors=K, random_state=0, device="cuda").fit(X)
    res["pq_build_s"] = time.perf_counter() - t0
    res["pq_params"] = {"n_lists": int(pq.n_lists_), "pq_dim": int(pq.pq_dim_), "pq_bits": int(pq.pq_bits_),
                        "refine": float(pq.get_params()["refine"]), "n_probes_auto": max(8, int(pq.n_lists_) // 32)}
    t0 = time.perf_counter()
    pq.kneighbors(Q[:1])
    res["pq_first_search_s"] = time.perf_counter() - t0
    print("pq build", res["pq_build_s"], "first search", res["pq_first_search_s"], flush=True)
    pq.set_params(n_probes=res["pq_params"]["n_probes_auto"])
    res["pq_cpu_check"] = dict(cpu_check(pq, Q, truth), n_probes=res["pq_params"]["n_probes_auto"])
    print("pq cpu check", res["pq_cpu_check"], flush=True)
    res["pq"] = []
    for p in probes:
        pq.set_params(n_probes=p)
        row = dict(sweep_point(pq, Q, truth, single), n_probes=p)
        res["pq"].append(row)
        print("pq", row, flush=True)
        save(out, res)
    del pq

    # ---- CAGRA
    t0 = time.perf_counter()
    cg = flashlib.CAGRA(n_neighbors=K, random_state=0, device="cuda").fit(X)
    res["cagra_build_s"] = time.perf_counter() - t0
    res["cagra_params"] = {"graph_degree": 64, "intermediate_graph_degree": 128, "n_seeds": 32,
                           "entry_points": int(np.ceil(np.sqrt(N)))}
    t0 = time.perf_counter()
    cg.kneighbors(Q[:1])
    res["cagra_first_search_s"] = time.perf_counter() - t0
    print("cagra build", res["cagra_build_s"], "first search", res["cagra_first_search_s"], flush=True)
    save(out, res)
    res["cagra_cpu_check"] = dict(cpu_check(cg, Q, truth), itopk_size=64, search_width=1)
    print("cagra cpu check", res["cagra_cpu_check"], flush=True)
    res["cagra"] = []
    for itopk, width in csweep:
        cg.set_params(itopk_size=itopk, search_width=width)
        row = dict(sweep_point(cg, Q, truth, single), itopk_size=itopk, search_width=width)
        res["cagra"].append(row)
        print("cagra", row, flush=True)
        save(out, res)
    save(out, res)


def plot(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = json.load(open(path))
    base = os.path.splitext(path)[0]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, key, title in ((axes[0], "qps_batch", f"batch {r['queries']:,}"), (axes[1], "qps_single", "batch 1")):
        for name, rows, lab, knob in (("pq", r.get("pq", []), "flashlib IVF-PQ (n_probes)", "n_probes"),
                                      ("cagra", [e for e in r.get("cagra", []) if e["search_width"] == 1],
                                       "flashlib CAGRA (itopk_size, width 1)", "itopk_size"),
                                      ("cagra4", [e for e in r.get("cagra", []) if e["search_width"] == 4],
                                       "flashlib CAGRA (itopk_size, width 4)", "itopk_size")):
            if not rows:
                continue
            ax.plot([e["recall"] for e in rows], [e[key] for e in rows], "o-", label=lab)
            for e in rows:
                ax.annotate(str(e[knob]), (e["recall"], e[key]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
        marks = {"flashlib_auto": ("s", "flashlib exact (tf32 + re-rank)"),
                 "flashlib_fp32": ("D", "flashlib exact (fp32)"),
                 "torch_cdist_topk_fp32": ("^", "PyTorch cdist + topk (fp32)")}
        for name, (m, lab) in marks.items():
            if name in r.get("exact", {}):
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

    def row(lab, knob, e):
        return (f"| {lab} | {knob} | {e['recall']:.4f} | {e['batch_s'] * 1e3:.2f} | {e['qps_batch']:,.0f} | "
                f"{e['single_median_s'] * 1e3:.3f} ({e['single_p10_s'] * 1e3:.3f}-{e['single_p90_s'] * 1e3:.3f}) | "
                f"{e['qps_single']:,.0f} |")

    pp = r.get("pq_params", {})
    lines = [f"# IVF-PQ and CAGRA on the GPU: recall@10 vs QPS ({r['device']}, commit {r['commit']}, {r['date']})",
             "", f"Data: {r['data']}; {r['queries']:,} queries from the same blobs; k = {r['k']}. "
             "Ground truth: flashlib exact kNN, fp32. Timings are wall-clock around the Python call, host arrays "
             "in and out. Batch 10,000: median of 5 runs; batch 1: median latency of single-query calls, "
             "QPS = 1 / median.", ""]
    if "pq_build_s" in r:
        lines.append(f"IVF-PQ: n_lists = {pp.get('n_lists')}, pq_dim = {pp.get('pq_dim')}, pq_bits = "
                     f"{pp.get('pq_bits')}, refine = {pp.get('refine', 4):g} (pool of {pp.get('refine', 4) * r['k']:g} "
                     "re-ranked exactly); build (device 'cuda') "
                     f"{r['pq_build_s']:.1f} s; first search (uploads the index) {r['pq_first_search_s'] * 1e3:.0f} ms.")
    if "cagra_build_s" in r:
        cp = r.get("cagra_params", {})
        lines.append(f"CAGRA: graph_degree = {cp.get('graph_degree')}, intermediate_graph_degree = "
                     f"{cp.get('intermediate_graph_degree')}, {cp.get('entry_points')} entry nodes + "
                     f"{cp.get('n_seeds')} random seeds; build (device 'cuda') {r['cagra_build_s']:.1f} s; first "
                     f"search (uploads the graph) {r['cagra_first_search_s'] * 1e3:.0f} ms.")
    for name, lab in (("pq_cpu_check", "IVF-PQ"), ("cagra_cpu_check", "CAGRA")):
        if name in r:
            c = r[name]
            knob = (f"n_probes = {c['n_probes']}" if "n_probes" in c
                    else f"itopk_size = {c['itopk_size']}, search_width = {c['search_width']}")
            lines.append(f"{lab} GPU vs CPU backend, same index, {knob}, first {c['queries']:,} queries: "
                         f"recall GPU {c['gpu_recall']:.4f}, CPU {c['cpu_recall']:.4f}; the GPU returned "
                         f"{c['gpu_cpu_agreement'] * 100:.2f}% of the CPU's ids; CPU search {c['cpu_s']:.2f} s "
                         f"({c['cpu_qps']:,.0f} QPS on the machine's CPU cores).")
    lines += ["", "| method | knob | recall@10 | batch 10,000: ms | QPS | batch 1: ms (p10-p90) | QPS |",
              "|---|---|---|---|---|---|---|"]
    for e in r.get("pq", []):
        lines.append(row("IVF-PQ", f"n_probes={e['n_probes']}", e))
    for e in r.get("cagra", []):
        lines.append(row("CAGRA", f"itopk={e['itopk_size']}, width={e['search_width']}", e))
    names = {"flashlib_auto": "flashlib exact kNN (tf32 scan + exact re-rank)",
             "flashlib_fp32": "flashlib exact kNN (fp32)", "torch_cdist_topk_fp32": "PyTorch cdist + topk (fp32)"}
    for name, lab in names.items():
        if name in r.get("exact", {}):
            lines.append(row(lab, "—", r["exact"][name]))
    open(base + ".md", "w").write("\n".join(lines) + "\n")
    print("wrote", base + ".png", base + ".md")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--plot":
        plot(sys.argv[2])
    else:
        main()
        if "--no-plot" not in sys.argv:
            plot(sys.argv[1])
