/**
 * Brokers for tests: the machine's Mosquitto (shared, never restarted by tests) and an embedded
 * aedes per test file on an ephemeral port of its own. Both accept sockets with TCP_NODELAY.
 */
import net from 'node:net';
import { Aedes } from 'aedes';

export const MOSQUITTO_URL = process.env.SP_TEST_MOSQUITTO_URL ?? 'mqtt://127.0.0.1:1883';

export interface TestBroker {
  url: string;
  port: number;
  aedes: Aedes;
  /** Server-side sockets, to check TCP_NODELAY on the accepting side. */
  sockets: Set<net.Socket>;
  close(): Promise<void>;
}

export async function startAedes(): Promise<TestBroker> {
  const aedes = await Aedes.createBroker();
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    aedes.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    aedes,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}
