#!/usr/bin/env python3
"""Turn bench/run.sh's raw.tsv (+ the limit references) into bench/RESULTS.md.

Usage: report.py --raw RAW.tsv --meta META --lab LAB --out RESULTS.md [--readme README.md]
       report.py --merge OLD.tsv NEW.tsv > MERGED.tsv

--merge keeps OLD's rows except for the (builder, workload, phase) groups that NEW has, so
that a partial re-run (PHASES=push, one workload) replaces just what it measured.

With --readme, the table between the README's `<!-- bench:begin -->` and
`<!-- bench:end -->` markers is replaced by the summary table (nothing else is touched).
"""

import argparse
import csv
import glob
import json
import os
import platform
import re
import statistics
import subprocess
from collections import defaultdict

PHASES = [
    ("cold", "cold build"),
    ("noop", "no-op rebuild"),
    ("change", "1-file change rebuild"),
    ("push", "push to :5000"),
]
PEER_NAMES = {
    "rbuild": "rbuild",
    "docker": "docker BuildKit",
    "buildah": "buildah",
}


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def fmt_s(v):
    if v is None:
        return "–"
    if v < 0.1:
        return f"{v:.3f}"
    if v < 10:
        return f"{v:.2f}"
    return f"{v:.1f}"


def fmt_ratio(a, b):
    if a is None or b is None or b <= 0:
        return "–"
    r = a / b
    return f"**{r:.2f}×**" if r < 1 else f"{r:.2f}×"


def load_raw(path):
    """(builder, workload, phase) -> {"ok": [(s, rss_kb)], "fail": n}"""
    data = defaultdict(lambda: {"ok": [], "fail": 0})
    order_w, order_b = [], []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            key = (row["builder"], row["workload"], row["phase"])
            if row["workload"] not in order_w:
                order_w.append(row["workload"])
            if row["builder"] not in order_b:
                order_b.append(row["builder"])
            if row["status"] == "ok":
                data[key]["ok"].append((float(row["seconds"]), int(row["rss_kb"])))
            else:
                data[key]["fail"] += 1
    return data, order_w, order_b


def load_limits(lab):
    """id -> fastest run in seconds, from limits.sh's hyperfine JSON (newest per id) and
    limits-extra.tsv. The fastest run, not the median: a limit is what the machine can do,
    and on a shared machine slower runs only measure someone else's load."""
    lim = {}
    newest = {}
    for f in glob.glob(os.path.join(lab, "results", "limits-2*", "*.json")):
        lid = os.path.basename(f)[:-5]
        if lid not in newest or os.path.getmtime(f) > os.path.getmtime(newest[lid]):
            newest[lid] = f
    for lid, f in newest.items():
        try:
            with open(f) as fh:
                lim[lid] = json.load(fh)["results"][0]["min"]
        except (OSError, ValueError, KeyError, IndexError):
            pass
    extra = os.path.join(lab, "results", "limits-extra.tsv")
    if os.path.exists(extra):
        with open(extra) as fh:
            for line in fh:
                parts = line.split("\t")
                if len(parts) >= 3 and parts[2].strip():
                    lim[parts[0]] = float(parts[2])
    return lim


