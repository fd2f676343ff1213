// The part-buffer pool an S3 storage shares between its puts: memory bounded however many puts
// overlap, buffers reused instead of left to the garbage collector.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BufferPool } from "../../src/storage/s3-multipart.ts";

describe("S3 part-buffer pool", () => {
  test("at most `size` buffers out; waiters are served in order; returned buffers are reused", async () => {
    const pool = new BufferPool(2, 1024);
    const one = await pool.acquire();
    const two = await pool.acquire();
    assert.equal(one.length, 1024);
    assert.notEqual(one, two);
    const order: string[] = [];
    const a = pool.acquire().then((b) => {
      order.push("a");
      return b;
    });
    const b = pool.acquire().then((x) => {
      order.push("b");
      return x;
    });
    await Promise.resolve();
    assert.deepEqual(order, [], "both wait while two are out");
    pool.release(one);
    assert.equal(await a, one, "the returned buffer is handed out again");
    assert.deepEqual(order, ["a"]);
    // A buffer dropped after a failed request: only its slot comes back, with a fresh buffer.
    pool.release(undefined);
    const fresh = await b;
    assert.ok(fresh !== one && fresh !== two);
    assert.deepEqual(order, ["a", "b"]);
  });

  test("an aborted wait gives up its place and takes nothing", async () => {
    const pool = new BufferPool(1, 16);
    const held = await pool.acquire();
    const controller = new AbortController();
    const waiting = pool.acquire(controller.signal);
    controller.abort(new Error("stop"));
    await assert.rejects(waiting, /stop/);
    const next = pool.acquire();
    pool.release(held);
    assert.equal(await next, held, "the slot went to the next waiter, not to the aborted one");
    await assert.rejects(pool.acquire(AbortSignal.abort(new Error("already"))), /already/);
  });
});
