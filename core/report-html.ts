/**
 * `walvault report --html`: a self-contained page (no network, no external
 * file) that draws, per database and region, what point-in-time recovery
 * can reach (docs/report.md): the restorable windows of each region, the
 * snapshots (coloured by their latest verification; dashed red: retention's
 * next run deletes them), the WAL coverage per timeline or stream with its
 * gaps, on one time axis per database.
 *
 * The data is embedded as JSON (ReportData) and the page's own script draws
 * SVG from it when the browser loads it, so what a browser shows is what
 * the data says; every drawn element carries its figures as data-*
 * attributes (data-from, data-to, data-region, data-after...) for tests and
 * for tooltips. Pure: data in, text out.
 */

export interface ReportWindow {
  from: string;
  to: string;
  snapshots: string[];
}

export interface ReportRegion {
  region: string;
  primary: boolean;
  windows: ReportWindow[];
  /** Behind the primary (replica regions). */
  missingWal: number;
  missingSnapshots: number;
  lagSeconds: number;
}

export interface ReportWalLine {
  /** "timeline 1" or "stream wal". */
  line: string;
  ranges: Array<{ first: string; last: string; segments: number; from: string; to: string }>;
  /** A gap lies between the archive times of the segments either side of it. */
  gaps: Array<{ after: string; before: string; missing: number; from: string; to: string }>;
}

export interface ReportSnapshot {
  snapshotId: string;
  finishedAt: string;
  verification?: { outcome: "passed" | "failed" | "error"; level: number; at: string };
}

/** What retention's next run would delete (store/prune.ts prunePlan under the database's policy). */
export interface ReportDeletions {
  snapshots: string[];
  /** WAL deletion ranges: "timeline 1 000000010000000000000001 .. 000000010000000000000007" or "stream wal 1 .. 7". */
  walRanges: string[];
}

export interface ReportDatabase {
  databaseId: string;
  /** Absent: the plan could not be made (the reason is in `warnings`). */
  nextDeletions?: ReportDeletions;
  /** Things the page says in red beside the drawing (e.g. why the retention plan is missing). */
  warnings?: string[];
  kind: "postgres" | "generic";
  lastArchived?: { name: string; archivedAt: string };
  archiveLagSeconds?: number;
  quarantined: number;
  regions: ReportRegion[];
  snapshots: ReportSnapshot[];
  wal: ReportWalLine[];
}

export interface ReportData {
  generatedAt: string;
  databases: ReportDatabase[];
}

