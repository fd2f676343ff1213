import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import { StrongboxError } from "../../src/errors.ts";
import type {
  GetOptions,
  ObjectInfo,
  PutOptions,
  Storage,
  StorageCapabilities,
} from "../../src/storage/types.ts";
import { backoffDelay, type RetryEvent, type WrapOptions, wrapStorage } from "../../src/storage/wrap.ts";
import { readAll } from "./conformance.ts";

interface Fault {
  operation: string;
  times: number;
  /** For put: read this many chunks of the source before failing. */
  afterChunks?: number;
  /** For list: yield this many objects before failing. */
  afterItems?: number;
  error: () => unknown;
}

const unavailable = () => new StrongboxError("STORAGE_UNAVAILABLE", "connection dropped");

/** In-memory backend with injectable faults: enough to exercise the wrapper. */
class FaultyStorage implements Storage {
  readonly description = "memory:faulty";
  readonly capabilities: StorageCapabilities;
  readonly objects = new Map<string, Buffer>();
  readonly calls: string[] = [];
  private readonly faults: Fault[] = [];

  constructor(capabilities: Partial<StorageCapabilities> = {}) {
    this.capabilities = { atomicRename: false, appendOnly: false, conditionalCreate: true, ...capabilities };
  }

  fail(fault: Fault): this {
    this.faults.push(fault);
    return this;
  }

  private takeFault(operation: string): Fault | undefined {
    const fault = this.faults.find((f) => f.operation === operation && f.times > 0);
    if (fault) fault.times--;
    return fault;
  }

  async put(key: string, data: Readable | Uint8Array, options: PutOptions = {}): Promise<{ size: number }> {
    this.calls.push(`put ${key}`);
    const fault = this.takeFault("put");
    if (fault && !fault.afterChunks) throw fault.error();
    let bytes: Buffer;
    if (data instanceof Uint8Array) {
      bytes = Buffer.from(data);
      if (fault) throw fault.error();
    } else {
      const chunks: Buffer[] = [];
      for await (const chunk of data) {
        chunks.push(chunk as Buffer);
        if (fault && chunks.length >= (fault.afterChunks ?? 0)) throw fault.error();
      }
      bytes = Buffer.concat(chunks);
    }
    if (options.ifAbsent && this.objects.has(key)) {
      throw new StrongboxError("STORAGE_EXISTS", `${key} exists`);
    }
    this.objects.set(key, bytes);
    return { size: bytes.length };
  }

  async get(key: string, _options?: GetOptions): Promise<Readable> {
    this.calls.push(`get ${key}`);
    const fault = this.takeFault("get");
    if (fault) throw fault.error();
    const data = this.objects.get(key);
    if (!data) throw new StrongboxError("STORAGE_NOT_FOUND", `${key} not found`);
    return Readable.from([data]);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    this.calls.push(`stat ${key}`);
    const fault = this.takeFault("stat");
    if (fault) throw fault.error();
    const data = this.objects.get(key);
    return data ? { key, size: data.length, modified: new Date() } : undefined;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    this.calls.push(`list ${prefix}`);
    const fault = this.takeFault("list");
    let yielded = 0;
    for (const [key, data] of [...this.objects].sort()) {
      if (fault && yielded >= (fault.afterItems ?? 0)) throw fault.error();
      if (!key.startsWith(prefix)) continue;
      yield { key, size: data.length, modified: new Date() };
      yielded++;
    }
    if (fault) throw fault.error();
  }

  async delete(key: string): Promise<void> {
    this.calls.push(`delete ${key}`);
    const fault = this.takeFault("delete");
    if (fault) throw fault.error();
    this.objects.delete(key);
  }

  async close(): Promise<void> {}
}

/** A wrapper whose sleeps are recorded instead of waited. */
function wrapped(inner: Storage, options: WrapOptions = {}) {
  const sleeps: number[] = [];
  const retries: RetryEvent[] = [];
  const storage = wrapStorage(inner, {
    retry: { attempts: 4, baseDelayMs: 100, maxDelayMs: 1000 },
    random: () => 0.5,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    onRetry: (event) => retries.push(event),
    ...options,
  });
  return { storage, sleeps, retries };
}

function chunks(...parts: string[]): Readable {
  return Readable.from(parts.map((p) => Buffer.from(p)));
}

