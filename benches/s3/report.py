"""The Markdown report of benches/s3/run.sh, from its raw rows.

Usage: report.py RESULTS.tsv NEWBYTES.tsv ENVIRONMENT
RESULTS rows (tab-separated): rate tool step gen run wall cpu rss_kib other
up_bytes down_bytes requests own_requests own_up own_down in_flight server_cpu
ok note.
MB = 10^6 bytes; "x" ratios are lsmvault / restic.
"""

import statistics
import sys

FIELDS = ("rate tool step gen run wall cpu rss other up down requests own_requests own_up own_down "
          "in_flight server_cpu ok note").split()
NUMERIC = {"wall", "cpu", "rss", "other", "up", "down", "requests", "own_requests", "own_up", "own_down", "in_flight", "server_cpu"}
TOOLS = ("lsmvault", "restic")


def parse(path):
    rows = []
    for line in open(path):
        values = line.rstrip("\n").split("\t")
        values += [""] * (len(FIELDS) - len(values))
        row = dict(zip(FIELDS, values))
        for key in NUMERIC:
            try:
                row[key] = float(row[key]) if row[key] != "" else None
            except ValueError:
                row[key] = None
        rows.append(row)
    return rows


def mb(value):
    return "-" if value is None else f"{value / 1e6:.1f}"


def num(value, fmt=".2f"):
    return "-" if value is None else format(value, fmt)


def ratio(a, b):
    return None if a is None or not b else a / b


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def pair(a, b, fmt):
    return f"{fmt(a)} / {fmt(b)}"


def mib(kib):
    return "-" if kib is None else f"{kib / 1024:.0f}"


def intish(value):
    return "-" if value is None else f"{value:.0f}"


def main():
    rows = parse(sys.argv[1])
    newbytes = [line.rstrip("\n").split("\t") for line in open(sys.argv[2])]
    env = {}
    shaping = {}
    for line in open(sys.argv[3]):
        key, _, value = line.rstrip("\n").partition("\t")
        if key.endswith("bit"):
            shaping[key] = value
        else:
            env[key] = value
    environment(env)
    method(env)
    series(newbytes)
    for rate in dict.fromkeys(r["rate"] for r in rows if r["rate"] != "setup"):
        rate_section(rate, [r for r in rows if r["rate"] == rate], shaping.get(rate, ""))


def environment(env):
    print("### Environment\n")
    for key, label in (("cpu", "CPU"), ("kernel", "kernel"), ("memory", "memory"), ("moto", "moto"),
                       ("restic", "restic"), ("lsmvault", "lsmvault"), ("size", "data")):
        print(f"- {label}: {env.get(key, '?')}")
    print(f"- lsmvault uploads in flight, in the code: {env.get('lsmvault_uploads', '?')}")
    print(f"- restic uploads in flight: {env.get('restic_uploads', '?')}")


def method(env):
    print(f"""
### Method

- moto_server in its own network namespace behind a veth pair; `tc qdisc tbf` at the rate named
  on **both** ends (host egress = upload, namespace egress = download). A fresh moto, one bucket per
  tool and fresh caches per rate.
- lsmvault: encrypted repository, default settings, `--cache-dir` in the work directory; restic
  0.14: `init --repository-version 2`, `backup --compression auto`, `--cache-dir` in the work
  directory. Each generation backed up by both tools, the first tool alternating per generation
  (restic from one fixed path the checkpoint is renamed to). Before generation K is backed up,
  every file of checkpoint K is hard-linked and unlinked once: the ctime change that taking the
  checkpoint made in production (the checkpoints are made once, before the first rate).
- **time**: wall clock of the command (bash); **CPU** and **peak RSS**: GNU time.
  **up / down**: delta of the host veth's `tx_bytes` / `rx_bytes` (IP, TCP and HTTP included).
  **requests**: lines moto logged (one per HTTP request) during the step, after its log stood
  still for 0.3 s; lsmvault's own count (`LSMVAULT_REQUEST_STATS=1`) in brackets.
  **in flight**: during backups, the most connections to moto seen at once holding > 16 KiB of
  unsent or unacknowledged data (`/proc/net/tcp`, every 20 ms).
- `sync`{' and a prefault file (written, deleted)' if env.get('prefault') == '1' else ''} before every timed step;
  warm page cache. Unchanged backup and `snapshots` run right after the series (warm caches);
  restores: median of {env.get('repeat', '?')} run(s), each checked with `diff -r` against its checkpoint.
  MB = 10^6 bytes; ratios are lsmvault / restic.
- lsmvault's bytes depend on the repository, not only on the data: an encrypted repository keys its
  chunker's gear table, so chunk boundaries differ from one repository to the next. On db_bench
  data (values cut from one ~1 MiB random buffer) that decides how many repeats of the buffer a
  chunk holds, hence how well it compresses: the same checkpoint can upload very different byte
  counts at two rates (the `auto` probe passes every such chunk: `auto` stores what `zstd:3`
  stores). On the corpus dataset the boundaries matter little.""")


