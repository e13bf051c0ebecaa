"""The verdict table, for the terminal, DIR/chaos-table.md and CHAOS.md."""
import datetime
import re

START = "<!-- chaos-table: written by Scripts/chaos --write-doc -->"
END = "<!-- end chaos-table -->"


def cell(value, unit=""):
    if value is None:
        return "–"
    return f"{value}{unit}"


def table(results, quick, minutes):
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    capacity = next((r.get("capacity") for r in results if r.get("scenario") == "capacity"), None)
    soak = next((r.get("description") for r in results if r.get("scenario") == "soak"), None)
    lines = [f"Run of {when}, {'--quick' if quick else 'full'}, {minutes:.1f} minutes."
             + (f" Measured capacity {capacity} events/s; the scenarios ran at a third of it" if capacity else "")
             + (f", the soak {soak[soak.find('('):]}" if soak and "(" in soak else "") + ".", "",
             "| scenario | verdict | confirmed | logged | runs done / expected | lost | doubled | double-held locks "
             "| recovery | worker RSS start → end |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rss = (f"{r['rss_start_mb']} → {r['rss_end_mb']} MB" if "rss_start_mb" in r else "–")
        if r.get("memory_flat") is not None:
            rss += " (flat)" if r["memory_flat"] else " (GROWING)"
        verdict = "pass" if r.get("passed") else "**FAIL**" + (f": {r['problem']}" if r.get("problem") else "")
        lines.append(
            f"| {r['scenario']} | {verdict} | {cell(r.get('confirmed'))} | {cell(r.get('logged'))} | "
            f"{cell(r.get('runs_completed'))} / {cell(r.get('expected_runs'))} | {cell(r.get('lost'))} | "
            f"{cell(r.get('doubled'))} | {cell(r.get('double_held'))} | {cell(r.get('recovery_s'), ' s')} | {rss} |")
    return "\n".join(lines) + "\n"


def write_doc(path, text):
    with open(path) as f:
        doc = f.read()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{path} has no {START} … {END} section")
    doc = pattern.sub(lambda _: START + "\n" + text + END, doc)
    with open(path, "w") as f:
        f.write(doc)
