/** core/report-html.ts: the page embeds its data so that no value can break out of it. */
import { describe, expect, it } from "vitest";
import { reportHtml, type ReportData } from "../../core/report-html.js";

const hostile = '</script><script>alert("x")</script><!--';
const data: ReportData = {
  generatedAt: "2026-12-05T10:00:00.000Z",
  databases: [
    {
      databaseId: "pg-main",
      kind: "postgres",
      lastArchived: { name: hostile, archivedAt: "2026-12-05T09:59:00.000Z" },
      archiveLagSeconds: 60,
      quarantined: 0,
      regions: [{ region: "us-east-1", primary: true, windows: [{ from: "2026-12-05T08:00:00.000Z", to: "2026-12-05T09:59:00.000Z", snapshots: ["s1"] }], missingWal: 0, missingSnapshots: 0, lagSeconds: 0 }],
      snapshots: [{ snapshotId: "s1", finishedAt: "2026-12-05T08:00:00.000Z" }],
      wal: [],
    },
  ],
};

describe("reportHtml", () => {
  it("embeds the data as JSON no value can end early, and names every value in the visible text escaped", () => {
    // Act
    const page = reportHtml(data);
    // Assess: one script element of data and one of code, the hostile text never raw
    expect(page.match(/<script\b/g)).toHaveLength(2);
    expect(page).not.toContain(hostile);
    const json = /<script type="application\/json" id="walvault-data">([^<]*)<\/script>/.exec(page);
    expect(json, "the data element holds no '<'").not.toBeNull();
    expect(JSON.parse(json![1]!)).toEqual(data);
    expect(page).toContain("&lt;/script&gt;&lt;script&gt;alert(&quot;x&quot;)");
  });
});
