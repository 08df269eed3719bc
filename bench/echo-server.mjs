// The echo backend for the idle-bridge, admission and reload tests: every byte back to
// its sender. Plain JavaScript with no loader, so it stays lean under 10,000 connections.
// Usage: node bench/echo-server.mjs <port>   (binds 127.0.0.1 only)
import net from "node:net";

const port = Number(process.argv[2]);
const server = net.createServer((socket) => {
  socket.on("error", () => socket.destroy());
  socket.pipe(socket);
});
server.maxConnections = 50_000;
server.listen({ port, host: "127.0.0.1", backlog: 4096 }, () => console.log(`echo listening on 127.0.0.1:${port}`));
process.on("SIGTERM", () => process.exit(0));
