"""What a reconciliation found: one verdict line, a JSON report, a CSV of every exception
row and a self-contained HTML page with the classes over time.

Findings arrive one link at a time and are counted as they pass (:class:`Tally`), so
a window of a million links costs the counts, the timeline's buckets and the CSV
file, not a list of findings. The JSON report keeps at most ``JSON_ROWS`` exception
rows (the CSV has them all) and says when it kept fewer.
"""
from __future__ import annotations

import csv
import html
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from streams.reconcile.classify import (
    CLASSES,
    EXCEPTIONS,
    MATCHED,
    MONEY_DANGER,
    REQUEST_FAILED,
    UNVERIFIED,
    Finding,
)
from streams.reconcile.holdings import Coverage

JSON_ROWS = 10_000
BUCKETS = 48  # the timeline's resolution: the window in at most this many equal steps
CSV_COLUMNS = ("class", "reference", "link_key", "merchant_id", "connector", "at",
               "provider_link_id", "provider_status", "our_status", "detail")

# Exit codes of `python -m streams reconcile`.
EXIT_CLEAN = 0  # every link matched (or was refused as a request)
EXIT_MONEY_DANGER = 1  # an orphan, duplicate, false failure or mismatch exists
EXIT_USAGE = 2  # bad arguments or configuration
EXIT_UNAVAILABLE = 3  # the broker could not be read
EXIT_EXCEPTIONS = 4  # exceptions, none of them money danger (lost, drift, unverified, ...)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


