"""Per-instruction statistics of one kernel from ncu's source page, as
bench/gpu/ncu_detail.sh writes it (PREFIX.sass.csv): where a kernel's
executed instructions and stall samples go.

    python3 bench/gpu/sass_stats.py PREFIX.sass.csv [KERNEL_INDEX] [TOP]

Prints the opcode mix, the stall reasons, the hottest instructions, and the
instructions grouped by execution count: a group with count c runs c times
per launch, so (count, instructions) pairs read as loop bodies, e.g. the
body of a per-tile loop and the iterations of an inner loop.
"""
import collections
import csv
import sys


def kernels(path):
    out, cur = [], None
    for r in csv.reader(open(path)):
        if r and r[0] == "Kernel Name":
            cur = [r[1], None, []]
            out.append(cur)
        elif cur is not None and r and r[0] == "Address":
            cur[1] = r
        elif cur is not None and cur[1] and len(r) == len(cur[1]):
            cur[2].append(r)
    return out


def main(path, which=0, top=20):
    name, hdr, ins = kernels(path)[which]
    ix = {h: i for i, h in enumerate(hdr)}

    def v(r, k):
        try:
            return float(r[ix[k]])
        except (KeyError, ValueError):
            return 0.0

    def op(r):
        s = r[ix["Source"]].split() or ["?"]
        return (s[1] if s[0].startswith("@") and len(s) > 1 else s[0]).split(".")[0]

    ex, smp = "Instructions Executed", "Warp Stall Sampling (All Samples)"
    tot = sum(v(r, ex) for r in ins) or 1.0
    samp = sum(v(r, smp) for r in ins) or 1.0
    print(f"{name[:110]}\n{len(ins)} SASS instructions, {tot:.4g} warp instructions executed, {samp:.0f} samples")
    mix = collections.Counter()
    for r in ins:
        mix[op(r)] += v(r, ex)
    print("opcodes: " + ", ".join(f"{o} {100 * c / tot:.1f}%" for o, c in mix.most_common(16)))
    stalls = collections.Counter({h[6:]: sum(v(r, h) for r in ins) for h in hdr
                                  if h.startswith("stall_") and "Not Issued" not in h})
    print("stalls: " + ", ".join(f"{s} {100 * c / samp:.0f}%" for s, c in stalls.most_common(8)))
    groups = collections.OrderedDict()
    for r in ins:
        g = groups.setdefault(v(r, ex), [0, 0.0, 0.0])
        g[0] += 1
        g[1] += v(r, ex)
        g[2] += v(r, smp)
    print("by execution count:  count  instructions  %executed  %samples")
    for c, (n, s, sm) in sorted(groups.items(), key=lambda x: -x[1][1])[:12]:
        print(f"  {c:12.0f} {n:8d} {100 * s / tot:10.1f}% {100 * sm / samp:8.1f}%")
    print("hottest (samples, executed, instruction):")
    for r in sorted(ins, key=lambda r: -v(r, smp))[:top]:
        print(f"  {v(r, smp):7.0f} {v(r, ex):10.0f}  {r[ix['Source']].strip()[:80]}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0, int(sys.argv[3]) if len(sys.argv) > 3 else 20)
