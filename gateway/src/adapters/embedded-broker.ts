/**
 * The embedded MQTT broker (DESIGN §2: with no SP_MQTT_URL the gateway is one process with
 * nothing else to install): aedes behind a plain TCP server. The only module that imports aedes.
 *
 * Every accepted socket gets TCP_NODELAY (DESIGN §12): with Nagle's algorithm on, a QoS 1
 * publish → PUBACK round trip costs ~88 ms instead of ~0.1 ms.
 *
 * Not yet here (gateway issue): per-controller authentication and the `sp/v1/c/<own id>/…` ACL
 * (DESIGN §7) as aedes hooks. Until then this broker trusts every client, so it listens on
 * 127.0.0.1 unless told otherwise.
 */
import net from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from '@smart-passage/protocol';

/** The port is taken (EADDRINUSE) — typically another broker. main turns this into advice. */
export class PortInUseError extends Error {
  readonly code = 'port-in-use';
  readonly host: string;
  readonly port: number;
  constructor(host: string, port: number) {
    super(`${host}:${port} is already in use`);
    this.name = 'PortInUseError';
    this.host = host;
    this.port = port;
  }
}

/** Listening there is not allowed (EACCES: a port below 1024, or a policy). */
export class PortNotAllowedError extends Error {
  readonly code = 'port-not-allowed';
  readonly host: string;
  readonly port: number;
  constructor(host: string, port: number) {
    super(`not allowed to listen on ${host}:${port}`);
    this.name = 'PortNotAllowedError';
    this.host = host;
    this.port = port;
  }
}

export interface EmbeddedBrokerOptions {
  host: string;
  /** 0 = any free port; read the one chosen from `port` after start(). */
  port: number;
  logger: Logger;
}

export class EmbeddedBroker {
  readonly #o: EmbeddedBrokerOptions;
  #aedes: Aedes | undefined;
  #server: net.Server | undefined;
  readonly #sockets = new Set<net.Socket>();
  #port = 0;

  constructor(o: EmbeddedBrokerOptions) {
    this.#o = o;
  }

  /** The port it listens on (after start()). */
  get port(): number {
    return this.#port;
  }

  /** A URL clients on this machine can use (a wildcard listen address becomes loopback). */
  get url(): string {
    const h = this.#o.host === '0.0.0.0' || this.#o.host === '' ? '127.0.0.1' : this.#o.host === '::' ? '::1' : this.#o.host;
    return `mqtt://${net.isIPv6(h) ? `[${h}]` : h}:${this.#port}`;
  }

  /** Listen; rejects with PortInUseError / PortNotAllowedError when the port cannot be had. */
  async start(): Promise<void> {
    const aedes = await Aedes.createBroker();
    const log = this.#o.logger;
    aedes.on('clientError', (client, err) => log.debug('mqtt client error', { client: client.id, err: err.message }));
    aedes.on('connectionError', (_client, err) => log.debug('mqtt connection error', { err: err.message }));
    const server = net.createServer({ noDelay: true }, (socket) => {
      socket.setNoDelay(true);
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      aedes.handle(socket);
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.#o.port, this.#o.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') throw new PortInUseError(this.#o.host, this.#o.port);
      if (code === 'EACCES') throw new PortNotAllowedError(this.#o.host, this.#o.port);
      throw err;
    }
    server.on('error', (err) => log.error('mqtt listener error', { err: err.message }));
    this.#aedes = aedes;
    this.#server = server;
    this.#port = (server.address() as net.AddressInfo).port;
    log.info('embedded MQTT broker listening', { url: this.url });
  }

  /** Stop accepting, close every client, close the broker. */
  async stop(): Promise<void> {
    const server = this.#server;
    const aedes = this.#aedes;
    this.#server = undefined;
    this.#aedes = undefined;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    if (aedes) await new Promise<void>((resolve) => aedes.close(() => resolve()));
    // aedes closes its clients; anything still half-open would keep server.close() waiting.
    for (const s of this.#sockets) s.destroy();
    await closed;
    this.#o.logger.info('embedded MQTT broker stopped');
  }
}
