// The load generator of the front-of-house test: `concurrency` loops, for `seconds`, each
// opening a connection, writing a prefix (a PROXY v2 header, or nothing) and a real TLS
// ClientHello (captured from node:tls, with a server name), waiting for the echo of its
// first byte, and closing. Prints one JSON line: connections completed, errors, seconds.
// Plain JavaScript with no loader, so it costs the machine as little as it can.
// Usage: node bench/front-load.mjs <port> <seconds> <concurrency> <none|proxy-v2> <servername>
import net from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";

const [port, seconds, concurrency] = process.argv.slice(2, 5).map(Number);
const prefixKind = process.argv[5];
const servername = process.argv[6];

/** The bytes tls.connect writes first: its ClientHello. */
function clientHello() {
  return new Promise((resolve) => {
    let socket;
    const wire = new Duplex({
      read() {},
      write(chunk, _encoding, done) {
        done();
        resolve(chunk);
        setImmediate(() => socket.destroy());
      },
    });
    socket = tls.connect({ socket: wire, servername });
    socket.on("error", () => {});
  });
}

function proxyV2() {
  const header = Buffer.alloc(28);
  Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]).copy(header);
  header[12] = 0x21;
  header[13] = 0x11;
  header.writeUInt16BE(12, 14);
  header.set([192, 0, 2, 7, 198, 51, 100, 1], 16);
  header.writeUInt16BE(5555, 24);
  header.writeUInt16BE(443, 26);
  return header;
}

const hello = await clientHello();
const payload = prefixKind === "proxy-v2" ? Buffer.concat([proxyV2(), hello]) : hello;
const deadline = Date.now() + seconds * 1000;
let connections = 0;
let errors = 0;

function once() {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1", noDelay: true });
    const timer = setTimeout(() => done(false), 5000);
    let finished = false;
    function done(ok) {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      if (ok) connections++;
      else errors++;
      resolve();
    }
    socket.once("connect", () => socket.write(payload));
    socket.once("data", () => done(true));
    socket.once("error", () => done(false));
    socket.once("close", () => done(false));
  });
}

async function loop() {
  while (Date.now() < deadline) await once();
}

await Promise.all(Array.from({ length: concurrency }, loop));
process.stdout.write(`${JSON.stringify({ connections, errors, seconds })}\n`);
