/** agent/config.ts: the switches read from the environment. */
import { describe, expect, it } from "vitest";
import { walDirectEnabled } from "../../agent/config.js";
import { ConfigError } from "../../core/errors.js";

describe("walDirectEnabled (WALVAULT_WAL_DIRECT, config walDirect)", () => {
  const WAL_RECORD = "arn:aws:states:us-east-1:123456789012:stateMachine:walvault-wal-record";

  it("is on by default when the configuration names the wal-record workflow", () => {
    expect(walDirectEnabled({ walRecordStateMachineArn: WAL_RECORD }, {})).toBe(true);
    expect(walDirectEnabled({ walRecordStateMachineArn: WAL_RECORD }, { WALVAULT_WAL_DIRECT: "" })).toBe(true);
  });

  it("is off by default when the configuration names no wal-record workflow (written before it existed)", () => {
    expect(walDirectEnabled({}, {})).toBe(false);
    expect(walDirectEnabled({}, { WALVAULT_WAL_DIRECT: "" })).toBe(false);
  });

  it("follows the configuration's walDirect when the environment is silent", () => {
    expect(walDirectEnabled({ walDirect: true }, {})).toBe(true);
    expect(walDirectEnabled({ walDirect: false, walRecordStateMachineArn: WAL_RECORD }, {})).toBe(false);
  });

  it("lets the environment override the configuration either way", () => {
    for (const on of ["1", "true", "YES", " on "]) expect(walDirectEnabled({ walDirect: false }, { WALVAULT_WAL_DIRECT: on }), on).toBe(true);
    for (const off of ["0", "false", "no", "OFF"]) expect(walDirectEnabled({ walDirect: true }, { WALVAULT_WAL_DIRECT: off }), off).toBe(false);
    expect(walDirectEnabled({ walRecordStateMachineArn: WAL_RECORD }, { WALVAULT_WAL_DIRECT: "0" })).toBe(false);
  });

  it("refuses anything else, naming the value", () => {
    expect(() => walDirectEnabled({}, { WALVAULT_WAL_DIRECT: "maybe" })).toThrow(ConfigError);
    expect(() => walDirectEnabled({}, { WALVAULT_WAL_DIRECT: "maybe" })).toThrow(/maybe/);
  });
});
