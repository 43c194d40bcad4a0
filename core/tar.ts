/**
 * Streaming tar reader for `walvault snapshot push` on PostgreSQL: reads the
 * archive `pg_basebackup -D - -Ft` writes on stdout in ONE pass, handing each
 * member's bytes to the caller (e.g. the content-defined chunker) as they
 * arrive. Nothing is ever seeked, and no member body is buffered.
 *
 * Usage:
 *
 *     for await (const entry of readTar(child.stdout)) {
 *       if (entry.type === "file") {
 *         for await (const chunk of chunkStream(entry.body)) upload(chunk);
 *       }
 *       // bodies left unread (directories, skipped files) are drained here
 *     }
 *
 * Contract with the consumer:
 *  - Entries are strictly sequential. An entry's `body` can only be read until
 *    the consumer asks the generator for the next entry. At that point
 *    whatever is left of the body is read from the source and discarded
 *    (`entry.skip()` does the same explicitly), and the old body is closed:
 *    reading it later throws. So: consume (or skip) each body before moving on;
 *    do not keep a body to read in parallel with the next entry.
 *  - `body` is single-pass. Breaking out of a `for await` over it does not
 *    discard the rest: a new iteration continues where the previous one
 *    stopped, and whatever is still unread is drained when the consumer moves on.
 *  - Body pieces are subarrays of the source's pieces (no copy). They stay
 *    valid as long as the source does not reuse its buffers (Node streams
 *    never do); a source that recycles one buffer must copy before yielding.
 *  - Breaking out of the entries loop (or an error) calls `return()` on the
 *    source iterator, which destroys a Node stream.
 *
 * Memory: one 512-byte header scratch block plus extended-header data (GNU
 * long names, PAX records), which are bounded by `maxExtendedHeaderSize`
 * (1 MiB by default). File bodies are never buffered, whatever their size.
 *
 * Formats:
 *  - V7 and POSIX ustar headers (ustar's `prefix` + `name` for long paths).
 *  - GNU tar: long names and link names (`L` / `K` entries), base-256 numeric
 *    fields (files of 8 GiB and more, negative mtimes), the directory-dump
 *    type `D` (a directory whose body is skipped), contiguous files `7`.
 *  - PAX: per-file extended headers (`x`, and Solaris' `X`) with `path`,
 *    `linkpath`, `size`, `mtime` (fractional), `uid`, `gid`, `uname`, `gname`;
 *    other keywords are ignored. Global headers (`g`) are parsed and
 *    validated, then ignored (pg_basebackup never writes them).
 *  - Not supported, rejected with InvalidInputError: GNU sparse files (`S`, or
 *    PAX `GNU.sparse.*`) and multi-volume continuations (`M`), whose bodies
 *    are not the file's bytes.
 *
 * Checks, each an InvalidInputError naming the archive offset and what is wrong:
 *  - every header's checksum (unsigned sum, or the historic signed sum);
 *  - malformed numeric fields and PAX records;
 *  - EOF inside a header or a body or its padding ("truncated"), naming the
 *    entry and how many bytes are missing;
 *  - an archive that ends without an end-of-archive marker. The marker is two
 *    zero blocks; EOF right after a single zero block, and zero bytes after the
 *    marker, are tolerated (and read, so a producer writing to a pipe is never
 *    left blocked). Non-zero data after a zero block is an error rather than
 *    silently ignored;
 *  - entry paths (and hard-link targets, which name archive members) that are
 *    absolute or contain a `..` segment, or are empty. Symlink targets are
 *    passed through unchecked: pg_basebackup stores tablespace links in
 *    pg_tblspc/ with absolute targets. The restore side must still confine
 *    what it writes.
 *
 * Paths are decoded as UTF-8 and trailing slashes are removed ("dir/" -> "dir").
 *
 * Pure: no I/O beyond reading the given source.
 */
import { InvalidInputError } from "./errors.js";

export type TarEntryType = "file" | "directory" | "symlink" | "hardlink" | "other";