def floors(lim):
    """workload -> phase -> (seconds, how it is made up); a "limit" a builder cannot beat
    without skipping work the workload needs (composed from the measured references)."""

    def g(*ids):
        vals = [lim.get(i) for i in ids]
        return None if any(v is None for v in vals) else sum(vals)

    # The cheapest sandbox measured: a namespaced fork+exec (`unshare`), not `runc run`,
    # since a builder need not go through an OCI runtime.
    sandbox = lim.get("e_unshare100")
    sb1 = sandbox / 100 if sandbox is not None else None

    def plus(a, b):
        return None if a is None or b is None else a + b

    return {
        "many-steps": {
            "cold": (plus(g("pull_busybox"), None if sb1 is None else 10 * sb1),
                     "pull busybox layer + 10 namespaced `unshare` starts"),
        },
        "small-files": {
            "cold": (g("pull_busybox", "d_cp_small", "b_tar_pigz1"),
                     "pull busybox + `cp -a` 20k files + `tar | pigz -1 | sha256sum`"),
            "noop": (g("a0_statwalk"), "stat walk of the 20k-file context"),
            "change": (g("a0_statwalk", "d_cp_small", "b_tar_pigz1"),
                       "stat walk + `cp -a` + `tar | pigz -1 | sha256sum` (the COPY is one step)"),
        },
        "big-file": {
            "cold": (g("pull_busybox", "c0_openssl_big", "c_cp_big", "c_pigz1_big"),
                     "pull busybox + sha256 (SHA-NI) + `cp` + `pigz -1 | sha256sum` of 1 GiB"),
            "change": (g("c0_openssl_big", "c_cp_big", "c_pigz1_big"),
                       "sha256 (SHA-NI) + `cp` + `pigz -1 | sha256sum` of 1 GiB"),
            "push": (g("c_cp_big", "c0_openssl_big"),
                     "registry writes and verifies 1 GiB: `cp` + sha256 (SHA-NI)"),
        },
        "multistage-parallel": {
            "cold": (g("pull_busybox", "ms_par4"),
                     "pull busybox + the 4 stage commands run at once on the host"),
        },
        "debian-app": {
            "cold": (plus(g("pull_debian", "debian_buildsh"), None if sb1 is None else 3 * sb1),
                     "fetch + gunzip + untar the Debian layer + `build.sh` in a chroot + 3 `unshare` starts"),
            "change": (plus(g("debian_buildsh"), None if sb1 is None else 2 * sb1),
                       "`build.sh` in a chroot + 2 `unshare` starts"),
        },
    }


def machine_facts(lab):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = sh("free -g | awk '/Mem:/{print $2}'")
    disk = sh(f"findmnt -no SOURCE,FSTYPE -T {lab} | tr -s ' '")
    os_name = sh(". /etc/os-release; echo $PRETTY_NAME")
    flags = sh("grep -m1 '^flags' /proc/cpuinfo")
    sha = "SHA-NI" if " sha_ni" in flags else "no SHA-NI"
    return (f"{os.cpu_count()} vCPU ({cpu}, {sha}), {mem} GiB RAM, kernel {platform.release()}, "
            f"{os_name}, disk {disk} (virtual disk) for `{lab}`")


def read_meta(path):
    """key=value lines; `rerun` lines (one per partial re-run merged in) are collected."""
    meta = {"rerun": []}
    try:
        with open(path) as fh:
            for line in fh:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    if k == "rerun":
                        meta["rerun"].append(v)
                    else:
                        meta[k] = v
    except OSError:
        pass
    return meta


def merge(old, new):
    with open(new) as fh:
        new_rows = fh.read().splitlines()
    header, new_rows = new_rows[0], [r for r in new_rows[1:] if r]
    replaced = {tuple(r.split("\t")[:3]) for r in new_rows}
    out = [header]
    with open(old) as fh:
        out += [r for r in fh.read().splitlines()[1:] if r and tuple(r.split("\t")[:3]) not in replaced]
    print("\n".join(out + new_rows))


def stats(cell):
    if not cell or not cell["ok"]:
        return None
    secs = [s for s, _ in cell["ok"]]
    rss = [r for _, r in cell["ok"]]
    return {
        "med": statistics.median(secs), "min": min(secs), "max": max(secs), "n": len(secs),
        "rss_med": statistics.median(rss) / 1024, "rss_max": max(rss) / 1024, "fail": cell["fail"],
    }


def cell_text(st, fail):
    if st is None:
        return "FAIL" if fail else "–"
    txt = fmt_s(st["med"])
    if st["n"] > 1:
        txt += f" ({fmt_s(st['min'])}–{fmt_s(st['max'])})"
    if st["fail"]:
        txt += f" ⚠{st['fail']} failed"
    return txt


