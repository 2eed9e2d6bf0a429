#!/usr/bin/python3
"""Builds the results page of the theory demos from what each demo wrote, and nothing else.

    /usr/bin/python3 scripts/report.py OUT [--demos NAME ...] [--since ISO-8601]

For every demo (the names given, plus any other OUT/<demo>/verdict.json), reads
OUT/<demo>/verdict.json (theory/demos/demo_results.hpp), draws the figures from the CSV files that
verdict lists into OUT/<demo>/figures/ (PNG and SVG, matplotlib; scripts/report_figures.py) and
writes OUT/index.html: a table of contents, the verdict table (demo, claim, measured, predicted,
tolerance, PASS/FAIL, when), then each demo's summary, run metadata and figures.

Nothing is silently mixed: a demo without a verdict is MISSING; a verdict still saying RUNNING is a
run that did not finish; a verdict whose run started before --since (the start of this
`scripts/theta run`) or whose git commit differs from the source tree's is marked STALE.
Exits 1 when a figure could not be drawn (the page says which and why), 0 otherwise.
Run by `scripts/theta run` after the demos; needs Debian's python3-matplotlib and python3-numpy.
"""

import argparse
import csv
import datetime
import html
import json
import pathlib
import shutil
import subprocess
import sys
import traceback

import numpy as np

import report_figures

ROOT = pathlib.Path(__file__).resolve().parent.parent


def source_commit():
    """The source tree's commit as the demos record it (`git describe --always --dirty`), or ""."""
    try:
        return subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


class Run:
    """One demo's output folder, as its verdict.json describes it."""

    def __init__(self, out, name):
        self.name = name
        self.folder = out / name
        self.figure_dir = self.folder / "figures"
        self.verdict = None
        self.problem = ""  # why the verdict is missing or unreadable
        path = self.folder / "verdict.json"
        try:
            self.verdict = json.loads(path.read_text())
        except FileNotFoundError:
            self.problem = "no verdict.json: the demo did not run, or its output folder was removed"
        except (OSError, ValueError) as e:
            self.problem = f"verdict.json is unreadable: {e}"

    @property
    def status(self):
        if self.verdict is None:
            return "MISSING"
        status = self.verdict.get("status", "")
        return "DID NOT FINISH" if status == "RUNNING" else status

    def stale_reasons(self, since, commit):
        if self.verdict is None:
            return []
        reasons = []
        started = self.verdict.get("started", "")
        if since is not None and started and parse_time(started) < since:
            reasons.append(f"from an earlier run (started {started}, before this run)")
        recorded = self.verdict.get("git_commit", "")
        if commit and recorded and recorded != commit:
            reasons.append(f"run at commit {recorded}, the source tree is now at {commit}")
        return reasons

    def csv(self, file):
        """A CSV file the verdict lists, as {column: numpy array}."""
        if file not in self.verdict.get("files", []):
            raise KeyError(f"{file} is not among the files this run wrote")
        with open(self.folder / file, newline="") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], np.array(rows[1:], dtype=float).reshape(len(rows) - 1, len(rows[0]))
        return {name: body[:, j] for j, name in enumerate(header)}

    def limit(self, check_id):
        for check in self.verdict.get("checks", []):
            if check.get("id") == check_id:
                return check.get("limit")
        return None

    def save(self, fig, name):
        return report_figures.st.save(fig, self.figure_dir, name)


def draw(run):
    """[(png, caption)] and [error messages] for a run whose verdict lists its files."""
    shutil.rmtree(run.figure_dir, ignore_errors=True)
    if run.verdict is None or run.status in ("DID NOT FINISH", "ERROR") or run.name not in report_figures.FIGURES:
        return [], []
    try:
        return report_figures.FIGURES[run.name](run), []
    except Exception as e:  # a figure that cannot be drawn is reported on the page, not hidden
        traceback.print_exc()
        return [], [f"{type(e).__name__}: {e}"]