export interface TarEntry {
  /** Member path, relative, without trailing slash; never absolute, never with a `..` segment. */
  readonly path: string;
  readonly type: TarEntryType;
  /** Permission bits (mode & 0o7777). */
  readonly mode: number;
  /** Body length in bytes (0 for directories, links... as recorded). */
  readonly size: number;
  readonly mtime: Date;
  /** Target of a symlink or hard link (set only for those types). */
  readonly linkName?: string;
  readonly uid: number;
  readonly gid: number;
  readonly uname: string;
  readonly gname: string;
  /** The raw type flag character ("0", "5", "3"...), useful for type "other". */
  readonly typeflag: string;
  /** Archive offset of this member's own header block (after any extended headers). */
  readonly headerOffset: number;
  /**
   * The member's bytes, in pieces as they arrive. Read it (or call skip())
   * before asking for the next entry; anything unread is then discarded and
   * the body can no longer be read.
   */
  readonly body: AsyncIterable<Uint8Array>;
  /** Reads and discards whatever of the body is still unread. */
  skip(): Promise<void>;
}

export interface ReadTarOptions {
  /**
   * Upper bound, in bytes, on one extended header's data (GNU long name/link,
   * PAX records), which must be held in memory. Default 1 MiB.
   */
  maxExtendedHeaderSize?: number;
}

const BLOCK = 512;
const DEFAULT_MAX_EXTENDED = 1024 * 1024;
const EMPTY = new Uint8Array(0);
const utf8 = new TextDecoder("utf-8");

/** Pull-based reader over the source's pieces; tracks the archive offset. */
class ByteReader {
  /** Archive offset of the next unread byte. */
  offset = 0;
  private buf: Uint8Array = EMPTY;
  private pos = 0;
  private ended = false;
  private busy = false;
  private readonly it: AsyncIterator<Uint8Array> | Iterator<Uint8Array>;

  constructor(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    if (source != null && typeof (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === "function") {
      this.it = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    } else if (source != null && typeof (source as Iterable<Uint8Array>)[Symbol.iterator] === "function") {
      this.it = (source as Iterable<Uint8Array>)[Symbol.iterator]();
    } else {
      throw new InvalidInputError("readTar: the source must be an (async) iterable of Uint8Array pieces");
    }
  }

  get finished(): boolean {
    return this.ended;
  }

  /** Makes unread bytes available in `buf`; false at end of input. */
  private async fill(): Promise<boolean> {
    while (this.pos >= this.buf.length) {
      if (this.ended) return false;
      if (this.busy) {
        throw new InvalidInputError("readTar: concurrent reads; read one entry body at a time, before the next entry");
      }
      this.busy = true;
      let r: IteratorResult<Uint8Array>;
      try {
        r = await this.it.next();
      } finally {
        this.busy = false;
      }
      if (r.done) {
        this.ended = true;
        this.buf = EMPTY;
        this.pos = 0;
        return false;
      }
      const piece: unknown = r.value;
      if (!(piece instanceof Uint8Array)) {
        throw new InvalidInputError(`readTar: the source yielded a ${typeof piece}, not a Uint8Array, at offset ${this.offset}`);
      }
      this.buf = piece;
      this.pos = 0;
    }
    return true;
  }

  /** Up to `max` (> 0) bytes, as a subarray of the current piece; null at end of input. */
  async take(max: number): Promise<Uint8Array | null> {
    if (!(await this.fill())) return null;
    const n = Math.min(max, this.buf.length - this.pos);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }

  /**
   * Exactly `n` bytes when available: a subarray of the current piece when
   * they lie in it, else copied into `scratch` (length >= n). Fewer bytes
   * only at end of input.
   */
  async readExact(n: number, scratch: Uint8Array): Promise<Uint8Array> {
    if (!(await this.fill())) return EMPTY;
    if (this.buf.length - this.pos >= n) {
      const out = this.buf.subarray(this.pos, this.pos + n);
      this.pos += n;
      this.offset += n;
      return out;
    }
    let got = 0;
    while (got < n) {
      const part = await this.take(n - got);
      if (part === null) break;
      scratch.set(part, got);
      got += part.length;
    }
    return scratch.subarray(0, got);
  }

  /** Discards up to `n` bytes; returns how many were discarded (< n only at end of input). */
  async skip(n: number): Promise<number> {
    let done = 0;
    while (done < n) {
      const part = await this.take(n - done);
      if (part === null) break;
      done += part.length;
    }
    return done;
  }

  /** Reads the rest of the input; returns the offset of the first non-zero byte, or -1. */
  async drainZeros(): Promise<number> {
    for (;;) {
      const start = this.offset;
      const part = await this.take(Number.MAX_SAFE_INTEGER);
      if (part === null) return -1;
      const i = part.findIndex((b) => b !== 0);
      if (i >= 0) return start + i;
    }
  }

  /** Lets the source release its resources (destroys a Node stream) when reading stops early. */
  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.buf = EMPTY;
    await this.it.return?.();
  }
}

