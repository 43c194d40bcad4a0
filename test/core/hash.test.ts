import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { SHA256_RE, Sha256Stream, sha256Hex } from "../../core/hash.js";

const EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const TWO_BLOCKS = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("sha256Hex", () => {
  it("matches the FIPS 180-2 test vectors", () => {
    expect(sha256Hex(new Uint8Array(0))).toBe(EMPTY);
    expect(sha256Hex(bytes("abc"))).toBe(ABC);
    expect(sha256Hex(bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))).toBe(TWO_BLOCKS);
  });

  it("hashes only the bytes of a view, not its backing buffer", () => {
    const backing = bytes("xxabcxx");
    expect(sha256Hex(backing.subarray(2, 5))).toBe(ABC);
  });

  it("produces lowercase hex that SHA256_RE accepts", () => {
    expect(SHA256_RE.test(sha256Hex(bytes("abc")))).toBe(true);
  });
});

describe("SHA256_RE", () => {
  it("rejects uppercase, short, long and non-hex strings", () => {
    expect(SHA256_RE.test(ABC.toUpperCase())).toBe(false);
    expect(SHA256_RE.test(ABC.slice(1))).toBe(false);
    expect(SHA256_RE.test(`${ABC}0`)).toBe(false);
    expect(SHA256_RE.test(`${ABC.slice(1)}g`)).toBe(false);
    expect(SHA256_RE.test(`${ABC}\n`)).toBe(false);
  });
});

describe("Sha256Stream", () => {
  it("gives the same digest and size fed in pieces as in one shot", () => {
    // Prepare
    const data = new Uint8Array(randomBytes(200_000));
    const stream = new Sha256Stream();
    // Act: uneven pieces, including empty ones
    const cuts = [0, 0, 1, 63, 64, 65, 4096, 100_000, 100_000, 199_999, 200_000];
    for (let i = 1; i < cuts.length; i++) stream.update(data.subarray(cuts[i - 1], cuts[i]));
    // Assess
    expect(stream.size).toBe(data.length);
    expect(stream.digest()).toBe(sha256Hex(data));
  });

  it("digests nothing as the empty hash", () => {
    const stream = new Sha256Stream();
    expect(stream.size).toBe(0);
    expect(stream.digest()).toBe(EMPTY);
  });

  it("counts bytes as they arrive", () => {
    const stream = new Sha256Stream();
    stream.update(bytes("ab"));
    expect(stream.size).toBe(2);
    stream.update(bytes("c"));
    expect(stream.size).toBe(3);
    expect(stream.digest()).toBe(ABC);
  });
});
