// The dataset's values: a seeded PRNG (xoshiro128**) with one stream per table, and generators of
// words, names, dates and money whose text needs no escaping.
import { createHash } from "node:crypto";

// ---------------------------------------------------------------------------------------------------------
// Seeded PRNG: xoshiro128**, state from SHA-256 of the seed, so any string or number is a good seed.

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: string) {
    const h = createHash("sha256").update(seed).digest();
    this.a = h.readUInt32LE(0);
    this.b = h.readUInt32LE(4);
    this.c = h.readUInt32LE(8);
    this.d = h.readUInt32LE(12) | 1; // never the all-zero state
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** In [0, 1). */
  float(): number {
    return this.next() / 4294967296;
  }

  /** In [lo, hi], both inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.float() * items.length)]!;
  }

  bytes(n: number): Buffer {
    const buf = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) buf.writeUInt32LE(this.next(), i);
    if (i < n) {
      const last = this.next();
      for (let k = 0; i < n; i++, k++) buf[i] = (last >>> (8 * k)) & 0xff;
    }
    return buf;
  }
}

export function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export function streamFor(seed: string | number, name: string): Rng {
  return new Rng(`strongbox-dataset/v1/${String(seed)}/${name}`);
}

// ---------------------------------------------------------------------------------------------------------
// Value generators. Generated text holds only [A-Za-z0-9 .,:/@_-] so nothing needs escaping.

export const WORDS = (
  "able about account across action active address after again agent alpha amber angle answer april " +
  "area arrow audit autumn backup balance basket battery beach before berry better beyond black blue " +
  "border bottle branch bread bridge bright broken brown budget build butter cable camera canvas carbon " +
  "cargo carpet castle center chain chapter charge cherry circle citizen cluster coffee column comet " +
  "copper corner cotton credit crystal custom daily danger delta desert design detail digital dinner " +
  "doctor double dragon driver eager early eastern echo editor effort eleven empire energy engine " +
  "escape evening export fabric factor falcon family fancy feather figure filter final flower forest " +
  "fossil frame future galaxy garden gentle glass golden gravity green harbor harvest heavy hidden " +
  "honest hotel hunter island jacket jungle kernel kettle ladder lemon letter linear liquid lucky " +
  "magnet marble market meadow medium memory metal middle mirror modern moment motion mountain native " +
  "nectar network number object ocean office orange orbit paper parcel pencil pepper planet pocket " +
  "portal prairie pretty prism public purple puzzle quartz quick rabbit radar random rapid record " +
  "relay remote report ribbon river rocket saddle salmon sample season secret signal silver simple " +
  "socket solar spirit spring square stable steady stone storm summer sunset system table temple " +
  "thunder ticket timber token tower travel tunnel union unit valley vector velvet violet vision " +
  "volume wagon walnut water window winter wonder yellow zebra zenith"
).split(" ");

export const FIRST_NAMES =
  "Ada Alan Anna Bela Carl Dana Eli Emma Finn Grace Hana Ivan Jana Karl Lena Liam Mara Nina Omar Paul Rosa Sara Tom Uma Vera Yuki Zoe".split(
    " ",
  );
export const LAST_NAMES =
  "Abbott Bauer Costa Dvorak Evans Fischer Garcia Horvat Ito Jensen Kowalski Larsen Moreau Novak Olsen Petrov Quinn Rossi Schmidt Tanaka Urban Varga Weber Young Zimmer".split(
    " ",
  );
export const COUNTRIES = "AT BE BR CA CH CZ DE DK ES FI FR GB HU IE IN IT JP NL NO PL PT SE US".split(" ");
export const CITIES =
  "Aurora Bayside Cedar Dover Elmwood Fairview Glenwood Harbor Ivy Juniper Kingston Lakeside".split(" ");
export const DEPARTMENTS =
  "Engineering Sales Marketing Finance Legal Support Operations Research Design Security Logistics Purchasing".split(
    " ",
  );
export const CATEGORIES = "books garden kitchen toys tools sports music office health outdoor".split(" ");
export const STATUSES = ["new", "paid", "packed", "shipped", "delivered", "returned", "cancelled"] as const;
export const SOURCES = "api web worker scheduler billing auth search mailer".split(" ");
export const HTTP_PATHS = "cart checkout login search orders account products help".split(" ");

/** Deterministic prose to cut text fields from: realistic, compressible, cheap to slice. */
export function makeCorpus(rng: Rng, chars: number): string {
  const parts: string[] = [];
  let len = 0;
  while (len < chars) {
    const n = rng.int(6, 16);
    const words: string[] = [];
    for (let i = 0; i < n; i++) words.push(rng.pick(WORDS));
    const w0 = words[0]!;
    words[0] = w0.charAt(0).toUpperCase() + w0.slice(1);
    const s = `${words.join(" ")}${rng.float() < 0.2 ? "," : "."} `;
    parts.push(s);
    len += s.length;
  }
  return parts.join("");
}

export class TextSource {
  private readonly corpus: string;
  constructor(corpus: string) {
    this.corpus = corpus;
  }
  /** A slice of between min and max characters. */
  text(rng: Rng, min: number, max: number): string {
    const n = rng.int(min, max);
    const at = rng.int(0, this.corpus.length - n - 1);
    return this.corpus.slice(at, at + n).trim();
  }
}

export function sqlDatetime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

export function sqlDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export function money(cents: number): string {
  return (cents / 100).toFixed(2);
}

export function hex(buf: Buffer): string {
  return buf.length === 0 ? "''" : `0x${buf.toString("hex")}`;
}
