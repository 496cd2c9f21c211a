// MD5 (RFC 1321) of byte arrays, incrementally, for the file fingerprints. WebCrypto has no
// MD5, and MD5 is one of the exact signals the clearinghouse matches on, so it is written
// here, from the RFC, and tested on the RFC's vectors and against Python's hashlib.

// Per-round shift amounts (RFC 1321, 3.4).
const SHIFTS = [
  7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
  5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
  4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
  6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];

// T[i] = floor(2^32 * abs(sin(i + 1))), written out: the browser's Math.sin is not
// guaranteed to round as the RFC's table was computed.
const T = new Uint32Array([
  0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
  0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
  0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
  0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
  0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
  0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
  0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
  0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
]);

/** An incremental MD5: update() with byte chunks of any size, then hex() once. */
export class Md5 {
  constructor() {
    this.state = new Uint32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]);
    this.block = new Uint8Array(64);
    this.blockLength = 0;
    this.total = 0; // bytes so far (exact as a double up to 2^53)
    this.words = new Uint32Array(16);
    this.finished = false;
  }

  /** Adds bytes (a Uint8Array). */
  update(bytes) {
    if (this.finished) throw new Error("MD5 already finished");
    let offset = 0;
    this.total += bytes.length;
    if (this.blockLength > 0) {
      const take = Math.min(64 - this.blockLength, bytes.length);
      this.block.set(bytes.subarray(0, take), this.blockLength);
      this.blockLength += take;
      offset = take;
      if (this.blockLength < 64) return this;
      this.compress(this.block, 0);
      this.blockLength = 0;
    }
    for (; offset + 64 <= bytes.length; offset += 64) this.compress(bytes, offset);
    this.block.set(bytes.subarray(offset), 0);
    this.blockLength = bytes.length - offset;
    return this;
  }

  /** Pads (RFC 1321, 3.1-3.2) and returns the digest as 32 lower-case hex digits. */
  hex() {
    if (this.finished) throw new Error("MD5 already finished");
    const bits = this.total * 8;
    const pad = new Uint8Array(((this.blockLength < 56 ? 56 : 120) - this.blockLength) + 8);
    pad[0] = 0x80;
    const end = pad.length - 8;
    const low = bits % 0x100000000;
    const high = Math.floor(bits / 0x100000000);
    for (let i = 0; i < 4; i++) {
      pad[end + i] = (low >>> (8 * i)) & 0xff;
      pad[end + 4 + i] = (high >>> (8 * i)) & 0xff;
    }
    this.total -= pad.length; // padding is not message
    this.update(pad);
    this.finished = true;
    let out = "";
    for (const word of this.state) {
      for (let i = 0; i < 4; i++) out += ((word >>> (8 * i)) & 0xff).toString(16).padStart(2, "0");
    }
    return out;
  }

  compress(bytes, offset) {
    const x = this.words;
    for (let i = 0; i < 16; i++) {
      const o = offset + 4 * i;
      x[i] = bytes[o] | (bytes[o + 1] << 8) | (bytes[o + 2] << 16) | (bytes[o + 3] << 24);
    }
    let [a, b, c, d] = this.state;
    for (let i = 0; i < 64; i++) {
      let f, g;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) & 15;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) & 15;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) & 15;
      }
      const sum = (a + f + T[i] + x[g]) | 0;
      const s = SHIFTS[i];
      const rotated = (sum << s) | (sum >>> (32 - s));
      a = d;
      d = c;
      c = b;
      b = (b + rotated) | 0;
    }
    const st = this.state;
    st[0] += a;
    st[1] += b;
    st[2] += c;
    st[3] += d;
  }
}

/** MD5 of one byte array, as hex. */
export function md5Hex(bytes) {
  return new Md5().update(bytes).hex();
}
