/**
 * The composition root's worker (STYLE: main.ts reads config and calls this; nothing else here
 * is configuration). Builds the store, keys, broker, controller bridge, grant lifecycle, HTTP API
 * and the demo district, wires them, and takes them down in reverse.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { newId, type AuditItem, type Logger } from '@smart-passage/protocol';
import { connectMqtt } from '@smart-passage/protocol/controller';
import { controllerTopic } from '@smart-passage/protocol';
import { hostname } from 'node:os';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { join } from 'node:path';
import { EmbeddedBroker } from './adapters/embedded-broker.js';
import { DynsecClient, MosquittoAccounts } from './adapters/mosquitto-dynsec.js';
import { PromMetrics } from './adapters/metrics.js';
import { NO_METRICS, type Metrics } from './features/metrics/metrics.js';
import { checkRedisPersistence } from './adapters/redis-persistence.js';
import { AuditLog, SYSTEM_ACTOR, buildingOfChain, type AuditInput } from './features/audit/audit-log.js';
import { AuditRetention } from './features/audit/retention.js';
import { auditRoutes, chainsInScope } from './features/audit/routes.js';
import { Realtime } from './adapters/realtime.js';
import { DemoRuntime } from './demo/demo-runtime.js';
import type { ControllerLive, Grant, Incident, User } from './domain/types.js';
import type { RealtimePrincipal, Snapshot } from './features/realtime/events.js';
import { BuildingOrgs } from './features/realtime/building-orgs.js';
import { LoginLimiter } from './features/auth/login-limiter.js';
import { PasswordHasher } from './features/auth/passwords.js';
import { authRoutes, bearerAuthenticate } from './features/auth/routes.js';
import { TokenService } from './features/auth/tokens.js';
import { BrokerAuth, type Refusal } from './features/controllers/broker-auth.js';
import { AppError } from './errors.js';
import { ControllerBridge } from './features/controllers/controller-bridge.js';
import { ControllerRegistry, controllerRoutes } from './features/controllers/registration.js';
import { ExpiryScheduler } from './features/grants/expiry-scheduler.js';
import { DrillService, type DrillServiceOptions } from './features/drills/drill-service.js';
import { drillRoutes } from './features/drills/routes.js';
import { ReadinessService } from './features/readiness/readiness-service.js';
import { openGrants } from './features/grants/desired-state.js';
import { GrantService } from './features/grants/grant-service.js';
import { incidentRoutes } from './features/incidents/routes.js';
import { offlineCodeRoutes } from './features/offline-codes/routes.js';
import { withApiKeys } from './features/integrations/api-keys.js';
import { integrationRoutes } from './features/integrations/routes.js';
import { webhookRoutes } from './features/webhooks/routes.js';
import { WebhookService, type WebhookSettings } from './features/webhooks/webhook-service.js';
import { mapRoutes, type BaseMapGeoJson } from './features/map/routes.js';
import { meRoutes } from './features/me/routes.js';
import { basemap as demoBasemap } from './demo/basemap.js';
import { tileOrigin } from './config.js';
import { adminRoutes } from './features/admin/index.js';
import { RosterService } from './features/roster/roster-service.js';
import { rosterRoutes } from './features/roster/routes.js';
import { createHttpApp } from './http/app.js';
import type { RouteDef } from './http/routes.js';
import { loadOrCreateKeys, type GatewayKeys } from './keys/key-store.js';
import { createStore, DEFAULT_REDIS_PREFIX } from './store/index.js';
import { listAll } from './store/list-all.js';
import type { StorePort } from './store/port.js';

export interface GatewayOptions {
  dataDir: string;
  http: { host: string; port: number };
  /** An external broker, or the embedded one on host:port. */
  mqtt:
    | {
        url: string;
        username?: string;
        password?: string;
        /** SP_MQTT_ACCOUNTS: `dynsec` = the gateway keeps controllers' accounts on this Mosquitto 2 (default `none`: the operator does). */
        accounts?: 'none' | 'dynsec';
        /** How long a Dynamic Security command may wait for its answer (default 5 s). */
        accountsTimeoutMs?: number;
        /**
         * SP_MQTT_EVENTS: `all` (default) = every instance takes every controller event on its own
         * persistent subscription (deduplicated); `shared` = through one `$share` group per
         * deployment, each event to one instance (see ControllerBridgeOptions.events for the
         * broker behaviour that makes `all` the default).
         */
        events?: 'all' | 'shared';
      }
    | { embedded: { host: string; port: number } };
  redisUrl?: string;
  redisPrefix?: string;
  /**
   * This instance's name among those sharing Redis (SP_INSTANCE_ID; default the host name): part
   * of its MQTT client id, so instances neither take over each other's session nor lose their own
   * across a restart. Instances on one host must set it apart.
   */
  instanceId?: string;
  /** Seed and run the demo district. */
  demo: boolean;
  /** The first admin (SP_ADMIN_USER / SP_ADMIN_PASSWORD): created at start when missing. */
  admin?: { username: string; password: string };
  /** Demo passwords to use instead of generated ones (tests). */
  demoPasswords?: Record<string, string>;
  corsOrigins?: string[];
  env: Readonly<Record<string, string | undefined>>;
  logger: Logger;
  /** A clean MQTT session instead of the persistent one (tests on a shared broker, which would keep a persistent session's queue forever). */
  cleanSession?: boolean;
  /** Lower scrypt cost (tests only). */
  hasher?: PasswordHasher;
  tickMs?: number;
  /** The built dispatch UI to serve at `/` (dispatch-ui/dist); absent = API only. */
  staticDir?: string;
  /**
   * The dispatch map (issue 5): a tile URL template (its origin is allowed in the UI's CSP), its
   * attribution, and the offline base layer (default: the demo district's, bundled).
   */
  map?: { tileUrl?: string; attribution?: string; basemap?: BaseMapGeoJson };
  /** Audit trail (DESIGN §8): checkpoint cadence, retention (0 = keep everything), archive directory. */
  audit?: { checkpointEvery?: number; checkpointMs?: number; retentionMs?: number; archiveDir?: string };
  /** SP_METRICS_TOKEN: collect Prometheus metrics and serve them at GET /metrics to this bearer token (issue 6). Absent: no metrics, /metrics is 404. */
  metricsToken?: string;
  /**
   * Readiness drills (issue 8, DESIGN §9): waits and the schedule tick (tests keep them short),
   * how old a passed drill may be before readiness counts it against (SP_DRILL_MAX_AGE_DAYS), and
   * the readiness sweep period.
   */
  drills?: Pick<DrillServiceOptions, 'grantMs' | 'deliveryTimeoutMs' | 'replyTimeoutMs' | 'pollMs' | 'leaseMs' | 'tickMs'> & { maxAgeMs?: number; sweepMs?: number };
  /** Reverse proxies in front (SP_TRUST_PROXY): express `trust proxy` hops. */
  trustProxy?: number;
  /** Webhook delivery (issue 8; SP_WEBHOOK_*): backoff, attempts, http:// allowed. */
  webhooks?: WebhookSettings;
}