def workload_table(w, builders, data, fl):
    peers = [b for b in builders if b != "rbuild"]
    has_rbuild = "rbuild" in builders
    head = ["metric"] + [PEER_NAMES.get(b, b) for b in builders]
    if has_rbuild:
        head += [f"rbuild / {PEER_NAMES.get(p, p)}" for p in peers]
    head += ["limit ref", "rbuild / limit"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    all_st = {}
    for ph, label in PHASES:
        st = {b: stats(data.get((b, w, ph))) for b in builders}
        all_st[ph] = st
        row = [f"{label}, s"]
        for b in builders:
            row.append(cell_text(st[b], data.get((b, w, ph), {"fail": 0})["fail"]))
        med = {b: (st[b]["med"] if st[b] else None) for b in builders}
        if has_rbuild:
            row += [fmt_ratio(med["rbuild"], med[p]) for p in peers]
        ref = fl.get(w, {}).get(ph, (None, ""))[0]
        row.append(fmt_s(ref) if ref is not None else "–")
        row.append(fmt_ratio(med.get("rbuild"), ref) if ref is not None else "–")
        out.append("| " + " | ".join(row) + " |")
    for which, label in (("cold", "peak RSS, cold build, MiB"), (None, "peak RSS, any phase, MiB")):
        row = [label]
        vals = {}
        for b in builders:
            if which:
                s = all_st["cold"][b]
                v = s["rss_med"] if s else None
            else:
                vs = [all_st[ph][b]["rss_max"] for ph, _ in PHASES if all_st[ph][b]]
                v = max(vs) if vs else None
            vals[b] = v
            row.append(f"{v:.0f}" if v is not None else "–")
        if has_rbuild:
            row += [fmt_ratio(vals["rbuild"], vals[p]) for p in peers]
        row += ["–", "–"]
        out.append("| " + " | ".join(row) + " |")
    notes = [f"{PHASES[[p for p, _ in PHASES].index(ph)][1]}: {why}"
             for ph, (v, why) in fl.get(w, {}).items() if v is not None]
    if notes:
        out.append("")
        out.append("Limit refs: " + "; ".join(notes) + ".")
    return out


def summary_table(workloads, builders, data):
    head = ["workload"] + [label for _, label in PHASES] + ["peak RSS MiB"]
    out = [f"Seconds (median), {' / '.join(PEER_NAMES.get(b, b) for b in builders)}:", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for w in workloads:
        row = [w]
        for ph, _ in PHASES:
            vals = []
            for b in builders:
                st = stats(data.get((b, w, ph)))
                vals.append(fmt_s(st["med"]) if st else "–")
            row.append(" / ".join(vals))
        rss = []
        for b in builders:
            st = stats(data.get((b, w, "cold")))
            rss.append(f"{st['rss_med']:.0f}" if st else "–")
        row.append(" / ".join(rss))
        out.append("| " + " | ".join(row) + " |")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--merge", nargs=2, metavar=("OLD", "NEW"))
    ap.add_argument("--raw")
    ap.add_argument("--meta")
    ap.add_argument("--lab")
    ap.add_argument("--out")
    ap.add_argument("--readme")
    a = ap.parse_args()
    if a.merge:
        merge(*a.merge)
        return
    if not (a.raw and a.meta and a.lab and a.out):
        ap.error("--raw, --meta, --lab and --out are required")

    data, workloads, builders = load_raw(a.raw)
    order = [b for b in ("rbuild", "docker", "buildah") if b in builders]
    builders = order + [b for b in builders if b not in order]
    lim = load_limits(a.lab)
    fl = floors(lim)
    meta = read_meta(a.meta)
    facts = machine_facts(a.lab)
    runs = defaultdict(int)
    for (b, w, ph), c in data.items():
        runs[ph] = max(runs[ph], len(c["ok"]) + c["fail"])

    md = ["# rbuild benchmarks: rbuild vs docker BuildKit vs buildah", ""]
    md.append(f"Generated by `bash bench/run.sh` (started {meta.get('start', '?')}); raw rows: "
              "`bench/results/latest.tsv`.")
    for r in meta["rerun"]:
        md.append(f"Re-run merged in (replacing those rows): {r}.")
    md.append("")
    md.append(f"- Machine: {facts}.")
    md.append(f"- Load average at start / end: {meta.get('load_start', '?')} / {meta.get('load_end', 'running')} "
              "(a shared VM; other jobs ran at the same time, so absolute numbers are noisy — compare ratios "
              "within this run).")
    md.append(f"- Builders: rbuild {meta.get('rbuild', '?')} (release build, `--root` under `$LAB/peers/rbuild`), "
              f"docker {meta.get('docker', '?')} with BuildKit (`DOCKER_BUILDKIT=1 docker build --network host`, "
              f"dockerd overlay2), buildah {meta.get('buildah', '?')} (overlay, `--isolation chroot --layers`); "
              f"runc {meta.get('runc', '?')}, registry distribution {meta.get('registry', '?')} on 127.0.0.1:5000.")
    md.append("- Runs per median: " + ", ".join(f"{label} n={runs[ph]}" for ph, label in PHASES if runs[ph])
              + ". Builders take turns run by run; cells are `median (min–max)`; ratios are medians, "
                "**bold** where rbuild is faster.")
    md.append("")
    md.append("What each measurement means (identical for every builder; all go through "
              "`../shared/bench/peer.sh`):")
    md.append("")
    md.append("- **cold build**: the builder's whole state is wiped first (not timed): rbuild's store "
              "directory, buildah's storage, every docker image plus `docker builder prune -af`. The base "
              "image is therefore pulled from the lab registry 127.0.0.1:5000 (loopback, plain HTTP) during "
              "the build; no builder has it locally. The OS page cache is not dropped (the context is hot "
              "for all builders alike).")
    md.append("- **no-op rebuild**: the same build again, nothing changed (after one untimed warm-up).")
    md.append("- **1-file change rebuild**: `../shared/bench/change-ctx.sh W` rewrites one context file used "
              "by a late COPY (new content each run), then the build runs again.")
    md.append("- **push**: upload of the last built image to an emptied repository "
              "`127.0.0.1:5000/bench/W-<builder>` (`registry-rm.sh` first; base layers may be cross-repo "
              "mounted from `lab/*`, as against any registry). docker and buildah compress layers during "
              "the push; rbuild compresses when it stores the image (inside the build timings), so its "
              "push is `rbuild tag bench/W DEST && rbuild push DEST` (the tag is a metadata write).")
    md.append("- **peak RSS**: `/usr/bin/time -f %M` of the builder command (largest process among it and "
              "its children); for docker plus dockerd's `VmHWM` since a reset before the command "
              "(`/proc/PID/clear_refs`), because the daemon does the work. Page cache is not counted.")
    md.append("- **limit ref**: what the work the step cannot avoid costs on this machine with plain tools "
              "(`../shared/bench/limits.sh` + `bench/limits-extra.sh`, fastest run of each, composed as "
              "noted under each table). `rbuild / limit` says how close rbuild is; under 1× means rbuild "
              "skips or overlaps part of that work (e.g. hashes while copying, or a faster compressor).")
    md.append("")
    md.append("## Summary")
    md.append("")
    md += summary_table(workloads, builders, data)
    md.append("")
    for w in workloads:
        md.append(f"## {w}")
        md.append("")
        md += workload_table(w, builders, data, fl)
        md.append("")
    if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(a.out)), "PROFILE.md")):
        md.append("Where rbuild's time goes, per workload: [PROFILE.md](PROFILE.md).")
        md.append("")
    md.append("## Physical-limit references")
    md.append("")
    lm = os.path.join(a.lab, "results", "limits.md")
    if os.path.exists(lm):
        with open(lm) as fh:
            body = fh.read()
        body = re.sub(r"^## limits\n", "", body)
        md.append(body.strip())
    else:
        md.append("(`limits.sh` has not run on this machine yet.)")
    md.append("")
    md.append("Workload-specific references (`bench/limits-extra.sh`), fastest of the runs, seconds:")
    md.append("")
    md.append("| id | what | min s |")
    md.append("|---|---|---|")
    what = {
        "ms_stage1": "one multistage-parallel stage command on the host (busybox dd \\| sha256sum, 384 MiB)",
        "ms_par4": "the four stage commands at once on the host",
        "pull_busybox": "fetch + gunzip + untar the busybox base layer from :5000",
        "pull_debian": "fetch + gunzip + untar the Debian base layer (51 MB gz) from :5000",
        "debian_buildsh": "debian-app's build.sh (~1,500 processes) in a chroot of the Debian rootfs",
    }
    for lid, desc in what.items():
        md.append(f"| {lid} | {desc} | {fmt_s(lim.get(lid))} |")
    md.append("")
    with open(a.out, "w") as fh:
        fh.write("\n".join(md))

    if a.readme:
        with open(a.readme) as fh:
            text = fh.read()
        begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
        if begin in text and end in text:
            pre, rest = text.split(begin, 1)
            _, post = rest.split(end, 1)
            block = [begin, "", f"Measured {meta.get('start', '?')} on {facts}.", ""]
            block += summary_table(workloads, builders, data)
            block += ["", end]
            with open(a.readme, "w") as fh:
                fh.write(pre + "\n".join(block) + post)


if __name__ == "__main__":
    main()
