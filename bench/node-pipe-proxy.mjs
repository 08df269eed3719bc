// The floor: the most naive Node.js TCP proxy there is. One net.Server per listen port,
// one net.connect per client, pipe() both ways, destroy both on an error. Nothing else:
// no admission, no timeouts, no logs. Plain JavaScript with no loader, like a user's own.
// Usage: node bench/node-pipe-proxy.mjs <listen-port>:<target-port> ...   (127.0.0.1 only)
import net from "node:net";

for (const pair of process.argv.slice(2)) {
  const [listenPort, targetPort] = pair.split(":").map(Number);
  net
    .createServer((client) => {
      const target = net.connect(targetPort, "127.0.0.1");
      client.pipe(target).pipe(client);
      const destroyBoth = () => {
        client.destroy();
        target.destroy();
      };
      client.on("error", destroyBoth);
      target.on("error", destroyBoth);
    })
    .listen(listenPort, "127.0.0.1");
}
process.on("SIGTERM", () => process.exit(0));
