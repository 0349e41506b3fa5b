/**
 * The embedded MQTT broker (DESIGN §2: with no SP_MQTT_URL the gateway is one process with
 * nothing else to install): aedes behind a plain TCP server. The only module that imports aedes.
 *
 * Every accepted socket gets TCP_NODELAY (DESIGN §12): with Nagle's algorithm on, a QoS 1
 * publish → PUBACK round trip costs ~88 ms instead of ~0.1 ms.
 *
 * Authentication and the topic ACL (DESIGN §7, PROTOCOL §3.2) come in as optional hooks
 * (features/controllers/broker-auth.ts makes them); without them this broker trusts every client,
 * so it listens on 127.0.0.1 unless told otherwise. The hooks see plain shapes, not aedes types,
 * so this stays the only module that knows aedes.
 */
import type { EventEmitter } from 'node:events';
import net from 'node:net';
import { Readable } from 'node:stream';
import { Aedes, type AedesOptions, type Client } from 'aedes';
import type { Logger } from '@smart-passage/protocol';

/** What indexRetained touches of aedes-persistence's memory store (a CallBackPersistence). */
interface RetainedPacket {
  topic: string;
  payload: Buffer;
}
interface RetainedStore {
  storeRetained(packet: RetainedPacket, cb?: (err: Error | null) => void): unknown;
  createRetainedStreamCombi(patterns: string[]): Readable;
}

/**
 * aedes-persistence's memory store finds the retained messages for a SUBSCRIBE by testing every
 * retained topic against each filter. Every controller leaves a retained birth, and subscribes to
 * its own `sync` and `cmd` topics when it connects: with 10,000 controllers that was 10,000 tests
 * per connect, and connecting them took ~100 s here (issue 7; ~10 s on Mosquitto). A filter
 * without wildcards can only match its own topic, so a SUBSCRIBE made of such filters is answered
 * from an index by topic; one with `+` or `#` still goes to the store. The index keeps its own
 * shallow copy of each packet, as the store does (the payload Buffer is shared).
 */
function indexRetained(store: RetainedStore): void {
  const byTopic = new Map<string, RetainedPacket>();
  const storeRetained = store.storeRetained.bind(store);
  const combi = store.createRetainedStreamCombi.bind(store);
  store.storeRetained = (packet, cb) => {
    if (packet.payload.length === 0) byTopic.delete(packet.topic);
    else byTopic.set(packet.topic, { ...packet });
    return storeRetained(packet, cb);
  };
  store.createRetainedStreamCombi = (patterns) => {
    if (patterns.some((p) => p.includes('+') || p.includes('#'))) return combi(patterns);
    return Readable.from(patterns.flatMap((topic) => byTopic.get(topic) ?? []));
  };
}

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

/** A connection as the hooks see it: the same object on every call for one connection. */
export interface BrokerClient {
  /** The MQTT client id. */
  readonly id: string;
}

/** What a hook is asked to allow: a PUBLISH, or a will about to be published. */
export interface BrokerPublish {
  topic: string;
  qos: number;
  retain: boolean;
}

/** The answer to a CONNECT; anything but `ok` is sent as the CONNACK return code it names. */
export type ConnectVerdict = 'ok' | 'identifier-rejected' | 'unavailable' | 'bad-credentials' | 'not-authorized';

// MQTT 3.1.1 §3.2.2.3 CONNACK return codes.
const CONNACK_CODE: Readonly<Record<Exclude<ConnectVerdict, 'ok'>, 2 | 3 | 4 | 5>> = {
  'identifier-rejected': 2,
  unavailable: 3,
  'bad-credentials': 4,
  'not-authorized': 5,
};

export interface EmbeddedBrokerOptions {
  host: string;
  /** 0 = any free port; read the one chosen from `port` after start(). */
  port: number;
  logger: Logger;
  /** Decide a CONNECT (with the will it asks for, if any). Absent: every client is let in. */
  authenticate?: (client: BrokerClient, username: string | undefined, password: Buffer | undefined, will: BrokerPublish | undefined) => Promise<ConnectVerdict>;
  /**
   * Allow a PUBLISH (or a will at the moment it fires; `client` is null for a will whose client is
   * gone). A refusal closes the connection: MQTT 3.1.1 has no negative PUBACK [MQTT-3.3.5-2].
   * `$SYS/` stays refused either way.
   */
  authorizePublish?: (client: BrokerClient | null, packet: BrokerPublish) => boolean;
  /** Allow a SUBSCRIBE filter; a refusal answers that filter with 0x80 and keeps the connection. */
  authorizeSubscribe?: (client: BrokerClient, subscription: { topic: string; qos: number }) => boolean;
}