/** JSON safe inside a <script> element: no "</script>", no "<!--". */
function scriptJson(data: unknown): string {
  return JSON.stringify(data).replace(/</g, "\\u003c").replace(/>/g, "\\u003e").replace(/&/g, "\\u0026");
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2330; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 4px; }
.meta { color: #5b6475; margin: 0 0 8px; } .warn { color: #b42318; font-weight: 600; }
svg { display: block; max-width: 100%; } text { font-size: 11px; fill: #3a4254; }
.window { fill: #2e9e5b; } .wal { fill: #3b73d9; } .gap { fill: #d92d20; } .axis { stroke: #c4c9d4; }
.snapshot { stroke: #1d2330; stroke-width: 1; } .snapshot.to-delete { stroke: #d92d20; stroke-width: 2; stroke-dasharray: 2 2; } .passed { fill: #2e9e5b; } .failed, .error { fill: #d92d20; } .unverified { fill: #fff; }
.legend span { display: inline-block; margin-right: 14px; } .legend i { display: inline-block; width: 12px; height: 10px; margin-right: 4px; vertical-align: -1px; }
`;

/** The page's script: draws every database's SVG from the embedded data. */
const SCRIPT = `
(function () {
  var data = JSON.parse(document.getElementById("walvault-data").textContent);
  var NS = "http://www.w3.org/2000/svg", W = 1100, LEFT = 150, RIGHT = 20, ROW = 22;
  function el(name, attrs, parent, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) { var t = document.createElementNS(NS, "title"); t.textContent = text; e.appendChild(t); }
    parent.appendChild(e); return e;
  }
  function label(svg, y, text) { var t = el("text", { x: 4, y: y + 14 }, svg); t.textContent = text; }
  data.databases.forEach(function (db) {
    var times = [Date.parse(data.generatedAt)];
    db.regions.forEach(function (r) { r.windows.forEach(function (w) { times.push(Date.parse(w.from), Date.parse(w.to)); }); });
    db.snapshots.forEach(function (s) { times.push(Date.parse(s.finishedAt)); });
    db.wal.forEach(function (l) { l.ranges.forEach(function (g) { times.push(Date.parse(g.from), Date.parse(g.to)); }); });
    var t0 = Math.min.apply(null, times), t1 = Math.max.apply(null, times);
    if (t1 - t0 < 60000) t0 = t1 - 60000;
    var x = function (iso) { return LEFT + ((Date.parse(iso) - t0) / (t1 - t0)) * (W - LEFT - RIGHT); };
    var wide = function (a, b) { return Math.max(2, x(b) - x(a)); };
    var rows = db.regions.length + db.wal.length + 2;
    var svg = el("svg", { width: W, height: rows * ROW + 24, "data-database": db.databaseId, role: "img" }, document.getElementById("db-" + db.databaseId));
    var y = 4;
    label(svg, y, "snapshots");
    db.snapshots.forEach(function (s) {
      var v = s.verification, goes = !!db.nextDeletions && db.nextDeletions.snapshots.indexOf(s.snapshotId) >= 0;
      var cls = "snapshot " + (v ? v.outcome : "unverified") + (goes ? " to-delete" : "");
      el("circle", { cx: x(s.finishedAt), cy: y + 10, r: 5, class: cls, "data-snapshot": s.snapshotId, "data-at": s.finishedAt, "data-outcome": v ? v.outcome : "unverified", "data-next-delete": String(goes) }, svg,
        s.snapshotId + " finished " + s.finishedAt + (v ? "; verified L" + v.level + " " + v.outcome + " at " + v.at : "; never verified") + (goes ? "; retention's next run deletes it" : ""));
    });
    y += ROW;
    db.regions.forEach(function (r) {
      label(svg, y, (r.primary ? "restorable " : "restorable ") + r.region);
      r.windows.forEach(function (w) {
        el("rect", { x: x(w.from), y: y + 3, width: wide(w.from, w.to), height: ROW - 8, class: "window", "data-database": db.databaseId, "data-region": r.region, "data-from": w.from, "data-to": w.to }, svg,
          r.region + ": point-in-time recovery from " + w.from + " to " + w.to + " (snapshots " + w.snapshots.join(", ") + ")");
      });
      y += ROW;
    });
    db.wal.forEach(function (l) {
      label(svg, y, "WAL " + l.line);
      l.ranges.forEach(function (g) {
        el("rect", { x: x(g.from), y: y + 6, width: wide(g.from, g.to), height: ROW - 14, class: "wal", "data-line": l.line, "data-first": g.first, "data-last": g.last, "data-from": g.from, "data-to": g.to }, svg,
          l.line + ": " + g.first + " .. " + g.last + " (" + g.segments + " segments)");
      });
      l.gaps.forEach(function (g) {
        el("rect", { x: x(g.from), y: y + 2, width: wide(g.from, g.to), height: ROW - 6, class: "gap", "data-line": l.line, "data-after": g.after, "data-before": g.before, "data-missing": g.missing, "data-from": g.from, "data-to": g.to }, svg,
          "GAP: " + g.missing + " segment(s) missing after " + g.after + ", before " + g.before);
      });
      y += ROW;
    });
    el("line", { x1: LEFT, x2: W - RIGHT, y1: y + 4, y2: y + 4, class: "axis" }, svg);
    var a = el("text", { x: LEFT, y: y + 18 }, svg); a.textContent = new Date(t0).toISOString();
    var b = el("text", { x: W - RIGHT, y: y + 18, "text-anchor": "end" }, svg); b.textContent = new Date(t1).toISOString();
  });
  document.body.setAttribute("data-drawn", String(data.databases.length));
})();
`;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** The whole page for `data`. */
export function reportHtml(data: ReportData): string {
  const sections = data.databases
    .map((db) => {
      const gaps = db.wal.reduce((n, l) => n + l.gaps.length, 0);
      const facts = [
        db.kind,
        db.lastArchived ? `last archived ${db.lastArchived.name} at ${db.lastArchived.archivedAt} (${db.archiveLagSeconds ?? "?"} s before this report)` : "nothing archived yet",
        `${db.snapshots.length} snapshot(s)`,
      ];
      const next = db.nextDeletions;
      const deletions =
        next === undefined
          ? ""
          : next.snapshots.length + next.walRanges.length === 0
            ? `<p class="meta">retention's next run deletes nothing</p>\n`
            : `<p class="meta">retention's next run deletes ${next.snapshots.length ? `${next.snapshots.length} snapshot(s) (${escapeHtml(next.snapshots.join(", "))}, dashed red below)` : "no snapshot"}` +
              `${next.walRanges.length ? ` and the WAL of ${escapeHtml(next.walRanges.join("; "))}` : ""}</p>\n`;
      const warnings = [
        ...(db.warnings ?? []),
        ...(gaps > 0 ? [`${gaps} WAL gap(s): point-in-time recovery cannot cross them`] : []),
        ...(db.quarantined > 0 ? [`${db.quarantined} upload(s) quarantined`] : []),
        ...db.regions.filter((r) => !r.primary && r.missingWal + r.missingSnapshots > 0).map((r) => `${r.region} is ${r.missingWal} WAL file(s) and ${r.missingSnapshots} snapshot(s) behind (lag ${r.lagSeconds} s)`),
      ];
      return (
        `<h2>${escapeHtml(db.databaseId)}</h2>\n<p class="meta">${escapeHtml(facts.join(" · "))}</p>\n` +
        deletions +
        warnings.map((w) => `<p class="warn">${escapeHtml(w)}</p>\n`).join("") +
        `<div id="db-${escapeHtml(db.databaseId)}"></div>`
      );
    })
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>walvault: what can be restored (${escapeHtml(data.generatedAt)})</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${STYLE}</style></head>
<body>
<h1>walvault: what can be restored</h1>
<p class="meta">generated ${escapeHtml(data.generatedAt)} · ${data.databases.length} database(s)</p>
<p class="legend"><span><i class="window" style="background:#2e9e5b"></i>restorable window (per region)</span><span><i style="background:#3b73d9"></i>WAL archived</span><span><i style="background:#d92d20"></i>WAL gap</span><span>● snapshot: green verified, red failed, white never verified</span></p>
${sections}
<script type="application/json" id="walvault-data">${scriptJson(data)}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}