def series(newbytes):
    print("\n### The generation series (snappy SSTs)\n")
    print("| generation | checkpoint MB | files | new SST MB | new MANIFEST+other MB |")
    print("|---|---:|---:|---:|---:|")
    for f in newbytes:
        if f[1] == "unique":
            unique = int(f[2])
            continue
        print(f"| {f[1]} | {mb(int(f[2]))} | {f[3]} | {mb(int(f[4]))} | {int(f[6]) / 1e6:.3f} |")
    print(f"\nUnique bytes of all checkpoints (`du -sb`, hard links once): {mb(unique)} MB")


def rate_bytes(rate):
    """Bytes per second of a tc rate (1gbit, 100mbit, 500kbit)."""
    units = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
    for unit, factor in units.items():
        if rate.endswith(unit):
            return float(rate[: -len(unit)]) * factor / 8
    return float("inf")


def pick(rows, tool, step, gen=None):
    return [r for r in rows if r["tool"] == tool and r["step"] == step and (gen is None or r["gen"] == gen)]


def requests_text(r):
    if r is None:
        return "-"
    own = f" ({intish(r['own_requests'])})" if r["own_requests"] is not None else ""
    return f"{intish(r['requests'])}{own}"


def rate_section(rate, rows, shaping):
    print(f"\n### Link {rate} ({shaping})\n")
    for step, label in (("probe_unshaped", "without shaping"), ("probe", "through the shaped link")):
        for p in pick(rows, "curl", step):
            print(f"One curl stream {label} (a 32 MiB object, moto included): PUT {mb(p['up'])} MB/s, "
                  f"GET {mb(p['down'])} MB/s.")
    link = rate_bytes(rate)
    for p in pick(rows, "curl", "probe_unshaped"):
        slow = [name for name, key in (("PUT", "up"), ("GET", "down")) if p[key] is not None and p[key] < link]
        if slow:
            print(f"**moto is slower than the link** ({' and '.join(slow)} of one unshaped stream below "
                  f"{link / 1e6:.0f} MB/s): at this rate those transfers are bound by the server (one Python "
                  f"process, sharing the cores with the tools), not by the link.")
    print()
    print("Backups (lsmvault / restic):\n")
    print("| step | lsmvault s | restic s | time x | up MB (lsmvault / restic) | up x | down MB | "
          "requests (lsmvault own) | peak RSS MiB | in flight (max) | CPU s | moto CPU s | status |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    gens = list(dict.fromkeys(r["gen"] for r in rows if r["step"] in ("initial", "incremental")))
    total = {t: {"wall": 0.0, "up": 0.0, "down": 0.0, "requests": 0.0, "cpu": 0.0, "server_cpu": 0.0} for t in TOOLS}
    worst = []
    for label, step, gen in [(g, None, g) for g in gens] + [("unchanged (newest again)", "unchanged", None),
                                                            ("snapshots", "snapshots", None)]:
        got = {}
        for tool in TOOLS:
            found = [r for r in rows if r["tool"] == tool and
                     (r["gen"] == gen and r["step"] in ("initial", "incremental") if step is None else r["step"] == step)]
            got[tool] = found[0] if found else None
        L, R = got["lsmvault"], got["restic"]
        if step is None:
            for tool in TOOLS:
                if got[tool]:
                    for key in total[tool]:
                        total[tool][key] += got[tool][key] or 0
            worst.append(ratio(L and L["wall"], R and R["wall"]))
        status = ", ".join(f"{t}: {got[t]['ok']}" for t in TOOLS if got[t] and got[t]["ok"] != "ok") or "ok"
        print(f"| {label} | {num(L and L['wall'])} | {num(R and R['wall'])} | "
              f"{num(ratio(L and L['wall'], R and R['wall']))} | {mb(L and L['up'])} / {mb(R and R['up'])} | "
              f"{num(ratio(L and L['up'], R and R['up']))} | {mb(L and L['down'])} / {mb(R and R['down'])} | "
              f"{requests_text(L)} / {requests_text(R)} | {mib(L and L['rss'])} / {mib(R and R['rss'])} | "
              f"{intish(L and L['in_flight'])} / {intish(R and R['in_flight'])} | "
              f"{num(L and L['cpu'])} / {num(R and R['cpu'])} | {num(L and L['server_cpu'])} / {num(R and R['server_cpu'])} | "
              f"{status} |")
        if gens and label == gens[-1]:
            T, S = total["lsmvault"], total["restic"]
            print(f"| **series total** | {num(T['wall'])} | {num(S['wall'])} | {num(ratio(T['wall'], S['wall']))} | "
                  f"{mb(T['up'])} / {mb(S['up'])} | {num(ratio(T['up'], S['up']))} | {mb(T['down'])} / {mb(S['down'])} | "
                  f"{intish(T['requests'])} / {intish(S['requests'])} | | | {num(T['cpu'])} / {num(S['cpu'])} | "
                  f"{num(T['server_cpu'])} / {num(S['server_cpu'])} | |")

    for step, label in (("unchanged", "unchanged backup"), ("snapshots", "`snapshots`")):
        own = pick(rows, "lsmvault", step)
        if own and own[0]["note"]:
            print(f"\nlsmvault's own requests in the {label}, by object kind: {own[0]['note']}.")

    print("\nRestores (medians of the runs; each checked with `diff -r`):\n")
    print("| restore | lsmvault s | restic s | time x | down MB (lsmvault / restic) | requests (lsmvault own) | "
          "peak RSS MiB | CPU s | moto CPU s | checks |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    medians = {}
    for which in ("newest", "oldest"):
        m = {}
        for tool in TOOLS:
            rs = pick(rows, tool, f"restore_{which}")
            m[tool] = {key: median([r[key] for r in rs if r["ok"] == "ok" or key != "wall"])
                       for key in ("wall", "down", "requests", "own_requests", "rss", "cpu", "server_cpu")}
            m[tool]["checks"] = sorted(set(f"{r['ok']}" + (f" ({r['note']})" if r["note"] else "") for r in rs))
            m[tool]["runs"] = len(rs)
        medians[which] = m
        L, R = m["lsmvault"], m["restic"]
        gen = pick(rows, "lsmvault", f"restore_{which}")
        checks = "; ".join(f"{t}: {', '.join(m[t]['checks'])} x{m[t]['runs']}" for t in TOOLS)
        print(f"| {which} ({gen[0]['gen'] if gen else '?'}) | {num(L['wall'])} | {num(R['wall'])} | "
              f"{num(ratio(L['wall'], R['wall']))} | {mb(L['down'])} / {mb(R['down'])} | "
              f"{requests_text(L)} / {requests_text(R)} | {mib(L['rss'])} / {mib(R['rss'])} | "
              f"{num(L['cpu'])} / {num(R['cpu'])} | {num(L['server_cpu'])} / {num(R['server_cpu'])} | {checks} |")

    targets(rows, total, worst)


def targets(rows, total, worst):
    T, S = total["lsmvault"], total["restic"]
    lsm = [r for r in rows if r["tool"] == "lsmvault"]
    unchanged = next(iter(pick(rows, "lsmvault", "unchanged")), None)
    snapshots = next(iter(pick(rows, "lsmvault", "snapshots")), None)
    rss = max((r["rss"] or 0 for r in lsm), default=0) / 1024
    flight = max((r["in_flight"] or 0 for r in lsm), default=0)
    print("\nTargets of issue 11:\n")
    print("| target | measured | met |")
    print("|---|---|---|")

    def line(name, value, ok):
        print(f"| {name} | {value} | {'-' if ok is None else 'yes' if ok else '**no**'} |")

    r = ratio(T["up"], S["up"])
    line("bytes uploaded <= restic's (series)", f"{mb(T['up'])} / {mb(S['up'])} MB = {num(r)}x", r is not None and r <= 1)
    r = ratio(T["wall"], S["wall"])
    line("wall time <= 0.5x restic's (series total)", f"{num(T['wall'])} / {num(S['wall'])} s = {num(r)}x",
         r is not None and r <= 0.5)
    known = [w for w in worst if w is not None]
    line("wall time <= 0.5x restic's (each generation)",
         f"worst {num(max(known))}x, best {num(min(known))}x" if known else "-", bool(known) and max(known) <= 0.5)
    for name, row_ in (("unchanged backup", unchanged), ("snapshots", snapshots)):
        value = "-" if row_ is None else f"{intish(row_['requests'])} (moto log), {intish(row_['own_requests'])} (own count)"
        line(f"{name}, warm cache: <= 5 requests", value,
             row_ is not None and row_["requests"] is not None and row_["requests"] <= 5)
    line("peak RSS <= 128 MiB (every lsmvault step)", f"max {rss:.0f} MiB", rss <= 128)
    line("... with 8 uploads in flight", f"observed max {flight:.0f} connection(s) uploading at once", flight >= 8)


main()
