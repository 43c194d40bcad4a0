/**
 * core/backup-manifest.ts: the backup_manifest the direct source writes has
 * pg_basebackup's exact shape (a line taken from a real PostgreSQL 15
 * manifest) and a Manifest-Checksum over every byte before it.
 * (test/agent/snapshot-push-direct.test.ts checks a whole real manifest byte
 * for byte, and pg_verifybackup on a restored direct snapshot.)
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { backupManifestFileLine, backupManifestPieces, backupManifestText } from "../../core/backup-manifest.js";

describe("backupManifestText", () => {
  it("writes a file line exactly as PostgreSQL 15's pg_basebackup --manifest-checksums=SHA256 does", () => {
    // From a real backup_manifest (pg_basebackup 15.18).
    const real =
      '{ "Path": "backup_label", "Size": 225, "Last-Modified": "2026-12-03 10:57:38 GMT", "Checksum-Algorithm": "SHA256", "Checksum": "4bd603886a8c8441fcbe5128743cca6537f62bf9479635aa97d60ce6eeac1e40" }';
    const line = backupManifestFileLine({ path: "backup_label", size: 225, mtime: new Date("2026-12-03T10:57:38.731Z"), sha256: "4bd603886a8c8441fcbe5128743cca6537f62bf9479635aa97d60ce6eeac1e40" });
    expect(line).toBe(real);
  });

  it("writes a file without a SHA-256 as pg_basebackup --manifest-checksums=NONE does: no checksum keys", () => {
    // The shape of PostgreSQL 15's AddFileToBackupManifest with CHECKSUM_TYPE_NONE.
    const line = backupManifestFileLine({ path: "base/1/1259", size: 262144, mtime: new Date("2026-12-03T10:57:38Z") });
    expect(line).toBe('{ "Path": "base/1/1259", "Size": 262144, "Last-Modified": "2026-12-03 10:57:38 GMT" }');
    expect(JSON.parse(line)).toEqual({ Path: "base/1/1259", Size: 262144, "Last-Modified": "2026-12-03 10:57:38 GMT" });
  });

  it("lists files and WAL ranges, escapes paths as JSON, and ends with the SHA-256 of everything before Manifest-Checksum", async () => {
    // Prepare
    const files = [
      { path: "PG_VERSION", size: 3, mtime: new Date("2026-01-02T03:04:05Z"), sha256: "a".repeat(64) },
      { path: 'odd "name"\\x', size: 0, mtime: new Date("2026-01-02T03:04:05Z"), sha256: "b".repeat(64) },
    ];
    // Act
    const text = await backupManifestText(files, [{ timeline: 3, startLsn: 0x1_0200_0028n, endLsn: 0x1_0200_0100n }]);
    // Assess
    const at = text.lastIndexOf('"Manifest-Checksum"');
    expect(text.slice(0, at)).toBe(
      '{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [\n' +
        `${backupManifestFileLine(files[0]!)},\n${backupManifestFileLine(files[1]!)}` +
        '\n],\n"WAL-Ranges": [\n{ "Timeline": 3, "Start-LSN": "1/2000028", "End-LSN": "1/2000100" }\n],\n',
    );
    expect(text.slice(at)).toBe(`"Manifest-Checksum": "${createHash("sha256").update(text.slice(0, at)).digest("hex")}"}\n`);
    const parsed = JSON.parse(text) as { Files: { Path: string }[] };
    expect(parsed.Files.map((f) => f.Path)).toEqual(files.map((f) => f.path));
  });

  it("in pieces from lines that arrive one at a time, gives the whole text pg_basebackup's format spells: no file, a few, and pieces of many lines", async () => {
    // Prepare
    const ranges = [{ timeline: 2, startLsn: 0x5000028n, endLsn: 0x5000100n }];
    const line = (i: number): string =>
      backupManifestFileLine({ path: `base/5/${16384 + i}_ü`, size: i * 8192, mtime: new Date(Date.UTC(2026, 11, 5, 1, 2, i % 60)), ...(i % 3 === 0 ? {} : { sha256: createHash("sha256").update(String(i)).digest("hex") }) });
    async function* arriving(lines: string[]): AsyncGenerator<string> {
      for (const l of lines) yield l;
    }
    for (const count of [0, 3, 2000]) {
      const lines = Array.from({ length: count }, (_, i) => line(i));
      // Act
      const pieces: Buffer[] = [];
      for await (const p of backupManifestPieces(arriving(lines), ranges)) pieces.push(p);
      // Assess
      // The format spelled out here, independently of the module: head, the lines, WAL-Ranges, the checksum of all that.
      const body = `{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [${count === 0 ? "" : `\n${lines.join(",\n")}`}\n],\n"WAL-Ranges": [\n{ "Timeline": 2, "Start-LSN": "0/5000028", "End-LSN": "0/5000100" }\n],\n`;
      const whole = `${body}"Manifest-Checksum": "${createHash("sha256").update(body, "utf8").digest("hex")}"}\n`;
      expect(Buffer.concat(pieces).toString("utf8"), `${count} lines`).toBe(whole);
      if (count === 2000) expect(pieces.length).toBeGreaterThan(3);
    }
  });
});
