import { describe, expect, it } from "vitest";
import { ConfigError } from "../../core/errors.js";
import { parseThawSetting, thawByDefault, thawByDefaultSubstitution } from "../../core/thaw.js";

describe("whether a restore thaws by default", () => {
  it("auto is on only when the lifecycle moves objects to GLACIER or DEEP_ARCHIVE", () => {
    expect(thawByDefault("auto", [])).toBe(false);
    expect(thawByDefault("auto", ["STANDARD_IA", "GLACIER_IR"])).toBe(false);
    expect(thawByDefault("auto", ["STANDARD_IA", "GLACIER"])).toBe(true);
    expect(thawByDefault("auto", ["DEEP_ARCHIVE"])).toBe(true);
  });

  it("on and off decide whatever the lifecycle", () => {
    expect(thawByDefault("on", [])).toBe(true);
    expect(thawByDefault("off", ["DEEP_ARCHIVE"])).toBe(false);
    expect(thawByDefaultSubstitution("on", [])).toBe("on");
    expect(thawByDefaultSubstitution("auto", ["GLACIER_IR"])).toBe("off");
  });

  it("WALVAULT_THAW defaults to auto when unset or empty and rejects other values naming the accepted ones", () => {
    expect(parseThawSetting(undefined)).toBe("auto");
    expect(parseThawSetting("")).toBe("auto");
    expect(parseThawSetting("off")).toBe("off");
    expect(() => parseThawSetting("yes")).toThrow(ConfigError);
    expect(() => parseThawSetting("yes")).toThrow(/auto, on, off.*'yes'/);
  });
});