@dataclass
class Tally:
    since_ms: int
    until_ms: int
    scope: Mapping[str, Any] = field(default_factory=dict)  # merchant / provider filters
    links: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    timeline: list[Counter[str]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    exception_rows: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)  # "topic: code" -> count
    unverified: Counter[str] = field(default_factory=Counter)  # "provider: why" -> links
    records: Counter[str] = field(default_factory=Counter)  # topic -> records read
    coverage: list[Coverage] = field(default_factory=list)
    seconds: float = 0.0
    phases: dict[str, dict[str, float | None]] = field(default_factory=dict)  # seconds, RSS
    peak_rss_mb: float = 0.0

    def __post_init__(self) -> None:
        self.bucket_ms = max(1, -(-(self.until_ms - self.since_ms + 1) // BUCKETS))
        self.timeline = [Counter() for _ in range(self.buckets)]

    @property
    def buckets(self) -> int:
        return max(1, -(-(self.until_ms - self.since_ms + 1) // self.bucket_ms))

    def add(self, finding: Finding, out: csv.writer | None = None) -> None:  # type: ignore[valid-type]
        self.links += 1
        bucket = min(self.buckets - 1, max(0, (finding.at_ms - self.since_ms) // self.bucket_ms))
        if UNVERIFIED in finding.classes:
            self.unverified[f"{finding.connector}: "
                            f"{finding.detail.get('unverified_because')}"] += 1
        for name in finding.classes:
            self.classes[name] += 1
            self.timeline[bucket][name] += 1
            if name in EXCEPTIONS:
                self.exception_rows += 1
                row = exception_row(name, finding)
                if out is not None:
                    out.writerow([row[c] if c != "detail" else orjson.dumps(row[c]).decode()
                                  for c in CSV_COLUMNS])
                if len(self.rows) < JSON_ROWS:
                    self.rows.append(row)

    @property
    def money_danger(self) -> int:
        return sum(self.classes[c] for c in MONEY_DANGER)

    @property
    def exceptions(self) -> int:
        return sum(self.classes[c] for c in EXCEPTIONS)

    @property
    def exit_code(self) -> int:
        if self.money_danger:
            return EXIT_MONEY_DANGER
        return EXIT_EXCEPTIONS if self.exceptions else EXIT_CLEAN

    def verdict(self) -> str:
        """The one line an operator reads first."""
        counts = ", ".join(f"{self.classes[c]} {c}" for c in CLASSES
                           if self.classes[c] or c in (MATCHED,))
        state = ("MONEY DANGER" if self.money_danger else
                 "EXCEPTIONS" if self.exceptions else "OK")
        dead = sum(self.dead_letters.values())
        return (f"reconcile {iso(self.since_ms)}..{iso(self.until_ms)}: {state}: {self.links} "
                f"links: {counts}; {dead} dead letters")

    def unverified_line(self) -> str | None:
        """Why links could not be checked at their provider, when some could not."""
        if not self.unverified:
            return None
        return "unverified because: " + ", ".join(
            f"{n} {why}" for why, n in self.unverified.most_common(5))

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict(),
            "state": {EXIT_MONEY_DANGER: "money_danger", EXIT_EXCEPTIONS: "exceptions",
                      EXIT_CLEAN: "ok"}[self.exit_code],
            "window": {"since": iso(self.since_ms), "until": iso(self.until_ms)},
            "scope": dict(self.scope),
            "links": self.links,
            "classes": {c: self.classes[c] for c in CLASSES},
            "money_danger_classes": list(MONEY_DANGER),
            "timeline": {"bucket_seconds": self.bucket_ms / 1000,
                         "buckets": [{"start": iso(self.since_ms + i * self.bucket_ms),
                                      "classes": dict(sorted(b.items()))}
                                     for i, b in enumerate(self.timeline)]},
            "providers": [asdict(c) for c in self.coverage],
            "records_read": dict(sorted(self.records.items())),
            "dead_letters": dict(sorted(self.dead_letters.items())),
            "unverified_because": dict(self.unverified.most_common()),
            "exceptions": {"rows": self.exception_rows, "shown": len(self.rows),
                           "items": self.rows},
            "seconds": round(self.seconds, 3),
            "phases": self.phases,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


def exception_row(name: str, finding: Finding) -> dict[str, Any]:
    detail = dict(finding.detail)
    return {"class": name, "reference": finding.reference, "link_key": finding.link_key,
            "merchant_id": finding.merchant_id, "connector": finding.connector,
            "at": iso(finding.at_ms) if finding.at_ms else None,
            "provider_link_id": detail.pop("provider_link_id", None),
            "provider_status": detail.pop("provider_status", None),
            "our_status": detail.pop("our_status", None), "detail": detail}


def open_csv(path: Path) -> tuple[IO[str], Any]:
    handle = path.open("w", newline="", encoding="utf-8")
    writer = csv.writer(handle)
    writer.writerow(CSV_COLUMNS)
    return handle, writer


def write_json(tally: Tally, path: Path) -> None:
    path.write_bytes(orjson.dumps(tally.to_json(), option=orjson.OPT_INDENT_2))


# --- HTML ------------------------------------------------------------------------------

COLOURS = {MATCHED: "#4caf50", REQUEST_FAILED: "#9e9e9e", "lost": "#ff9800",
           "duplicate": "#b71c1c", "orphan": "#d50000", "unknown_at_provider": "#fbc02d",
           "false_failure": "#c2185b", "mismatch": "#6a1b9a", "drift": "#1976d2",
           "unverified": "#607d8b"}

_SCRIPT = """
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const colours = JSON.parse(document.getElementById("report-colours").textContent);
  const buckets = data.timeline.buckets;
  const width = 960, height = 280, left = 48, bottom = 40;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("id", "timeline");
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  let top = 1;
  for (const b of buckets) {
    let sum = 0; for (const k in b.classes) sum += b.classes[k]; top = Math.max(top, sum);
  }
  const plotH = height - bottom - 10, step = (width - left) / buckets.length;
  const drawn = {};
  buckets.forEach(function (b, i) {
    let y = height - bottom;
    for (const name of data.class_order) {
      const n = b.classes[name] || 0;
      if (!n) continue;
      drawn[name] = (drawn[name] || 0) + n;
      const h = Math.max(1, n / top * plotH);
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", left + i * step + 1); r.setAttribute("y", y - h);
      r.setAttribute("width", Math.max(1, step - 2)); r.setAttribute("height", h);
      r.setAttribute("fill", colours[name] || "#000");
      r.setAttribute("data-class", name); r.setAttribute("data-count", n);
      const t = document.createElementNS(ns, "title");
      t.textContent = b.start + ": " + n + " " + name; r.appendChild(t);
      svg.appendChild(r); y -= h;
    }
  });
  const axis = document.createElementNS(ns, "text");
  axis.setAttribute("x", 0); axis.setAttribute("y", 14); axis.textContent = top + " links";
  svg.appendChild(axis);
  [0, buckets.length - 1].forEach(function (i) {
    const t = document.createElementNS(ns, "text");
    const last = i > 0 && i === buckets.length - 1;
    t.setAttribute("x", last ? width - 2 : left + i * step);
    t.setAttribute("text-anchor", last ? "end" : "start");
    t.setAttribute("y", height - bottom + 16);
    t.setAttribute("font-size", "11"); t.textContent = buckets[i].start; svg.appendChild(t);
  });
  document.getElementById("chart").appendChild(svg);
  const legend = document.getElementById("legend");
  for (const name of data.class_order) {
    if (!drawn[name]) continue;
    const li = document.createElement("li");
    li.setAttribute("data-class", name); li.setAttribute("data-count", drawn[name]);
    li.innerHTML = '<span class="swatch" style="background:' + colours[name] + '"></span>';
    li.appendChild(document.createTextNode(name + ": " + drawn[name]));
    legend.appendChild(li);
  }
  document.body.setAttribute("data-rendered", "yes");
})();
"""


def _json_for_script(value: Any) -> str:
    # "</" would end the script element early; JSON allows "<\\/".
    return orjson.dumps(value).decode().replace("</", "<\\/")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>"
                                    for v in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def write_html(tally: Tally, path: Path) -> None:
    report = tally.to_json()
    report["class_order"] = list(CLASSES)
    state = report["state"]
    summary = _table(("class", "links", "money danger"), [
        (c, tally.classes[c], "yes" if c in MONEY_DANGER else "") for c in CLASSES])
    providers = _table(("provider", "lists", "accounts listed", "accounts unlisted", "pages",
                        "listed", "asked", "found", "absent", "unverified", "retries"),
                       [tuple(asdict(c).values()) for c in tally.coverage])
    rows = _table(CSV_COLUMNS, [[r[c] if c != "detail" else orjson.dumps(r[c]).decode()
                                 for c in CSV_COLUMNS] for r in tally.rows[:1000]], "rows")
    dead = _table(("topic: error code", "dead letters"), sorted(tally.dead_letters.items()))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Payout-link reconciliation {html.escape(report['window']['since'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
.verdict {{ font-size: 18px; padding: 8px 12px; border-radius: 4px; }}
.ok {{ background: #e8f5e9; }} .exceptions {{ background: #fff8e1; }}
.money_danger {{ background: #ffebee; font-weight: bold; }}
table {{ border-collapse: collapse; margin: 8px 0 20px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 13px; }}
#legend {{ list-style: none; padding: 0; display: flex; gap: 16px; flex-wrap: wrap; }}
.swatch {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px; }}
</style></head>
<body data-rendered="no">
<h1>Payout-link reconciliation</h1>
<p id="verdict" class="verdict {state}">{html.escape(tally.verdict())}</p>
<h2>Classes over time</h2>
<div id="chart"></div><ul id="legend"></ul>
<h2>Classes</h2>{summary}
<h2>Providers</h2>{providers}
<h2>Dead letters</h2>{dead}
<h2>Exceptions ({tally.exception_rows}; the CSV has every row)</h2>{rows}
<script type="application/json" id="report-data">{_json_for_script(report)}</script>
<script type="application/json" id="report-colours">{_json_for_script(COLOURS)}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
    path.write_text(page, encoding="utf-8")
