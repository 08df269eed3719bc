// The ClientHello stage on a real loopback connection: it finds the server name and puts
// every byte it read back into the socket, in order, for the target to receive unchanged.
import assert from "node:assert/strict";
import { test } from "node:test";
import { peekClientHello } from "../../src/proxy/stages/client-hello.ts";
import { loopbackPair, readAll } from "../support/net.ts";
import { captureClientHello, refragment } from "../support/tls.ts";

test("the server name, and every byte read given back: ClientHello in records and pieces, then more", async (t) => {
  const pair = await loopbackPair();
  t.after(() => pair.close());
  const hello = refragment(await captureClientHello({ servername: "db.example.com" }), 64);
  const bytes = Buffer.concat([hello, Buffer.from("after the hello")]);
  const peeking = peekClientHello(pair.accepted, 2000);
  for (let i = 0; i < bytes.length; i += 50) {
    await new Promise((resolve) => pair.client.write(bytes.subarray(i, i + 50), resolve));
  }
  pair.client.end();
  assert.deepEqual(await peeking, { ok: true, serverName: "db.example.com" });
  assert.deepEqual(await readAll(pair.accepted), bytes);
});

test("not TLS, no ClientHello in time, or an abort: no server name", async (t) => {
  const plain = await loopbackPair();
  const slow = await loopbackPair();
  const aborted = await loopbackPair();
  t.after(() => {
    plain.close();
    slow.close();
    aborted.close();
  });
  plain.client.write("GET / HTTP/1.1\r\n");
  assert.deepEqual(await peekClientHello(plain.accepted, 2000), { ok: false, detail: "not a TLS handshake" });
  slow.client.write(Buffer.from([0x16, 3, 1]));
  assert.deepEqual(await peekClientHello(slow.accepted, 100), { ok: false, detail: "no ClientHello within 100 ms" });
  const abort = new AbortController();
  const peeking = peekClientHello(aborted.accepted, 2000, abort.signal);
  abort.abort();
  assert.equal((await peeking).ok, false);
});
