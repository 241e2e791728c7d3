/**
 * The few protocol-buffer wire-format pieces a SentencePiece `.model` needs: reading fields of a
 * message (varint, 32-bit, length-delimited; 64-bit and groups skipped) and writing them back.
 *
 * @module
 */

/** One field of a message as read: its number, and its value as the wire type carries it. */
export interface ProtoField {
  /** Field number. */
  readonly field: number;
  /** Wire type: 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit. */
  readonly wire: 0 | 1 | 2 | 5;
  /** The varint (wire 0) as an unsigned 64-bit bigint; the field's bytes for wire types 1, 2 and 5. */
  readonly value: bigint | Uint8Array;
}

/**
 * The fields of the message in `bytes`, in order.
 *
 * @throws {RangeError} naming what is wrong when the bytes are not a well-formed message.
 */
export function readMessage(bytes: Uint8Array): ProtoField[] {
  const fields: ProtoField[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let n = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (pos >= bytes.length) throw new RangeError(`truncated varint at byte ${pos}`);
      const b = bytes[pos++];
      n |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, n);
    }
    throw new RangeError(`varint longer than 10 bytes at byte ${pos}`);
  };
  const take = (n: number): Uint8Array => {
    if (n > bytes.length - pos) throw new RangeError(`field of ${n} bytes runs past the end at byte ${pos}`);
    pos += n;
    return bytes.subarray(pos - n, pos);
  };
  while (pos < bytes.length) {
    const key = Number(varint() & 0xffffffffn);
    const field = key >>> 3;
    const wire = key & 7;
    if (field === 0) throw new RangeError(`field number 0 at byte ${pos}`);
    if (wire === 0) fields.push({ field, wire, value: varint() });
    else if (wire === 1) fields.push({ field, wire, value: take(8) });
    else if (wire === 2) fields.push({ field, wire, value: take(Number(varint())) });
    else if (wire === 5) fields.push({ field, wire, value: take(4) });
    else throw new RangeError(`unsupported wire type ${wire} at byte ${pos}`);
  }
  return fields;
}

/** A signed 32-bit protobuf `int32` from its varint (negative values are 10-byte varints). */
export function int32(value: bigint): number {
  return Number(BigInt.asIntN(32, value));
}

/** Builds a message field by field. */
export class MessageWriter {
  readonly #parts: number[] = [];

  #varint(n: number): void {
    // Negative int32 values are written as 64-bit two's complement, as protobuf does.
    let v = n < 0 ? BigInt.asUintN(64, BigInt(n)) : BigInt(n);
    while (v >= 0x80n) {
      this.#parts.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.#parts.push(Number(v));
  }

  /** An integer, enum or bool field (wire type 0). */
  varint(field: number, value: number | boolean): this {
    this.#varint(field * 8);
    this.#varint(typeof value === "boolean" ? Number(value) : value);
    return this;
  }

  /** A `float` field (wire type 5, little-endian IEEE 754 single). */
  float(field: number, value: number): this {
    this.#varint(field * 8 + 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.#parts.push(...b);
    return this;
  }

  /** A string, bytes or embedded-message field (wire type 2). */
  bytes(field: number, value: string | Uint8Array): this {
    const b = typeof value === "string" ? new TextEncoder().encode(value) : value;
    this.#varint(field * 8 + 2);
    this.#varint(b.length);
    for (const x of b) this.#parts.push(x);
    return this;
  }

  /** The message's bytes. */
  finish(): Uint8Array {
    return Uint8Array.from(this.#parts);
  }
}
