// TLS for tests: the ClientHello node:tls really sends (captured in memory, no network),
// the same ClientHello cut into more TLS records, and a self-signed certificate.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { type ConnectionOptions, connect } from "node:tls";
import { ROOT } from "./cli.ts";

/** The bytes tls.connect sends first (its ClientHello records) with these options. */
export function captureClientHello(options: ConnectionOptions = {}): Promise<Buffer> {
  return new Promise((resolve) => {
    let socket: ReturnType<typeof connect> | undefined;
    const wire = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        done();
        resolve(chunk);
        setImmediate(() => socket?.destroy());
      },
    });
    socket = connect({ socket: wire, ...options });
    socket.on("error", () => {});
  });
}

/** The handshake bytes carried by a run of TLS records. */
export function handshakeOf(records: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at + 5 <= records.length; ) {
    const length = records.readUInt16BE(at + 3);
    parts.push(records.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  return Buffer.concat(parts);
}

/** The same handshake bytes in records of at most `size` bytes each (as some clients send on purpose). */
export function refragment(records: Buffer, size: number): Buffer {
  const handshake = handshakeOf(records);
  const out: Buffer[] = [];
  for (let at = 0; at < handshake.length; at += size) {
    const fragment = handshake.subarray(at, at + size);
    const header = Buffer.from([0x16, records[1] ?? 3, records[2] ?? 1, 0, 0]);
    header.writeUInt16BE(fragment.length, 3);
    out.push(header, fragment);
  }
  return Buffer.concat(out);
}

/**
 * A self-signed certificate for 127.0.0.1: made with openssl when it is installed, else
 * the one committed in test/fixtures/tls (valid for a century).
 */
export function selfSigned(): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), "tcpgate-tls-"));
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=tcpgate-test",
        "-days",
        "1",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: "ignore", timeout: 10_000 },
    );
    return { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) };
  } catch {
    const fixtures = join(ROOT, "test", "fixtures", "tls");
    return { key: readFileSync(join(fixtures, "key.pem")), cert: readFileSync(join(fixtures, "cert.pem")) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
