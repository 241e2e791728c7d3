/**
 * Strict UTF-8 decoding of a file read in chunks: a multi-byte character split across chunks is
 * carried over, and invalid input is an error naming the file and the byte offset.
 */
import { DataError } from "./errors.ts";

/** Index of the first byte that starts an invalid or truncated UTF-8 sequence, or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || c < lo || c > hi) return i;
      lo = 0x80;
      hi = 0xbf;
    }
    i += need + 1;
  }
  return -1;
}

/** Where the last complete character of `bytes` ends: a trailing partial sequence is left out. */
function completeLength(bytes: Uint8Array): number {
  for (let i = bytes.length - 1; i >= Math.max(0, bytes.length - 4); i--) {
    const b = bytes[i];
    if ((b & 0xc0) === 0x80) continue;
    // Bytes that can never start a character (C0, C1, F5-FF) are left for the decoder to reject.
    const len = b >= 0xf0 && b <= 0xf4 ? 4 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xc2 && b < 0xe0 ? 2 : 1;
    return i + len > bytes.length ? i : bytes.length;
  }
  return bytes.length;
}

/** Decodes one file chunk by chunk; a BOM is dropped at the start of the file only. */
export class Utf8Chunks {
  readonly #label: string;
  #offset = 0;
  #carry = new Uint8Array(0);
  #first = new TextDecoder("utf-8", { fatal: true });
  readonly #rest = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

  /** Starts at byte 0 of the file called `label` in errors. */
  constructor(label: string) {
    this.#label = label;
  }

  /**
   * Text of the next `chunk` of bytes, up to its last complete character.
   *
   * @throws {DataError} naming the file and byte offset of an invalid sequence.
   */
  decode(chunk: Uint8Array): string {
    let bytes = chunk;
    if (this.#carry.length > 0) {
      bytes = new Uint8Array(this.#carry.length + chunk.length);
      bytes.set(this.#carry);
      bytes.set(chunk, this.#carry.length);
    }
    const end = completeLength(bytes);
    const body = bytes.subarray(0, end);
    let text: string;
    try {
      text = (this.#offset === 0 ? this.#first : this.#rest).decode(body);
    } catch {
      throw new DataError(`${this.#label}: invalid UTF-8 at byte ${this.#offset + firstInvalidUtf8(body)}`);
    }
    this.#offset += end;
    this.#carry = bytes.slice(end);
    return text;
  }

  /** Checks that the file did not end inside a character. */
  finish(): void {
    if (this.#carry.length > 0) {
      throw new DataError(
        `${this.#label}: invalid UTF-8 at byte ${this.#offset} (the file ends inside a character)`,
      );
    }
  }
}
