// Bech32 (BIP 173, original checksum constant) as age uses it for recipients and identities.
// Unlike BIP 173, age does not cap the string at 90 characters, so neither do we.

const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3] as const;

const CHARSET_REVERSE = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < CHARSET.length; i++) table[CHARSET.charCodeAt(i)] = i;
  return table;
})();

function polymod(values: ArrayLike<number>): number {
  let chk = 1;
  for (let i = 0; i < values.length; i++) {
    const top = chk >>> 25;
    chk = (((chk & 0x1ffffff) << 5) ^ (values[i] ?? 0)) >>> 0;
    for (let b = 0; b < 5; b++) {
      if ((top >>> b) & 1) chk = (chk ^ (GENERATOR[b] ?? 0)) >>> 0;
    }
  }
  return chk;
}

function hrpExpand(hrp: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < hrp.length; i++) out.push(hrp.charCodeAt(i) >>> 5);
  out.push(0);
  for (let i = 0; i < hrp.length; i++) out.push(hrp.charCodeAt(i) & 31);
  return out;
}

function convertBits(data: ArrayLike<number>, from: number, to: number, pad: boolean): number[] | undefined {
  let acc = 0;
  let bits = 0;
  const out: number[] = [];
  const maxv = (1 << to) - 1;
  for (let i = 0; i < data.length; i++) {
    const value = data[i] ?? 0;
    if (value >>> from !== 0) return undefined;
    acc = ((acc << from) | value) & 0xffffff;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push((acc >>> bits) & maxv);
    }
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & maxv);
  } else if (bits >= from || ((acc << (to - bits)) & maxv) !== 0) {
    return undefined;
  }
  return out;
}

function validHrp(hrp: string): boolean {
  if (hrp.length < 1) return false;
  for (let i = 0; i < hrp.length; i++) {
    const c = hrp.charCodeAt(i);
    if (c < 33 || c > 126) return false;
  }
  return true;
}

/**
 * Encodes bytes under a human-readable part. An upper-case HRP yields an all upper-case string
 * (age identities), a lower-case one an all lower-case string (age recipients).
 */
export function bech32Encode(hrp: string, data: Uint8Array): string {
  const lower = hrp.toLowerCase();
  const upper = hrp.toUpperCase();
  if (!validHrp(hrp) || (hrp !== lower && hrp !== upper)) throw new TypeError(`invalid bech32 HRP: ${hrp}`);
  const values = convertBits(data, 8, 5, true) ?? [];
  const checksumInput = [...hrpExpand(lower), ...values, 0, 0, 0, 0, 0, 0];
  const mod = polymod(checksumInput) ^ 1;
  let out = `${lower}1`;
  for (const v of values) out += CHARSET[v];
  for (let p = 0; p < 6; p++) out += CHARSET[(mod >>> (5 * (5 - p))) & 31];
  return hrp === lower ? out : out.toUpperCase();
}

/**
 * Decodes a bech32 string. Returns undefined for anything malformed (mixed case, bad characters,
 * bad checksum, non-zero padding). The returned HRP keeps the case of the input.
 */
export function bech32Decode(text: string): { hrp: string; data: Buffer } | undefined {
  const lower = text.toLowerCase();
  if (text !== lower && text !== text.toUpperCase()) return undefined;
  const pos = lower.lastIndexOf("1");
  if (pos < 1 || pos + 7 > lower.length) return undefined;
  const hrp = text.slice(0, pos);
  if (!validHrp(hrp)) return undefined;
  const values: number[] = [];
  for (let i = pos + 1; i < lower.length; i++) {
    const c = lower.charCodeAt(i);
    const v = c < 128 ? (CHARSET_REVERSE[c] ?? -1) : -1;
    if (v < 0) return undefined;
    values.push(v);
  }
  if (polymod([...hrpExpand(lower.slice(0, pos)), ...values]) !== 1) return undefined;
  const bytes = convertBits(values.slice(0, -6), 5, 8, false);
  if (bytes === undefined) return undefined;
  return { hrp, data: Buffer.from(bytes) };
}