describe("storage core: retries", () => {
  test("backoff doubles, is jittered between half and all of it, and is capped", () => {
    assert.equal(
      backoffDelay(1, 100, 1000, () => 0),
      50,
    );
    assert.equal(
      backoffDelay(1, 100, 1000, () => 1),
      100,
    );
    assert.equal(
      backoffDelay(2, 100, 1000, () => 0),
      100,
    );
    assert.equal(
      backoffDelay(3, 100, 1000, () => 1),
      400,
    );
    assert.equal(
      backoffDelay(10, 100, 1000, () => 1),
      1000,
    );
    assert.equal(
      backoffDelay(10, 100, 1000, () => 0),
      500,
    );
  });

  test("transient failures are retried with growing delays", async () => {
    const inner = new FaultyStorage().fail({ operation: "get", times: 2, error: unavailable });
    inner.objects.set("k", Buffer.from("v"));
    const { storage, sleeps, retries } = wrapped(inner);
    assert.equal((await readAll(await storage.get("k"))).toString(), "v");
    assert.deepEqual(inner.calls, ["get k", "get k", "get k"]);
    assert.deepEqual(sleeps, [75, 150]);
    assert.deepEqual(
      retries.map((r) => [r.operation, r.key, r.attempt, r.delayMs]),
      [
        ["get", "k", 1, 75],
        ["get", "k", 2, 150],
      ],
    );
  });

  test("gives up after the configured attempts and says so", async () => {
    const inner = new FaultyStorage().fail({ operation: "stat", times: 99, error: unavailable });
    const { storage, sleeps } = wrapped(inner, { retry: { attempts: 3, baseDelayMs: 10 } });
    await assert.rejects(storage.stat("k"), (error: StrongboxError) => {
      assert.equal(error.code, "STORAGE_UNAVAILABLE");
      assert.match(error.message, /connection dropped; gave up after 3 attempts/);
      return true;
    });
    assert.equal(inner.calls.length, 3);
    assert.equal(sleeps.length, 2);
  });

  test("attempts: 1 turns retries off", async () => {
    const inner = new FaultyStorage().fail({ operation: "delete", times: 1, error: unavailable });
    const { storage } = wrapped(inner, { retry: { attempts: 1 } });
    await assert.rejects(storage.delete("k"), { code: "STORAGE_UNAVAILABLE", message: "connection dropped" });
    assert.equal(inner.calls.length, 1);
  });

  test("permanent errors are not retried", async () => {
    const inner = new FaultyStorage().fail({
      operation: "delete",
      times: 1,
      error: () => new StrongboxError("STORAGE_PERMISSION", "denied"),
    });
    const { storage, sleeps } = wrapped(inner);
    await assert.rejects(storage.delete("k"), { code: "STORAGE_PERMISSION" });
    await assert.rejects(storage.get("missing"), { code: "STORAGE_NOT_FOUND" });
    assert.deepEqual(inner.calls, ["delete k", "get missing"]);
    assert.deepEqual(sleeps, []);
  });

  test("unmapped network errors (ECONNRESET) count as transient", async () => {
    const inner = new FaultyStorage().fail({
      operation: "stat",
      times: 1,
      error: () => Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }),
    });
    const { storage } = wrapped(inner);
    assert.equal(await storage.stat("k"), undefined);
    assert.equal(inner.calls.length, 2);
  });

  test("a buffer put is retried and stored whole", async () => {
    const inner = new FaultyStorage().fail({
      operation: "put",
      times: 2,
      afterChunks: 1,
      error: unavailable,
    });
    const { storage } = wrapped(inner);
    assert.deepEqual(await storage.put("p", Buffer.from("payload")), { size: 7 });
    assert.equal(inner.objects.get("p")?.toString(), "payload");
    assert.equal(inner.calls.length, 3);
  });

  test("a restartable source is reopened for every attempt", async () => {
    const inner = new FaultyStorage().fail({
      operation: "put",
      times: 1,
      afterChunks: 1,
      error: unavailable,
    });
    const { storage } = wrapped(inner);
    const opened: Readable[] = [];
    const result = await storage.put("p", () => {
      const stream = chunks("one ", "two ", "three");
      opened.push(stream);
      return stream;
    });
    assert.equal(result.size, 13);
    assert.equal(inner.objects.get("p")?.toString(), "one two three");
    assert.equal(opened.length, 2);
    assert.ok(opened[0]!.destroyed, "the first attempt's stream is closed");
  });

  test("a partly consumed stream cannot be retried, and the error says so", async () => {
    const inner = new FaultyStorage().fail({
      operation: "put",
      times: 1,
      afterChunks: 1,
      error: unavailable,
    });
    const { storage, sleeps } = wrapped(inner);
    await assert.rejects(storage.put("p", chunks("one ", "two")), (error: StrongboxError) => {
      assert.equal(error.code, "STORAGE_UNAVAILABLE");
      assert.match(error.message, /not retried: the source stream was already read from/);
      assert.match(error.hint ?? "", /function that reopens the source/);
      return true;
    });
    assert.equal(inner.calls.length, 1);
    assert.deepEqual(sleeps, []);
    assert.equal(inner.objects.size, 0);
  });

  test("an untouched stream is retried when the backend failed before reading it", async () => {
    const inner = new FaultyStorage().fail({ operation: "put", times: 1, error: unavailable });
    const { storage } = wrapped(inner);
    assert.deepEqual(await storage.put("p", chunks("a", "b")), { size: 2 });
    assert.equal(inner.calls.length, 2);
  });

  test("a listing is retried only if it failed before returning anything", async () => {
    const inner = new FaultyStorage().fail({
      operation: "list",
      times: 1,
      afterItems: 0,
      error: unavailable,
    });
    for (const key of ["a", "b", "c"]) inner.objects.set(key, Buffer.from(key));
    const { storage } = wrapped(inner);
    const keys: string[] = [];
    for await (const info of storage.list("")) keys.push(info.key);
    assert.deepEqual(keys, ["a", "b", "c"]);

    inner.fail({ operation: "list", times: 1, afterItems: 2, error: unavailable });
    const partial: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const info of storage.list("")) partial.push(info.key);
      })(),
      /not retried: the listing had already returned objects/,
    );
    assert.deepEqual(partial, ["a", "b"]);
  });

  test("abort during a backoff wait stops at once", async () => {
    const inner = new FaultyStorage().fail({ operation: "stat", times: 99, error: unavailable });
    const storage = wrapStorage(inner, { retry: { attempts: 10, baseDelayMs: 60_000 } });
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 30);
    await assert.rejects(storage.stat("k", { signal: controller.signal }), { name: "AbortError" });
    assert.ok(Date.now() - started < 5000);
    assert.equal(inner.calls.length, 1);
  });

  test("keys and ranges are validated before the backend is called", async () => {
    const inner = new FaultyStorage();
    const { storage } = wrapped(inner);
    await assert.rejects(storage.put("../escape", Buffer.from("x")), { code: "STORAGE_BAD_KEY" });
    await assert.rejects(storage.get("a//b"), { code: "STORAGE_BAD_KEY" });
    await assert.rejects(storage.stat("/etc/passwd"), { code: "STORAGE_BAD_KEY" });
    await assert.rejects(storage.delete("a\0b"), { code: "STORAGE_BAD_KEY" });
    await assert.rejects(storage.list("../")[Symbol.asyncIterator]().next(), { code: "STORAGE_BAD_KEY" });
    await assert.rejects(storage.get("ok", { start: 3, end: 1 }), { code: "STORAGE_BAD_RANGE" });
    assert.deepEqual(inner.calls, []);
  });
});