/** A reconnecting socket may catch up on at most this many audit entries (DESIGN §6). */
const MAX_RESUME = 10_000;

export class Gateway {
  readonly #o: GatewayOptions;
  readonly instance = `gw-${randomBytes(4).toString('hex')}`;
  store!: StorePort;
  keys!: GatewayKeys;
  broker: EmbeddedBroker | undefined;
  client!: MqttClient;
  bridge!: ControllerBridge;
  grants!: GrantService;
  tokens!: TokenService;
  demo: DemoRuntime | undefined;
  realtime!: Realtime;
  audit!: AuditLog;
  retention!: AuditRetention;
  /** Owner and CAD webhooks (issue 8). */
  webhooks!: WebhookService;
  /** The Prometheus adapter when SP_METRICS_TOKEN is set. */
  prometheus: PromMetrics | undefined;
  #scheduler!: ExpiryScheduler;
  /** Issue 8: readiness drills and readiness (DESIGN §9). */
  drills!: DrillService;
  readiness!: ReadinessService;
  #server!: Server;
  #mqttUrl = '';
  #dynsec: DynsecClient | undefined;
  /** Controllers' broker accounts (SP_MQTT_ACCOUNTS=dynsec). */
  accounts: MosquittoAccounts | undefined;
  /** Hooks for real-time fan-out and audit (wired by later features). */
  readonly listeners = { grant: [] as ((g: Grant) => void)[], incident: [] as ((i: Incident) => void)[] };
  /** Building → owner organisation for the real-time fan-out (issue 7): no store read per audit entry. */
  readonly #buildingOrgs = new BuildingOrgs({ lookup: async (id) => (await this.store.get('buildings', id))?.orgId });

  constructor(o: GatewayOptions) {
    this.#o = o;
  }