/** The body of one member: a single-pass view of the next `size` bytes of the archive. */
class EntryBody implements AsyncIterable<Uint8Array>, AsyncIterator<Uint8Array> {
  private remaining: number;
  private closed = false;

  constructor(
    private readonly reader: ByteReader,
    private readonly path: string,
    private readonly size: number,
  ) {
    this.remaining = size;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    if (this.closed) {
      throw new InvalidInputError(
        `readTar: the body of "${this.path}" was read after the next entry was requested; read or skip each body before moving on`,
      );
    }
    if (this.remaining === 0) return { done: true, value: undefined };
    const piece = await this.reader.take(this.remaining);
    if (piece === null) throw this.truncated();
    this.remaining -= piece.length;
    return { done: false, value: piece };
  }

  /** Ending a for-await early keeps the rest for a later iteration or the automatic drain. */
  async return(): Promise<IteratorResult<Uint8Array>> {
    return { done: true, value: undefined };
  }

  async skip(): Promise<void> {
    if (this.closed || this.remaining === 0) return;
    const n = await this.reader.skip(this.remaining);
    this.remaining -= n;
    if (this.remaining > 0) throw this.truncated();
  }

  /** Drains the body and its padding to the block boundary, then closes it. */
  async finish(): Promise<void> {
    await this.skip();
    this.closed = true;
    const padding = padTo(this.size);
    const n = await this.reader.skip(padding);
    if (n < padding) {
      throw new InvalidInputError(
        `truncated tar archive: the padding after "${this.path}" ends at offset ${this.reader.offset}, ${padding - n} bytes missing`,
      );
    }
  }

  private truncated(): InvalidInputError {
    return new InvalidInputError(
      `truncated tar archive: "${this.path}" (${this.size} bytes) ends at offset ${this.reader.offset} after ${this.size - this.remaining} bytes, ${this.remaining} bytes missing`,
    );
  }
}

