// A free TCP port on the loopback interface, for servers this process starts (private Redis, test servers).
import { once } from 'node:events';
import { createServer } from 'node:net';

/** Asks the kernel for a free port on 127.0.0.1 and releases it; the caller binds it next (a retry covers a race). */
export async function freePort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