  get httpUrl(): string {
    const a = this.#server.address() as AddressInfo;
    return `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
  }

  get mqttUrl(): string {
    return this.#mqttUrl;
  }

  async start(): Promise<void> {
    const { logger } = this.#o;
    this.store = createStore({ dataDir: this.#o.dataDir, redisUrl: this.#o.redisUrl, redisPrefix: this.#o.redisPrefix }, logger);
    await this.store.start();
    // Keys are generated only for a single machine (embedded store): instances sharing Redis must
    // share keys, so they come from files or the environment there (DESIGN §7).
    this.keys = await loadOrCreateKeys({ dataDir: this.#o.dataDir, env: this.#o.env, generate: this.#o.redisUrl === undefined, logger });
    if (this.#o.redisUrl !== undefined) {
      // DESIGN §10: grants and the audit trail must survive a Redis restart.
      const p = await checkRedisPersistence(this.#o.redisUrl);
      if (p.level === 'durable') logger.info('redis persistence', { detail: p.detail });
      else logger.warn(`REDIS MAY LOSE DATA: ${p.detail}. Run Redis with appendonly yes and appendfsync always (docker-compose.yml does).`, { level: p.level });
    }
    if (this.#o.metricsToken !== undefined) {
      this.prometheus = new PromMetrics({
        controllersOnline: () => this.#controllersOnline(),
        socketConnections: () => this.realtime?.connections ?? 0,
        logger,
      });
    }
    const prom = this.prometheus;
    const metrics: Metrics = prom ?? NO_METRICS;
    const auditOpts = this.#o.audit ?? {};
    this.audit = new AuditLog({
      store: this.store,
      key: this.keys.audit,
      logger,
      ...(auditOpts.checkpointEvery !== undefined ? { checkpointEvery: auditOpts.checkpointEvery } : {}),
      ...(auditOpts.checkpointMs !== undefined ? { checkpointMs: auditOpts.checkpointMs } : {}),
    });
    this.audit.start();
    // Counted from the log's own event, so every feature's entries are included (issue 6).
    this.audit.on('entry', () => metrics.auditAppended());
    this.retention = new AuditRetention({
      store: this.store,
      log: this.audit,
      key: this.keys.audit,
      retentionMs: auditOpts.retentionMs ?? 0,
      archiveDir: auditOpts.archiveDir ?? join(this.#o.dataDir, 'audit-archive'),
      owner: this.instance,
      logger,
    });
    const hasher = this.#o.hasher ?? new PasswordHasher();
    const admin = this.#o.admin;
    if (admin && (await listAll(this.store, 'users', { field: 'username', value: admin.username })).length === 0) {
      await this.store.insert('users', { id: `usr-${newId()}`, username: admin.username, displayName: 'Administrator', role: 'admin', passwordHash: await hasher.hash(admin.password), disabled: false, createdAt: Date.now() });
      logger.info('first admin created', { username: admin.username });
    }

    // The gateway's own account on the embedded broker: made per run, it never leaves the process.
    const service = { username: 'sp-gateway', password: randomBytes(24).toString('base64url') };
    let brokerAuth: BrokerAuth | undefined;
    if ('embedded' in this.#o.mqtt) {
      // DESIGN §5.1, §7: each controller logs in with its own credentials and touches only its topics.
      const auth = new BrokerAuth({ store: this.store, hasher, service, logger, onRefused: (r) => this.#auditRefusal(r) });
      brokerAuth = auth;
      this.broker = new EmbeddedBroker({
        host: this.#o.mqtt.embedded.host,
        port: this.#o.mqtt.embedded.port,
        logger,
        authenticate: (c, u, p, w) => auth.authenticate(c, u, p, w),
        authorizePublish: (c, p) => auth.authorizePublish(c, p),
        authorizeSubscribe: (c, sub) => auth.authorizeSubscribe(c, sub),
      });
      await this.broker.start();
      this.#mqttUrl = this.broker.url;
    } else {
      this.#mqttUrl = this.#o.mqtt.url;
    }
    const creds =
      'embedded' in this.#o.mqtt
        ? service
        : { ...(this.#o.mqtt.username ? { username: this.#o.mqtt.username } : {}), ...(this.#o.mqtt.password ? { password: this.#o.mqtt.password } : {}) };
    // A persistent session: controller events published while the gateway is away wait in the
    // broker, and an event not yet acked (not yet stored) comes again (DESIGN §8, §10).
    // With Redis, several instances may share the deployment (DESIGN §11): one client id each.
    const scaled = this.#o.redisUrl !== undefined;
    const member = scaled ? `-${this.#o.instanceId ?? hostname()}` : '';
    this.client = connectMqtt({ url: this.#mqttUrl, clientId: 'embedded' in this.#o.mqtt ? service.username : `sp-gateway-${this.#o.redisPrefix ?? 'main'}${member}`.slice(0, 64), clean: this.#o.cleanSession ?? false, reconnectPeriod: 1000, ...creds });
    // A persistent session hands over its queue (events sent while we were away; with a shared
    // subscription, this instance's share of them) right after CONNACK. mqtt.js's own handler
    // would acknowledge them unread: hold them unacknowledged until the bridge takes over.
    const held: [IPublishPacket, (err?: Error) => void][] = [];
    this.client.handleMessage = (packet, done) => void held.push([packet, done]);
    await new Promise<void>((resolve, reject) => {
      this.client.once('connect', () => resolve());
      this.client.once('error', reject);
    });
    // After the first connect, errors are the broker coming and going: mqtt.js reconnects by
    // itself, and an 'error' without a listener would end the process (DESIGN §10 broker restart).
    this.client.on('error', (err) => logger.warn('MQTT connection error; reconnecting', { err: err.message }));
    const gatewayKey = this.keys.gateway.current;
    // Controller events: by default every instance takes every event on its own plain persistent
    // subscription (an event handled by several instances is recorded once: its audit dedupe key,
    // classifyEvent). SP_MQTT_EVENTS=shared spreads them over the instances through one $share
    // group per deployment, at the price ControllerBridgeOptions.events describes. Births and
    // retries of syncs are claimed per controller with store leases held under this client id, so
    // a restarted instance takes its own leases straight back.
    const clientId = String(this.client.options.clientId);
    const events = 'embedded' in this.#o.mqtt ? 'all' : (this.#o.mqtt.events ?? 'all');
    this.bridge = new ControllerBridge({
      client: this.client,
      store: this.store,
      gatewayKey,
      boot: newId(),
      logger,
      audit: this.audit,
      metrics,
      held: () => held.splice(0),
      events,
      leaseOwner: clientId,
      ...(this.#o.redisPrefix !== undefined ? { deployment: this.#o.redisPrefix } : {}),
    });
    this.grants = new GrantService({ store: this.store, syncer: this.bridge, logger, audit: this.audit, metrics });
    this.tokens = new TokenService({ privateKeyPem: this.keys.jwt.privateKeyPem, publicKeyPem: this.keys.jwt.publicKeyPem, issuer: 'smart-passage', audience: 'smart-passage-api', store: this.store, logger });
    const limiter = new LoginLimiter({ store: this.store });
    if (!('embedded' in this.#o.mqtt) && this.#o.mqtt.accounts === 'dynsec') {
      const timeout = this.#o.mqtt.accountsTimeoutMs;
      this.#dynsec = new DynsecClient({ client: this.client, logger, ...(timeout !== undefined ? { timeoutMs: timeout } : {}) });
      this.accounts = new MosquittoAccounts({ dynsec: this.#dynsec, logger });
    }
    const drillOpts = this.#o.drills ?? {};
    this.readiness = new ReadinessService({
      store: this.store,
      logger,
      ...(drillOpts.maxAgeMs !== undefined ? { drillMaxAgeMs: drillOpts.maxAgeMs } : {}),
      ...(drillOpts.sweepMs !== undefined ? { sweepMs: drillOpts.sweepMs } : {}),
      onChange: (r, b) => this.realtime?.publish('readiness', r, { buildingOrgId: b.orgId }),
    });
    const { maxAgeMs: _maxAge, sweepMs: _sweep, ...drillWaits } = drillOpts;
    this.drills = new DrillService({
      store: this.store,
      grants: this.grants,
      bridge: this.bridge,
      audit: this.audit,
      logger,
      owner: clientId,
      ...drillWaits,
      onFinished: (drill, b) => {
        // A failed drill alerts dispatch and the owner (issue 8); readiness follows either way.
        if (drill.status === 'failed') this.realtime?.publish('alert', { kind: 'drill-failed', buildingId: b.id, buildingName: b.name, drillId: drill.id, reasons: drill.reasons, at: drill.endedAt ?? Date.now() }, { buildingOrgId: b.orgId });
        this.readiness.refresh(b.id).catch((err: unknown) => logger.warn('readiness not refreshed', { building: b.id, err: String(err) }));
      },
    });
    this.#scheduler = new ExpiryScheduler({ target: this.grants, owner: this.instance, logger, tickMs: this.#o.tickMs ?? 500, onExpired: (g) => this.#emitGrant(g) });
    // Issue 8: webhooks from the audit trail, so each recorded entry is queued once per target.
    this.webhooks = new WebhookService({ store: this.store, logger, owner: this.instance, ...this.#o.webhooks });
    this.audit.on('entry', (item) => {
      this.webhooks.onEntry(item).catch((err: unknown) => logger.error('WEBHOOK NOT QUEUED', { auditId: item.id, type: item.type, err: err instanceof Error ? err.message : String(err) }));
    });
    this.bridge.on('delivered', (_ctrl, ids) => {
      for (const id of ids) void this.store.get('grants', id).then((g) => g && this.#emitGrant(g));
    });

    const routes: RouteDef[] = [
      ...authRoutes({
        store: this.store,
        tokens: this.tokens,
        hasher,
        limiter,
        findUser: async (username): Promise<User | undefined> => (await listAll(this.store, 'users', { field: 'username', value: username }))[0],
        // A logged-out user's sockets end with the session (DESIGN §7).
        onAuth: (e) => {
          if (e.type === 'logout' && e.userId !== undefined) this.realtime?.disconnectUser(e.userId);
          const type = e.type === 'login' ? 'auth.login' : e.type === 'logout' ? 'auth.logout' : 'auth.login-failed';
          const actor = e.userId !== undefined ? { kind: 'user' as const, id: e.userId, name: e.username } : SYSTEM_ACTOR;
          // Awaited: a login whose entry cannot be stored is refused (DESIGN §8: nothing unaudited).
          return this.audit
            .record({ type, actor, ...(e.type === 'login-failed' ? { reason: e.reason } : {}), data: { username: e.username.slice(0, 64), ip: e.ip } })
            .then(() => undefined);
        },
      }),
      ...adminRoutes({
        store: this.store,
        hasher,
        audit: this.audit,
        // A blocked or changed tag leaves every live grant of its unit at once (DESIGN §4 flow 5).
        onTagBlocked: async (tag) => {
          await this.grants.resyncUnit(tag.unitId);
        },
        onTagChanged: async ({ before, after }) => {
          for (const unitId of new Set([before?.unitId, after?.unitId].filter((u): u is string => u !== undefined))) await this.grants.resyncUnit(unitId);
        },
        onBuildingChanged: (id) => this.#buildingChanged(id),
      }),
      ...controllerRoutes(
        new ControllerRegistry({
          store: this.store,
          hasher,
          mqttUrl: () => this.#mqttUrl,
          gatewayKeys: () => [this.keys.gateway.current, ...(this.keys.gateway.next ? [this.keys.gateway.next] : [])].map((k) => ({ kid: k.kid, publicKey: k.publicKey })),
          // The gateway's own broker account must never be replaced or deleted as a controller's.
          reservedIds: [service.username, ...('embedded' in this.#o.mqtt || this.#o.mqtt.username === undefined ? [] : [this.#o.mqtt.username])],
          ...(this.accounts ? { accounts: this.accounts } : {}),
          logger,
          onRemoved: (id) => {
            brokerAuth?.forget(id);
            this.bridge.forgetKeys(id);
            this.broker?.disconnectClient(id);
            this.client.publish(controllerTopic(id, 'state'), '', { qos: 1, retain: true });
          },
          onRegistered: (view) => this.realtime?.publish('controller', { id: view.id, online: false, appliedVersion: 0, lastSeq: 0, clockSafe: false, doors: [] }),
        }),
      ),
      ...incidentRoutes({
        store: this.store,
        grants: this.grants,
        audit: this.audit,
        pulse: (ctrl, door, seconds) => this.bridge.command(ctrl, 'door.pulse', { door, seconds }),
        onGrant: (g) => this.#emitGrant(g),
        onIncident: (i) => this.listeners.incident.forEach((f) => f(i)),
      }),
    ];
    routes.push(
      ...meRoutes({
        store: this.store,
        audit: this.audit,
        pulse: (ctrl, door, seconds) => this.bridge.command(ctrl, 'door.pulse', { door, seconds }),
      }),
    );
    const map = this.#o.map ?? {};
    routes.push(
      ...mapRoutes({
        store: this.store,
        basemap: map.basemap ?? demoBasemap,
        ...(map.tileUrl !== undefined ? { tileUrl: map.tileUrl } : {}),
        ...(map.attribution !== undefined ? { attribution: map.attribution } : {}),
      }),
    );
    routes.push(...drillRoutes({ store: this.store, drills: this.drills, readiness: this.readiness }));
    routes.push(...auditRoutes({ store: this.store, log: this.audit, key: this.keys.audit }));
    // Issue 8: roster sync. A member's tags blocked by it leave every live grant of their unit.
    const roster = new RosterService({
      store: this.store,
      audit: this.audit,
      logger,
      resyncUnits: async (unitIds) => {
        for (const u of unitIds) await this.grants.resyncUnit(u);
      },
    });
    routes.push(...rosterRoutes({ store: this.store, roster }));
    routes.push(...offlineCodeRoutes({ store: this.store, audit: this.audit }));
    routes.push(
      ...integrationRoutes({ store: this.store, audit: this.audit, webhooks: this.webhooks, logger, onIncident: (i) => this.listeners.incident.forEach((f) => f(i)) }),
      ...webhookRoutes({ store: this.store, webhooks: this.webhooks, logger }),
    );
    const app = createHttpApp({
      routes,
      authenticate: withApiKeys(this.store, bearerAuthenticate(this.tokens)),
      ready: async () => ({
        store: await this.store.ping().then(
          () => true,
          () => false,
        ),
        broker: this.client.connected,
      }),
      logger,
      corsOrigins: this.#o.corsOrigins ?? [],
      ...(this.#o.trustProxy !== undefined ? { trustProxy: this.#o.trustProxy } : {}),
      ...(this.#o.staticDir !== undefined ? { staticDir: this.#o.staticDir } : {}),
      mapTileHosts: map.tileUrl !== undefined ? [tileOrigin(map.tileUrl)] : [],
      metrics,
      ...(prom !== undefined && this.#o.metricsToken !== undefined ? { metricsEndpoint: { token: this.#o.metricsToken, render: () => prom.render() } } : {}),
    });
    this.#server = createServer(app);
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#o.http.port, this.#o.http.host, () => resolve());
    });

    this.realtime = new Realtime({
      httpServer: this.#server,
      // Instances sharing Redis share the real-time fan-out (DESIGN §11).
      ...(this.#o.redisUrl !== undefined ? { redis: { url: this.#o.redisUrl, prefix: this.#o.redisPrefix ?? DEFAULT_REDIS_PREFIX } } : {}),
      verify: (t) => this.tokens.verifyAccess(t),
      snapshot: (p) => this.#snapshot(p),
      auditSince: (p, lastId) => this.#auditSince(p, lastId),
      // Another instance changed a building: its owner may have changed (issue 7).
      onBuildingChanged: (id) => this.#buildingOrgs.invalidate(id),
      logger,
      corsOrigins: this.#o.corsOrigins ?? [],
    });
    this.realtime.start();
    this.#wireRealtime();

    if (this.broker) await this.#forgetPresence();
    await this.bridge.start();
    // After the bridge: until it runs, a queued controller message would hold up every answer.
    if (this.#dynsec && this.accounts) {
      await this.#dynsec.start();
      await this.#reconcileAccounts(this.accounts);
    }
    if (this.#o.demo) {
      const gk = this.keys.gateway;
      this.demo = new DemoRuntime({
        store: this.store,
        dataDir: this.#o.dataDir,
        hasher,
        mqttUrl: this.#mqttUrl,
        gatewayKeys: [gk.current, ...(gk.next ? [gk.next] : [])].map((k) => ({ kid: k.kid, publicKey: k.publicKey })),
        logger,
        ...(this.#o.demoPasswords ? { passwords: this.#o.demoPasswords } : {}),
      });
      await this.demo.start();
    }
    // DESIGN §10: after a restart, every controller behind gets its set, and overdue grants expire.
    await this.grants.reconcile();
    await this.#scheduler.start();
    // After the bridge (drills need replies) and the reconcile: fail drills a dead run left, then schedule.
    await this.drills.start();
    this.readiness.start();
    this.retention.start();
    this.webhooks.start();
  }

  /**
   * The broker's controller accounts against the store (SP_MQTT_ACCOUNTS=dynsec): accounts of
   * controllers no longer registered are deleted; registered controllers without an account are
   * named, since only a new bundle can give them one (their passwords are stored hashed).
   */
  async #reconcileAccounts(accounts: MosquittoAccounts): Promise<void> {
    const { logger } = this.#o;
    const registered = async (): Promise<Set<string>> => {
      const ids = new Set<string>();
      let after: string | undefined;
      for (;;) {
        const page = await this.store.list('controllers', { limit: 500, ...(after !== undefined ? { after } : {}) });
        for (const c of page) ids.add(c.id);
        if (page.length < 500) return ids;
        after = page[page.length - 1]?.id;
      }
    };
    const r = await accounts.reconcile(registered, async (id) => (await this.store.get('controllers', id)) !== undefined);
    if (r.deleted.length > 0) logger.info('broker accounts of removed controllers deleted', { count: r.deleted.length, ctrls: r.deleted.join(', ') });
    if (r.missing.length > 0) {
      logger.warn('REGISTERED CONTROLLERS WITHOUT A BROKER ACCOUNT: they cannot connect. Their passwords are stored only hashed, so each needs a new provisioning bundle (remove and register it again)', {
        count: r.missing.length,
        ctrls: r.missing.slice(0, 100).join(', '),
      });
    }
  }

  /**
   * Record an entry that no caller waits for (a login, a refused connection): a failure is logged
   * loudly, since the entry is then missing from the trail.
   */
  #record(input: AuditInput): void {
    this.audit.record(input).catch((err: unknown) => this.#o.logger.error('AUDIT ENTRY NOT STORED', { type: input.type, err: err instanceof Error ? err.message : String(err) }));
  }

  /** A refused MQTT connection, publish or subscribe (embedded broker): `security.rejected`. */
  #auditRefusal(r: Refusal): void {
    // Repeats inside the broker's log window are counted, and the next entry says how many.
    if (r.repeated) return;
    this.#record({
      type: 'security.rejected',
      actor: r.controllerId !== undefined ? { kind: 'controller', id: r.controllerId } : SYSTEM_ACTOR,
      buildingId: r.buildingId,
      controllerId: r.controllerId,
      reason: r.reason,
      data: {
        via: 'mqtt',
        action: r.action,
        clientId: r.clientId.slice(0, 64),
        ...(r.topic !== undefined ? { topic: r.topic.slice(0, 200) } : {}),
        ...(r.suppressed !== undefined ? { suppressed: r.suppressed } : {}),
      },
    });
  }

  /** Resume the live feed (DESIGN §6): the entries after `lastId` in the principal's scope. */
  async #auditSince(p: RealtimePrincipal, lastId: string): Promise<AuditItem[]> {
    if (!/^\d{1,20}$/.test(lastId)) throw new AppError('validation-failed', 'auth.lastAuditId must be an audit entry id');
    const chains = await chainsInScope(this.store, p);
    if (chains?.length === 0) return [];
    const out: AuditItem[] = [];
    let after = lastId;
    for (;;) {
      const page = await this.store.auditSince(after, 1000, chains);
      out.push(...page);
      if (page.length < 1000) return out;
      if (out.length >= MAX_RESUME) throw new AppError('conflict', `more than ${MAX_RESUME} audit entries since lastAuditId: read them over GET /api/v1/audit and reconnect without lastAuditId`);
      after = page[page.length - 1]!.id;
    }
  }

  /**
   * The embedded broker starts empty: no retained state and no will survive the last run, so a
   * controller stored as online from that run (a crash leaves it so) would be shown online even if
   * it never returns (DESIGN §10). Mark them offline; their births, retained or live, bring them back.
   */
  async #forgetPresence(): Promise<void> {
    let after: string | undefined;
    for (;;) {
      const page = await this.store.list('controllerLive', { limit: 500, ...(after !== undefined ? { after } : {}) });
      for (const live of page) {
        if (live.online) await this.store.update('controllerLive', live.id, (cur) => (cur.online ? { ...cur, online: false } : undefined));
      }
      if (page.length < 500) return;
      after = page[page.length - 1]?.id;
    }
  }

  /** Controllers whose stored presence is online (sp_controllers_online, read at scrape time). */
  async #controllersOnline(): Promise<number> {
    let online = 0;
    let after: string | undefined;
    for (;;) {
      const page = await this.store.list('controllerLive', { limit: 500, ...(after !== undefined ? { after } : {}) });
      for (const live of page) if (live.online) online += 1;
      if (page.length < 500) return online;
      after = page[page.length - 1]?.id;
    }
  }

  #emitGrant(g: Grant): void {
    if (g.drill) return; // a drill's test grant is no emergency (issue 8)
    for (const f of this.listeners.grant) f(g);
  }

  /** The building's owner organisation, from the cache (see building-orgs.ts for how it stays right). */
  #orgOfBuilding(buildingId: string): Promise<string | undefined> {
    return this.#buildingOrgs.orgOf(buildingId);
  }

  /** A building was created, changed or deleted here: drop its owner, here and on the other instances. */
  #buildingChanged(buildingId: string): void {
    this.#buildingOrgs.invalidate(buildingId);
    this.realtime?.buildingChanged(buildingId);
  }

  /** Fan-out to sockets (DESIGN §6): dispatch always, the building's owner, the units concerned. */
  #wireRealtime(): void {
    const rt = this.realtime;
    const log = this.#o.logger;
    const failed = (err: unknown) => log.warn('real-time publish failed', { err: String(err) });
    this.listeners.grant.push((g) => {
      this.#orgOfBuilding(g.buildingId).then((org) => rt.publish('grant', g, { ...(org ? { buildingOrgId: org } : {}), unitIds: g.unitIds }), failed);
    });
    this.listeners.incident.push((i) => rt.publish('incident', i));
    this.bridge.on('controller', (live) => {
      this.readiness.controllerChanged(live.id);
      this.#controllerOrg(live.id).then((org) => rt.publish('controller', live, org ? { buildingOrgId: org } : {}), failed);
    });
    // The live audit feed (DESIGN §6, §8): to dispatch and to the building's owner, never to units.
    this.audit.on('entry', (item) => {
      const building = buildingOfChain(item.chain);
      if (building === undefined) {
        rt.publish('audit', item);
        return;
      }
      this.#orgOfBuilding(building).then((org) => rt.publish('audit', item, org ? { buildingOrgId: org } : {}), failed);
    });
    this.audit.on('checkpoint', (cp) => {
      const building = buildingOfChain(cp.chain);
      if (building === undefined) rt.publish('checkpoint', cp);
      else this.#orgOfBuilding(building).then((org) => rt.publish('checkpoint', cp, org ? { buildingOrgId: org } : {}), failed);
    });
  }

  async #controllerOrg(ctrl: string): Promise<string | undefined> {
    const c = await this.store.get('controllers', ctrl);
    return c ? this.#orgOfBuilding(c.buildingId) : undefined;
  }

  /** What a socket sees first, scoped like the REST API (DESIGN §7). */
  async #snapshot(p: RealtimePrincipal): Promise<Omit<Snapshot, 'at'>> {
    const store = this.store;
    const live = (await openGrants(store)).filter((g) => !g.drill);
    const open = await listAll(store, 'incidents', { field: 'status', value: 'open' });
    const controllers: ControllerLive[] = await store.list('controllerLive', { limit: 1000 });
    if (p.role === 'admin' || p.role === 'dispatcher') return { incidents: open, grants: live, controllers };
    if (p.role === 'owner' && p.orgId !== undefined) {
      const mine = new Set((await listAll(store, 'buildings', { field: 'orgId', value: p.orgId })).map((b) => b.id));
      const ctrls = new Set((await store.list('controllers', { limit: 1000 })).filter((c) => mine.has(c.buildingId)).map((c) => c.id));
      return {
        incidents: open.filter((i) => i.buildingIds.some((b) => mine.has(b))),
        grants: live.filter((g) => mine.has(g.buildingId)),
        controllers: controllers.filter((c) => ctrls.has(c.id)),
      };
    }
    if (p.role === 'responder' && p.unitId !== undefined) {
      const grants = live.filter((g) => g.unitIds.includes(p.unitId!));
      const incidents = new Set(grants.map((g) => g.incidentId));
      return { incidents: open.filter((i) => incidents.has(i.id)), grants, controllers: [] };
    }
    return { incidents: [], grants: [], controllers: [] };
  }

  async stop(): Promise<void> {
    await this.webhooks?.stop();
    await this.retention?.stop();
    await this.#scheduler?.stop();
    await this.drills?.stop();
    await this.readiness?.stop();
    this.bridge?.stop();
    await this.#dynsec?.stop();
    await this.realtime?.stop();
    await this.demo?.stop();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
    this.#server?.closeAllConnections();
    await this.client?.endAsync();
    await this.bridge?.idle(); // replies taken before the client ended (acked, not yet handled)
    await this.broker?.stop();
    await this.audit?.stop();
    await this.store?.stop();
    this.prometheus?.stop();
  }
}