function padTo(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** Overrides collected from GNU long-name entries and PAX headers for the next member. */
interface Pending {
  /** Offset of the first extended header, for error messages. */
  offset: number;
  path?: string;
  linkPath?: string;
  size?: number;
  mtimeMs?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
}

/**
 * Reads a tar archive from `source` in one pass and yields its members.
 * See the module comment for the consumer contract and supported formats.
 */
export async function* readTar(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: ReadTarOptions = {},
): AsyncGenerator<TarEntry, void, undefined> {
  const maxExtended = options.maxExtendedHeaderSize ?? DEFAULT_MAX_EXTENDED;
  if (!Number.isSafeInteger(maxExtended) || maxExtended < 0) {
    throw new InvalidInputError(`readTar: maxExtendedHeaderSize must be a non-negative integer, got ${maxExtended}`);
  }
  const reader = new ByteReader(source);
  const scratch = new Uint8Array(BLOCK);
  let previous: string | undefined;
  let pending: Pending | undefined;
  const where = (): string => (previous === undefined ? "at the start of the archive" : `after "${previous}"`);

  try {
    for (;;) {
      const headerOffset = reader.offset;
      const block = await reader.readExact(BLOCK, scratch);
      if (block.length === 0) {
        if (pending) throw danglingExtended(pending);
        throw new InvalidInputError(
          `truncated tar archive: input ends at offset ${headerOffset} ${where()} without an end-of-archive marker (${2 * BLOCK} zero bytes missing)`,
        );
      }
      if (block.length < BLOCK) {
        throw new InvalidInputError(
          `truncated tar archive: the header at offset ${headerOffset} ${where()} has ${block.length} of ${BLOCK} bytes, ${BLOCK - block.length} bytes missing`,
        );
      }

      if (isZero(block)) {
        if (pending) throw danglingExtended(pending);
        await readEndOfArchive(reader, scratch, headerOffset);
        return;
      }

      verifyChecksum(block, headerOffset, where);
      const h = parseHeader(block, headerOffset);

      // Extended headers: they describe the next member.
      if (h.typeflag === "L" || h.typeflag === "K" || h.typeflag === "x" || h.typeflag === "X" || h.typeflag === "g") {
        if (h.size > maxExtended) {
          throw new InvalidInputError(
            `tar extended header (type '${h.typeflag}') at offset ${headerOffset} is ${h.size} bytes, more than the ${maxExtended} allowed`,
          );
        }
        const data = await readExtendedData(reader, h.size, headerOffset, h.typeflag);
        if (h.typeflag === "g") {
          parsePaxRecords(data, headerOffset); // validated, then ignored
          continue;
        }
        pending ??= { offset: headerOffset };
        if (h.typeflag === "L") pending.path = cString(data, 0, data.length);
        else if (h.typeflag === "K") pending.linkPath = cString(data, 0, data.length);
        else applyPax(pending, parsePaxRecords(data, headerOffset), headerOffset);
        continue;
      }

      if (h.typeflag === "S" || h.typeflag === "M" || h.typeflag === "N") {
        const what =
          h.typeflag === "S" ? "GNU sparse file" : h.typeflag === "M" ? "multi-volume continuation" : "GNU old long-name entry";
        throw new InvalidInputError(`unsupported tar entry at offset ${headerOffset}: ${what} "${pending?.path ?? h.path}"`);
      }

      const rawPath = pending?.path ?? h.path;
      let type = entryType(h.typeflag);
      if (type === "file" && (h.typeflag === "0" || h.typeflag === "\0") && rawPath.endsWith("/")) type = "directory";
      const path = checkPath(rawPath, headerOffset, "path");
      const rawLink = pending?.linkPath ?? h.linkName;
      const linkName =
        type === "hardlink" ? checkPath(rawLink, headerOffset, "hard link target") : type === "symlink" ? rawLink : undefined;
      if (type === "symlink" && rawLink.length === 0) {
        throw new InvalidInputError(`tar symlink "${path}" at offset ${headerOffset} has an empty target`);
      }
      const size = pending?.size ?? h.size;
      const mtimeMs = pending?.mtimeMs ?? h.mtime * 1000;

      const body = new EntryBody(reader, path, size);
      const entry: TarEntry = {
        path,
        type,
        mode: h.mode & 0o7777,
        size,
        mtime: new Date(mtimeMs),
        ...(linkName === undefined ? {} : { linkName }),
        uid: pending?.uid ?? h.uid,
        gid: pending?.gid ?? h.gid,
        uname: pending?.uname ?? h.uname,
        gname: pending?.gname ?? h.gname,
        typeflag: h.typeflag,
        headerOffset,
        body,
        skip: () => body.skip(),
      };
      pending = undefined;
      yield entry;
      await body.finish();
      previous = path;
    }
  } finally {
    await reader.close();
  }
}

function danglingExtended(pending: Pending): InvalidInputError {
  return new InvalidInputError(
    `malformed tar archive: the extended header at offset ${pending.offset} is not followed by an entry`,
  );
}

/** After a first zero block: a second one (or EOF) ends the archive; anything after must be zeros. */
async function readEndOfArchive(reader: ByteReader, scratch: Uint8Array, firstOffset: number): Promise<void> {
  const secondOffset = reader.offset;
  const second = await reader.readExact(BLOCK, scratch);
  const nonZero = second.findIndex((b) => b !== 0);
  if (nonZero >= 0) {
    throw new InvalidInputError(
      `malformed tar archive: a zero block at offset ${firstOffset} is followed by data at offset ${secondOffset + nonZero} (a zero block in the middle of the archive, or a corrupted header)`,
    );
  }
  const garbage = await reader.drainZeros();
  if (garbage >= 0) {
    throw new InvalidInputError(`malformed tar archive: non-zero data at offset ${garbage}, after the end-of-archive marker`);
  }
}

async function readExtendedData(reader: ByteReader, size: number, headerOffset: number, typeflag: string): Promise<Uint8Array> {
  const data = new Uint8Array(size);
  let got = 0;
  while (got < size) {
    const part = await reader.take(size - got);
    if (part === null) break;
    data.set(part, got);
    got += part.length;
  }
  const padding = padTo(size);
  const padded = got === size ? await reader.skip(padding) : 0;
  if (got < size || padded < padding) {
    throw new InvalidInputError(
      `truncated tar archive: the extended header (type '${typeflag}') at offset ${headerOffset} ends at offset ${reader.offset}, ${size - got + padding - padded} bytes missing`,
    );
  }
  return data;
}

function isZero(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

function verifyChecksum(block: Uint8Array, offset: number, where: () => string): void {
  const stored = parseOctal(block, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b >= 0x80 ? b - 0x100 : b;
  }
  if (stored === null || (stored !== unsigned && stored !== signed)) {
    const shown = stored === null ? `unreadable "${latin1(block, 148, 8)}"` : `stored ${stored}`;
    throw new InvalidInputError(
      `bad tar header checksum at offset ${offset} ${where()}: ${shown}, computed ${unsigned} (corrupted archive, or not a tar archive)`,
    );
  }
}

interface RawHeader {
  path: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkName: string;
  uname: string;
  gname: string;
}

function parseHeader(block: Uint8Array, offset: number): RawHeader {
  const num = (start: number, length: number, field: string): number => {
    const v = parseNumeric(block, start, length);
    if (v === null) {
      throw new InvalidInputError(
        `malformed tar header at offset ${offset}: the ${field} field "${latin1(block, start, length)}" is not a number`,
      );
    }
    return v;
  };
  const magic = latin1(block, 257, 6);
  const version = latin1(block, 263, 2);
  const isGnu = magic === "ustar " && version === " \0";
  const isUstar = magic === "ustar\0";
  const name = cString(block, 0, 100);
  const prefix = isUstar && !isGnu ? cString(block, 345, 155) : "";
  const size = num(124, 12, "size");
  if (size < 0) throw new InvalidInputError(`malformed tar header at offset ${offset}: negative size ${size}`);
  return {
    path: prefix ? `${prefix}/${name}` : name,
    mode: num(100, 8, "mode"),
    uid: num(108, 8, "uid"),
    gid: num(116, 8, "gid"),
    size,
    mtime: num(136, 12, "mtime"),
    typeflag: String.fromCharCode(block[156]!),
    linkName: cString(block, 157, 100),
    uname: isUstar || isGnu ? cString(block, 265, 32) : "",
    gname: isUstar || isGnu ? cString(block, 297, 32) : "",
  };
}

/** Octal (optionally space/NUL padded) or GNU base-256; null when malformed or beyond 2^53. */
function parseNumeric(block: Uint8Array, start: number, length: number): number | null {
  const first = block[start]!;
  if (first & 0x80) {
    // Base-256: big-endian two's complement over the field, bit 7 of the first byte is the marker.
    let v = BigInt(first & 0x7f);
    for (let i = 1; i < length; i++) v = (v << 8n) | BigInt(block[start + i]!);
    if (first & 0x40) v -= 1n << BigInt(8 * length - 1);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) return null;
    return Number(v);
  }
  const v = parseOctal(block, start, length);
  return v;
}

function parseOctal(block: Uint8Array, start: number, length: number): number | null {
  let i = start;
  const end = start + length;
  while (i < end && block[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = block[i]!;
    if (c < 0x30 || c > 0x37) break;
    v = v * 8 + (c - 0x30);
    digits++;
  }
  // The rest must be terminators (NUL or space).
  for (; i < end; i++) {
    const c = block[i]!;
    if (c !== 0 && c !== 0x20) return null;
  }
  if (digits === 0) {
    // An all-blank field reads as 0 (some writers leave mode/uid/gid empty).
    return 0;
  }
  return Number.isSafeInteger(v) ? v : null;
}

function cString(bytes: Uint8Array, start: number, length: number): string {
  let end = start;
  const limit = start + length;
  while (end < limit && bytes[end] !== 0) end++;
  return utf8.decode(bytes.subarray(start, end));
}

function latin1(bytes: Uint8Array, start: number, length: number): string {
  let s = "";
  for (let i = start; i < start + length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

function entryType(typeflag: string): TarEntryType {
  switch (typeflag) {
    case "0":
    case "\0":
    case "7":
      return "file";
    case "1":
      return "hardlink";
    case "2":
      return "symlink";
    case "5":
    case "D":
      return "directory";
    default:
      return "other";
  }
}

/** Rejects absolute, empty, NUL-containing and `..`-containing paths; strips trailing slashes. */
function checkPath(raw: string, offset: number, what: string): string {
  if (raw.startsWith("/")) {
    throw new InvalidInputError(`unsafe tar entry at offset ${offset}: absolute ${what} "${raw}"`);
  }
  if (raw.includes("\0")) {
    throw new InvalidInputError(`unsafe tar entry at offset ${offset}: ${what} "${raw.replace(/\0/g, "\\0")}" contains a NUL byte`);
  }
  const path = raw.replace(/\/+$/, "");
  if (path.length === 0) {
    throw new InvalidInputError(`malformed tar entry at offset ${offset}: empty ${what}`);
  }
  if (path.split("/").includes("..")) {
    throw new InvalidInputError(`unsafe tar entry at offset ${offset}: ${what} "${raw}" contains a ".." segment`);
  }
  return path;
}

/** PAX records "<len> <key>=<value>\n", in order (later ones win). */
function parsePaxRecords(data: Uint8Array, offset: number): Array<[string, string]> {
  const records: Array<[string, string]> = [];
  let i = 0;
  while (i < data.length) {
    if (data[i] === 0) break; // NUL padding some writers leave at the end
    const bad = (why: string): InvalidInputError =>
      new InvalidInputError(`malformed PAX extended header at offset ${offset}: record at byte ${i} ${why}`);
    let j = i;
    let len = 0;
    while (j < data.length && data[j]! >= 0x30 && data[j]! <= 0x39 && j - i < 16) {
      len = len * 10 + (data[j]! - 0x30);
      j++;
    }
    if (j === i || data[j] !== 0x20) throw bad("does not start with '<length> '");
    if (len < j - i + 3 || i + len > data.length) throw bad(`has an impossible length ${len}`);
    if (data[i + len - 1] !== 0x0a) throw bad("does not end with a newline");
    const rec = data.subarray(j + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw bad("has no 'key='");
    records.push([utf8.decode(rec.subarray(0, eq)), utf8.decode(rec.subarray(eq + 1))]);
    i += len;
  }
  return records;
}

function applyPax(pending: Pending, records: Array<[string, string]>, offset: number): void {
  const integer = (key: string, value: string): number => {
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
      throw new InvalidInputError(`malformed PAX extended header at offset ${offset}: ${key}=${value} is not a valid integer`);
    }
    return Number(value);
  };
  for (const [key, value] of records) {
    if (key.startsWith("GNU.sparse.")) {
      throw new InvalidInputError(`unsupported tar entry at offset ${offset}: GNU sparse file (PAX ${key})`);
    }
    switch (key) {
      case "path":
        if (value) pending.path = value;
        break;
      case "linkpath":
        if (value) pending.linkPath = value;
        break;
      case "size":
        pending.size = integer(key, value);
        break;
      case "uid":
        pending.uid = integer(key, value);
        break;
      case "gid":
        pending.gid = integer(key, value);
        break;
      case "uname":
        pending.uname = value;
        break;
      case "gname":
        pending.gname = value;
        break;
      case "mtime": {
        if (!/^-?\d+(\.\d*)?$/.test(value)) {
          throw new InvalidInputError(`malformed PAX extended header at offset ${offset}: mtime=${value} is not a number`);
        }
        pending.mtimeMs = Math.round(Number(value) * 1000);
        break;
      }
      default:
        break; // atime, ctime, comment, charset, SCHILY.*, LIBARCHIVE.*... are not needed
    }
  }
}
