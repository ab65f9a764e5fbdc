// Starts the fauxqs SQS emulator on the loopback interface only, for tests.
//
// fauxqs's own command (and its startFauxqs) always listens on 0.0.0.0, which
// would open an unauthenticated queue server to the network, so this builds
// the same application with fauxqs's exported buildApp and listens on
// 127.0.0.1 itself.
//
// Environment:
//   FAUXQS_MODULE  file of fauxqs's entry module (dist/app.js); default: the
//                  package "fauxqs" as resolved from this file
//   FAUXQS_PORT    port to listen on; default 0, any free port
//   FAUXQS_LOGGER  "true" logs every request (fastify/pino) to stderr
//
// Once listening it prints one line, "fauxqs listening on http://127.0.0.1:PORT",
// to stdout. It stops on SIGTERM or SIGINT, and when its standard input
// reaches end of file, so a test that dies without cleaning up (its end of
// the pipe closes) does not leave the server behind.
import { pathToFileURL } from "node:url";

const spec = process.env.FAUXQS_MODULE
  ? pathToFileURL(process.env.FAUXQS_MODULE).href
  : "fauxqs";
const { buildApp } = await import(spec);

const port = Number.parseInt(process.env.FAUXQS_PORT ?? "0", 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`fauxqs-loopback: FAUXQS_PORT=${process.env.FAUXQS_PORT} is not a port`);
  process.exit(2);
}

const app = buildApp({ logger: process.env.FAUXQS_LOGGER === "true" });
const address = await app.listen({ port, host: "127.0.0.1" });
console.log(`fauxqs listening on ${address}`);

let closing = false;
async function stop(why) {
  if (closing) return;
  closing = true;
  try {
    await app.close();
  } catch (err) {
    console.error(`fauxqs-loopback: close after ${why}: ${err}`);
    process.exit(1);
  }
  process.exit(0);
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
process.stdin.on("end", () => stop("end of stdin"));
process.stdin.on("error", () => stop("stdin error"));
process.stdin.resume();