# ---- the page ------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:90%}
td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.PASS{color:#1a7f37;font-weight:bold}.FAIL,.ERROR,.MISSING,.DID{color:#cf222e;font-weight:bold}
.INCOMPLETE,.STALE{color:#9a6700;font-weight:bold}
tr.stale td{background:#fff8e1}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:90%;color:#444;max-width:900px}
.meta td:first-child{font-weight:bold;white-space:nowrap}
.warn{background:#fff8e1;border-left:4px solid #9a6700;padding:.5em 1em}
.error{background:#ffebe9;border-left:4px solid #cf222e;padding:.5em 1em}
code{font-size:90%}
"""


def esc(text):
    return html.escape(str(text))


def badge(status):
    return f'<span class="{esc(status.split()[0])}">{esc(status)}</span>'


def verdict_rows(run, stale):
    when = esc(run.verdict.get("finished") or run.verdict.get("started", "")) if run.verdict else ""
    if stale:
        when += '<br><span class="STALE">STALE</span>'
    link = f'<a href="#{esc(run.name)}">{esc(run.name)}</a>'
    klass = ' class="stale"' if stale else ""
    checks = run.verdict.get("checks", []) if run.verdict else []
    if run.status in ("PASS", "FAIL") and checks:
        rows = []
        for c in checks:
            status = "PASS" if c.get("pass") else "FAIL"
            rows.append(f"<tr{klass}><td>{link}</td><td>{esc(c['claim'])}</td><td>{esc(c['measured'])}</td>"
                        f"<td>{esc(c['predicted'])}</td><td>{esc(c['tolerance'])}</td><td>{badge(status)}</td>"
                        f"<td>{when}</td></tr>")
        return rows
    summary = run.verdict.get("summary", "") if run.verdict else run.problem
    return [f'<tr{klass}><td>{link}</td><td colspan="4">{esc(summary)}</td><td>{badge(run.status)}</td>'
            f"<td>{when}</td></tr>"]


METADATA = [("started", "started (UTC)"), ("finished", "finished (UTC)"), ("seconds", "seconds"),
            ("git_commit", "git commit"), ("cpu", "CPU"), ("openblas_core", "OpenBLAS core"),
            ("simd", "SIMD kernel table"), ("threads", "threads"), ("command", "command")]


def section(run, reasons, figures, errors):
    parts = [f'<h2 id="{esc(run.name)}">{esc(run.name)} {badge(run.status)}</h2>']
    if run.verdict is None:
        parts.append(f'<p class="error">{esc(run.problem)}</p>')
        return "\n".join(parts)
    parts.append(f"<p>{esc(run.verdict.get('description', ''))}</p>")
    parts.append(f"<p><b>Summary:</b> {esc(run.verdict.get('summary', ''))}</p>")
    if run.status == "DID NOT FINISH":
        parts.append('<p class="error">This run started but never wrote its result (killed, crashed, or still '
                     "running); no figures are drawn from its folder.</p>")
    for reason in reasons:
        parts.append(f'<p class="warn">STALE: {esc(reason)}.</p>')
    def value(key):
        v = run.verdict.get(key)
        return f"{v:.3g}" if isinstance(v, float) else v

    rows = "".join(f"<tr><td>{esc(label)}</td><td>{esc(value(key))}</td></tr>"
                   for key, label in METADATA if run.verdict.get(key) not in (None, ""))
    parts.append(f'<table class="meta">{rows}</table>')
    if run.name not in report_figures.FIGURES:
        parts.append("<p>No figures are defined for this demo (scripts/report_figures.py).</p>")
    for message in errors:
        parts.append(f'<p class="error">A figure could not be drawn: {esc(message)}</p>')
    for png, caption in figures:
        src = f"{run.name}/figures/{png}"
        svg = src[: -len(".png")] + ".svg"
        parts.append(f'<figure><a href="{esc(svg)}"><img src="{esc(src)}" alt="{esc(png)}"></a>'
                     f"<figcaption>{esc(caption)} (<a href=\"{esc(svg)}\">SVG</a>)</figcaption></figure>")
    return "\n".join(parts)


def page(runs, since, commit, drawn):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    toc, table, sections = [], [], []
    for run in runs:
        reasons = run.stale_reasons(since, commit)
        figures, errors = drawn[run.name]
        extra = ' <span class="STALE">STALE</span>' if reasons else ""
        toc.append(f'<li><a href="#{esc(run.name)}">{esc(run.name)}</a> {badge(run.status)}{extra}</li>')
        table.extend(verdict_rows(run, bool(reasons)))
        sections.append(section(run, reasons, figures, errors))
    context = f"Page built {now} from the verdict.json and CSV files in this folder"
    if commit:
        context += f"; source tree at {esc(commit)}"
    if since is not None:
        context += f"; this run started {since.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>theta theory demos</title><style>{CSS}</style></head><body>
<h1>theta theory demos</h1>
<p>Each demo checks a measurement against the formula it illustrates. {context}.</p>
<h2>Contents</h2>
<ul>{''.join(toc)}</ul>
<h2>Verdicts</h2>
<table><tr><th>demo</th><th>claim</th><th>measured</th><th>predicted</th><th>tolerance</th><th>verdict</th>
<th>when (UTC)</th></tr>
{''.join(table)}
</table>
{''.join(f'<hr>{s}' for s in sections)}
</body></html>
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=pathlib.Path, help="the folder holding one folder per demo")
    parser.add_argument("--demos", nargs="*", default=[], help="demos expected on the page (missing ones shown)")
    parser.add_argument("--since", type=parse_time, help="start of this run (UTC, ISO 8601); older outputs are stale")
    args = parser.parse_args()
    if not args.out.is_dir():
        sys.exit(f"report: error: {args.out} is not a folder")
    names = list(dict.fromkeys(args.demos))
    names += sorted(p.parent.name for p in args.out.glob("*/verdict.json") if p.parent.name not in names)
    runs = [Run(args.out, name) for name in names]
    drawn = {run.name: draw(run) for run in runs}
    (args.out / "index.html").write_text(page(runs, args.since, source_commit(), drawn))
    failed = [name for name, (_, errors) in drawn.items() if errors]
    if failed:
        print(f"report: error: figures of {', '.join(failed)} could not be drawn (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
