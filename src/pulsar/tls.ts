// TlsOptions (types.ts) -> Node's tls.connect options.
import net from "node:net";
import type { ConnectionOptions } from "node:tls";
import type { TlsOptions } from "./types";

export function toTlsConnectOptions(o: TlsOptions | undefined, host: string): ConnectionOptions {
  const options: ConnectionOptions = {
    rejectUnauthorized: !(o?.allowInsecureConnection ?? false),
  };
  // SNI only for names, never for IP literals
  if (!net.isIP(host)) options.servername = host;
  if (o?.trustCertsPem) options.ca = o.trustCertsPem;
  if (o?.certPem) options.cert = o.certPem;
  if (o?.keyPem) options.key = o.keyPem;
  if (o?.keyPassphrase) options.passphrase = o.keyPassphrase;
  // The chain is still verified; only the name check is skipped.
  if (o?.verifyHostname === false) options.checkServerIdentity = () => undefined;
  return options;
}