export class EmbeddedBroker {
  readonly #o: EmbeddedBrokerOptions;
  #aedes: Aedes | undefined;
  #server: net.Server | undefined;
  readonly #sockets = new Set<net.Socket>();
  /** Connected clients by client id, so a removed controller can be cut off. */
  readonly #clients = new Map<string, Client>();
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
    const aedes = await Aedes.createBroker(this.#hooks());
    indexRetained((aedes as unknown as { persistence: RetainedStore }).persistence);
    const log = this.#o.logger;
    aedes.on('clientReady', (client) => this.#clients.set(client.id, client));
    aedes.on('clientDisconnect', (client) => {
      if (this.#clients.get(client.id) === client) this.#clients.delete(client.id);
    });
    aedes.on('clientError', (client, err) => log.debug('mqtt client error', { client: client.id, err: err.message }));
    aedes.on('connectionError', (_client, err) => log.debug('mqtt connection error', { err: err.message }));
    // aedes emits 'error' when a stale will is refused by authorizePublish: without a listener an
    // EventEmitter 'error' would end the process.
    (aedes as EventEmitter).on('error', (err: Error) => log.warn('mqtt broker error', { err: err.message }));
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

  /** Close the connection of the client with this id (a removed controller); false when none. */
  disconnectClient(clientId: string): boolean {
    const client = this.#clients.get(clientId);
    if (!client) return false;
    this.#clients.delete(clientId);
    client.close();
    return true;
  }

  /** The aedes options carrying the injected hooks (none given: aedes's defaults). */
  #hooks(): AedesOptions {
    const { authenticate, authorizePublish, authorizeSubscribe, logger } = this.#o;
    const opts: AedesOptions = {};
    if (authenticate) {
      // preConnect sees the CONNECT packet; authenticate does not, so the will is passed along.
      const wills = new WeakMap<Client, BrokerPublish>();
      opts.preConnect = (client, packet, done) => {
        const w = packet.will;
        if (w) wills.set(client, { topic: w.topic, qos: w.qos ?? 0, retain: w.retain ?? false });
        done(null, true);
      };
      opts.authenticate = (client, username, password, done) => {
        authenticate(client, username, password, wills.get(client)).then(
          (verdict) => {
            wills.delete(client);
            if (verdict === 'ok') return done(null, true);
            const err = Object.assign(new Error(verdict), { returnCode: CONNACK_CODE[verdict] });
            done(err, null);
          },
          (err: unknown) => {
            wills.delete(client);
            logger.warn('mqtt authenticate hook failed', { err: err instanceof Error ? err.message : String(err) });
            done(Object.assign(new Error('unavailable'), { returnCode: CONNACK_CODE.unavailable }), null);
          },
        );
      };
    }
    if (authorizePublish) {
      opts.authorizePublish = (client, packet, done) => {
        const ok = !packet.topic.startsWith('$SYS/') && authorizePublish(client, { topic: packet.topic, qos: packet.qos, retain: packet.retain });
        done(ok ? null : new Error('publish not authorized'));
      };
    }
    if (authorizeSubscribe) {
      opts.authorizeSubscribe = (client, sub, done) => {
        // A null subscription is aedes's way to answer 0x80 for this filter (MQTT 3.1.1 §3.9.3).
        done(null, authorizeSubscribe(client, { topic: sub.topic, qos: sub.qos }) ? sub : null);
      };
    }
    return opts;
  }

  /** Stop accepting, close every client, close the broker. */
  async stop(): Promise<void> {
    const server = this.#server;
    const aedes = this.#aedes;
    this.#server = undefined;
    this.#aedes = undefined;
    this.#clients.clear();
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    if (aedes) await new Promise<void>((resolve) => aedes.close(() => resolve()));
    // aedes closes its clients; anything still half-open would keep server.close() waiting.
    for (const s of this.#sockets) s.destroy();
    await closed;
    this.#o.logger.info('embedded MQTT broker stopped');
  }
}
