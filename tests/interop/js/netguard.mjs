// Preloaded with `node --import ./netguard.mjs` by tests/interop/test_workload_identity.py.
// Changes the environment, not the SDK:
// - dns.lookup (callback and promise forms) maps kvault.localhost and its sub-domains to
//   127.0.0.1 (as resolve.mjs does), lets `localhost` and loopback literals through, and REFUSES
//   (ENOTFOUND) every other name; the dns.resolve* family (DNS queries) is refused outright;
// - net.Socket.prototype.connect (which tls.connect, https and undici all end in) refuses a TCP
//   connection to a non-loopback address or a non-local name (local names are then resolved by
//   the lookup above, which maps them to loopback);
// - every lookup and connect is recorded and printed to stderr at exit as one line
//   `NETGUARD {"lookups": [...], "connects": [...], "refused": [...]}`.
import dns from "node:dns";
import net from "node:net";

const DOMAIN = "kvault.localhost";
const lookups = [];
const connects = [];
const refused = [];

const name = (h) => String(h).replace(/\.$/, "").toLowerCase();

function isLoopbackIp(h) {
  const family = net.isIP(h);
  if (family === 4) return h.startsWith("127.");
  if (family === 6) return h === "::1" || h === "0:0:0:0:0:0:0:1" || h.startsWith("::ffff:127.");
  return false;
}

function localTarget(hostname) {
  const h = name(hostname);
  if (h === DOMAIN || h.endsWith("." + DOMAIN)) return "127.0.0.1";
  if (h === "localhost" || isLoopbackIp(h)) return h;
  return null;
}

function refusal(hostname) {
  const err = new Error(`netguard: refused to resolve non-local name ${hostname}`);
  err.code = "ENOTFOUND";
  err.hostname = hostname;
  return err;
}

const realLookup = dns.lookup;
dns.lookup = function lookup(hostname, options, callback) {
  if (typeof options === "function") {
    callback = options;
    options = {};
  }
  lookups.push(name(hostname));
  const target = localTarget(hostname);
  if (target === null) {
    refused.push(`lookup ${name(hostname)}`);
    process.nextTick(callback, refusal(hostname));
    return {};
  }
  return realLookup.call(this, target, options, callback);
};

const realPromiseLookup = dns.promises.lookup;
dns.promises.lookup = async function lookup(hostname, options) {
  lookups.push(name(hostname));
  const target = localTarget(hostname);
  if (target === null) {
    refused.push(`lookup ${name(hostname)}`);
    throw refusal(hostname);
  }
  return realPromiseLookup.call(this, target, options);
};

for (const fn of ["resolve", "resolve4", "resolve6", "resolveAny", "resolveCname", "resolveSrv", "resolveTxt"]) {
  const real = dns[fn];
  if (typeof real !== "function") continue;
  dns[fn] = function refusedResolve(hostname, ...rest) {
    lookups.push(name(hostname));
    refused.push(`${fn} ${name(hostname)}`);
    const callback = rest.find((a) => typeof a === "function");
    if (callback) process.nextTick(callback, refusal(hostname));
  };
}

const realConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function connect(...args) {
  let opts = args[0];
  if (Array.isArray(opts)) opts = opts[0]; // normalized [options, cb] form
  let host;
  let port;
  let path;
  if (opts !== null && typeof opts === "object") {
    host = opts.host;
    port = opts.port;
    path = opts.path;
  } else if (typeof opts === "string" && !/^\d+$/.test(opts)) {
    path = opts;
  } else {
    port = opts;
    host = typeof args[1] === "string" ? args[1] : undefined;
  }
  if (path != null) {
    connects.push(`unix ${path}`);
    return realConnect.apply(this, args);
  }
  const h = name(host ?? "localhost");
  connects.push(`${h}:${port}`);
  if (net.isIP(h) ? !isLoopbackIp(h) : localTarget(h) === null) {
    refused.push(`connect ${h}:${port}`);
    const err = new Error(`netguard: refused connection to non-loopback address ${h}:${port}`);
    err.code = "ECONNREFUSED";
    process.nextTick(() => this.destroy(err));
    return this;
  }
  return realConnect.apply(this, args);
};

process.on("exit", () => {
  process.stderr.write(`NETGUARD ${JSON.stringify({ lookups, connects, refused })}\n`);
});
