// Preloaded with `node --import`: names under .kvault.localhost resolve to 127.0.0.1 (glibc
// does not map subdomains of localhost). This changes the environment, not the SDK: TLS and the
// challenge's resource check still see the real vault host name.
import dns from "node:dns";

const realLookup = dns.lookup;
const DOMAIN = "kvault.localhost";

dns.lookup = function lookup(hostname, options, callback) {
  const host = String(hostname).replace(/\.$/, "").toLowerCase();
  if (host === DOMAIN || host.endsWith("." + DOMAIN)) {
    return realLookup.call(this, "127.0.0.1", options, callback);
  }
  return realLookup.call(this, hostname, options, callback);
};