describe("storage core: append-only", () => {
  test("deletes are refused without reaching the backend", async () => {
    const inner = new FaultyStorage();
    inner.objects.set("backups/b1/part-1", Buffer.from("x"));
    const { storage } = wrapped(inner, { appendOnly: true });
    assert.equal(storage.capabilities.appendOnly, true);
    await assert.rejects(storage.delete("backups/b1/part-1"), (error: StrongboxError) => {
      assert.equal(error.code, "STORAGE_APPEND_ONLY");
      assert.match(error.message, /refusing to delete backups\/b1\/part-1: memory:faulty is append-only/);
      return true;
    });
    assert.deepEqual(inner.calls, []);
    assert.ok(inner.objects.has("backups/b1/part-1"));
  });

  test("overwrites are refused, new objects are written", async () => {
    const inner = new FaultyStorage();
    const { storage } = wrapped(inner, { appendOnly: true });
    await storage.put("backups/b1/manifest.json", Buffer.from("v1"));
    await assert.rejects(storage.put("backups/b1/manifest.json", Buffer.from("v2")), {
      code: "STORAGE_APPEND_ONLY",
    });
    assert.equal(inner.objects.get("backups/b1/manifest.json")?.toString(), "v1");
    // A caller that asked for ifAbsent gets the ordinary answer.
    await assert.rejects(storage.put("backups/b1/manifest.json", Buffer.from("v3"), { ifAbsent: true }), {
      code: "STORAGE_EXISTS",
    });
  });

  test("overwrites are refused also on a backend without conditional create", async () => {
    const inner = new FaultyStorage({ conditionalCreate: false });
    const { storage } = wrapped(inner, { appendOnly: true });
    await storage.put("a", Buffer.from("1"));
    await assert.rejects(storage.put("a", Buffer.from("2")), { code: "STORAGE_APPEND_ONLY" });
    assert.equal(inner.objects.get("a")?.toString(), "1");
  });

  test("mutable prefixes (the lock) stay deletable and overwritable", async () => {
    const inner = new FaultyStorage();
    const { storage } = wrapped(inner, { appendOnly: true, mutablePrefixes: ["locks/"] });
    await storage.put("locks/writer.json", Buffer.from("1"));
    await storage.put("locks/writer.json", Buffer.from("2"));
    await storage.delete("locks/writer.json");
    assert.equal(inner.objects.size, 0);
    await assert.rejects(storage.delete("lockstep"), { code: "STORAGE_APPEND_ONLY" });
  });

  test("an append-only backend's own flag is kept", () => {
    const { storage } = wrapped(new FaultyStorage({ appendOnly: true }));
    assert.equal(storage.capabilities.appendOnly, true);
    assert.equal(wrapped(new FaultyStorage()).storage.capabilities.appendOnly, false);
  });
});
