// HOST:PORT values of the config (metrics_address, status_address). The schema's pattern has
// already checked the shape; this only splits it.

export interface HostPort {
  /** An IP address or host name; IPv6 without its brackets. */
  host: string;
  /** 0 picks any free port. */
  port: number;
}

export function parseHostPort(text: string): HostPort {
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(text.slice(colon + 1)) };
}

/** `127.0.0.1:9464`, `[::1]:9464`: the form a URL needs. */
export function formatHostPort(hp: HostPort): string {
  return `${hp.host.includes(':') ? `[${hp.host}]` : hp.host}:${hp.port}`;
}
