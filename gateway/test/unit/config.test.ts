// Gateway configuration from SP_ environment variables: defaults, every problem at once, notes.
import { describe, expect, it } from 'vitest';
import { loadConfig, redactUrl, tileOrigin } from '../../src/config.js';
import { portInUseMessage, startBanner } from '../../src/banner.js';

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment (empty values count as unset)', () => {
    expect(loadConfig({ SP_MQTT_PORT: '' })).toEqual({
      ok: true,
      notes: [],
      config: {
        host: '127.0.0.1',
        port: 8080,
        mqttUrl: undefined,
        mqttUsername: undefined,
        mqttPasswordFile: undefined,
        mqttAccounts: 'none',
        mqttEvents: 'all',
        mqttHost: '127.0.0.1',
        mqttPort: 1883,
        redisUrl: undefined,
        redisPrefix: 'sp:',
        instanceId: undefined,
        dataDir: './data',
        demo: undefined,
        adminUser: undefined,
        adminPassword: undefined,
        corsOrigins: [],
        trustProxy: 0,
        auditCheckpointEntries: 1000,
        auditCheckpointSeconds: 60,
        auditRetentionDays: 0,
        auditArchiveDir: undefined,
        tileUrl: undefined,
        tileAttribution: undefined,
        basemapFile: undefined,
        metricsToken: undefined,
        webhookBackoffMs: 1000,
        webhookMaxAttempts: 20,
        webhookAllowHttp: 'off',
        drillMaxAgeDays: 0,
        logLevel: 'info',
      },
    });
  });

  it('reads every setting', () => {
    const r = loadConfig({
      SP_HOST: '0.0.0.0', SP_PORT: '9090', SP_MQTT_HOST: '0.0.0.0', SP_MQTT_PORT: '1884', SP_DATA_DIR: '/var/lib/sp', SP_DEMO: 'off',
      SP_REDIS_URL: 'redis://127.0.0.1:6379', SP_ADMIN_USER: 'root', SP_ADMIN_PASSWORD: 'pw', SP_CORS_ORIGINS: 'https://a.example, https://b.example', SP_LOG_LEVEL: 'debug',
      SP_TRUST_PROXY: '1', SP_AUDIT_CHECKPOINT_ENTRIES: '500', SP_AUDIT_CHECKPOINT_SECONDS: '30', SP_AUDIT_RETENTION_DAYS: '3650', SP_AUDIT_ARCHIVE_DIR: '/var/archive',
      SP_REDIS_PREFIX: 'site-7:', SP_INSTANCE_ID: 'gw-b',
    });
    expect(r).toMatchObject({
      ok: true,
      config: { host: '0.0.0.0', port: 9090, mqttHost: '0.0.0.0', mqttPort: 1884, dataDir: '/var/lib/sp', demo: 'off', redisUrl: 'redis://127.0.0.1:6379', adminUser: 'root', corsOrigins: ['https://a.example', 'https://b.example'], logLevel: 'debug',
        trustProxy: 1, auditCheckpointEntries: 500, auditCheckpointSeconds: 30, auditRetentionDays: 3650, auditArchiveDir: '/var/archive', redisPrefix: 'site-7:', instanceId: 'gw-b' },
    });
  });

  it('refuses a Redis prefix or instance id that could not name an MQTT client id or share group', () => {
    const r = loadConfig({ SP_REDIS_PREFIX: 'a/b', SP_INSTANCE_ID: 'x+y' });
    expect(r.ok ? [] : r.problems).toEqual([expect.stringMatching(/^SP_REDIS_PREFIX must be/), expect.stringMatching(/^SP_INSTANCE_ID must be/)]);
  });

  it('reads SP_METRICS_TOKEN; a short or spaced token is refused without being printed', () => {
    const token = 'f3a9c0d1e2b4a5968778695a4b3c2d1e';
    expect(loadConfig({ SP_METRICS_TOKEN: token })).toMatchObject({ ok: true, config: { metricsToken: token } });
    for (const bad of ['short-secret', 'has a space in it, sixteen+', 'x'.repeat(513)]) {
      const r = loadConfig({ SP_METRICS_TOKEN: bad });
      expect(r.ok ? [] : r.problems, bad).toEqual([expect.stringMatching(/^SP_METRICS_TOKEN must be 16 to 512 printable ASCII characters/)]);
      expect(JSON.stringify(r)).not.toContain(bad);
    }
  });

  it('reads the map settings; a tile URL must be an https template with {z}/{x}/{y}', () => {
    const osm = 'https://tile.openstreetmap.org/{z}/{x}/{y}.png';
    expect(loadConfig({ SP_TILE_URL: osm, SP_TILE_ATTRIBUTION: '© OpenStreetMap contributors', SP_BASEMAP_FILE: '/etc/sp/map.geojson' })).toMatchObject({
      ok: true,
      notes: [],
      config: { tileUrl: osm, tileAttribution: '© OpenStreetMap contributors', basemapFile: '/etc/sp/map.geojson' },
    });
    for (const bad of ['http://tile.openstreetmap.org/{z}/{x}/{y}.png', 'https://tile.openstreetmap.org/tiles.png', 'https://user:pw@tile.example.org/{z}/{x}/{y}.png', 'not a url {z}{x}{y}']) {
      const r = loadConfig({ SP_TILE_URL: bad });
      expect(r.ok, bad).toBe(false);
      expect(r.ok ? [] : r.problems, bad).toEqual([expect.stringMatching(/^SP_TILE_URL must be an https URL template/)]);
    }
    expect(loadConfig({ SP_TILE_ATTRIBUTION: 'x' })).toMatchObject({ ok: true, notes: ['SP_TILE_ATTRIBUTION is ignored: SP_TILE_URL is not set'] });
  });

  it('gives the CSP origin of a tile template, a wildcard for a {s} subdomain', () => {
    expect(tileOrigin('https://tile.openstreetmap.org/{z}/{x}/{y}.png')).toBe('https://tile.openstreetmap.org');
    expect(tileOrigin('https://{s}.tile.example.org:8443/{z}/{x}/{y}{r}.png?key=abc')).toBe('https://*.tile.example.org:8443');
    expect(() => tileOrigin('http://tile.example.org/{z}/{x}/{y}.png')).toThrow();
  });

  it('reports every problem at once', () => {
    expect(loadConfig({ SP_MQTT_PORT: 'abc', SP_PORT: '-1', SP_DEMO: 'maybe', SP_MQTT_URL: 'http://x', SP_REDIS_URL: 'mqtt://x', SP_LOG_LEVEL: 'loud' })).toEqual({
      ok: false,
      problems: [
        'SP_PORT must be from 0 to 65535, got -1',
        "SP_MQTT_URL must be an mqtt:// or mqtts:// URL such as mqtt://127.0.0.1:1883, got 'http://x'",
        "SP_MQTT_PORT must be a whole number from 0 to 65535, got 'abc'",
        "SP_REDIS_URL must be a redis:// or rediss:// URL such as redis://127.0.0.1:6379, got 'mqtt://x'",
        "SP_DEMO must be one of on|off, got 'maybe'",
        "SP_LOG_LEVEL must be one of debug|info|warn|error, got 'loud'",
      ],
    });
    expect(loadConfig({ SP_ADMIN_USER: 'root' })).toEqual({ ok: false, problems: ['SP_ADMIN_USER and SP_ADMIN_PASSWORD go together: set both or neither'] });
  });

  it('reads SP_MQTT_EVENTS; shared needs an external broker and Redis', () => {
    const scaled = { SP_MQTT_URL: 'mqtt://broker:1883', SP_REDIS_URL: 'redis://redis:6379' };
    expect(loadConfig({ ...scaled, SP_MQTT_EVENTS: 'shared' })).toMatchObject({ ok: true, config: { mqttEvents: 'shared' } });
    expect(loadConfig({ SP_MQTT_URL: 'mqtt://broker:1883', SP_MQTT_EVENTS: 'shared' })).toEqual({ ok: false, problems: [expect.stringMatching(/^SP_MQTT_EVENTS=shared needs SP_MQTT_URL and SP_REDIS_URL/)] });
    expect(loadConfig({ SP_MQTT_EVENTS: 'some' })).toEqual({ ok: false, problems: ["SP_MQTT_EVENTS must be one of all|shared, got 'some'"] });
  });

  it('reads SP_MQTT_ACCOUNTS; dynsec needs an external broker and the account that may use its API', () => {
    const url = { SP_MQTT_URL: 'mqtt://127.0.0.1:1883' };
    expect(loadConfig({ ...url, SP_MQTT_USERNAME: 'gateway', SP_MQTT_ACCOUNTS: 'dynsec' })).toMatchObject({ ok: true, config: { mqttAccounts: 'dynsec' } });
    expect(loadConfig({ SP_MQTT_ACCOUNTS: 'dynsec' })).toEqual({ ok: false, problems: ['SP_MQTT_ACCOUNTS=dynsec needs SP_MQTT_URL: the embedded broker checks controllers itself'] });
    expect(loadConfig({ ...url, SP_MQTT_ACCOUNTS: 'dynsec' })).toEqual({ ok: false, problems: [expect.stringMatching(/^SP_MQTT_ACCOUNTS=dynsec needs SP_MQTT_USERNAME/)] });
    expect(loadConfig({ SP_MQTT_ACCOUNTS: 'passwd' })).toEqual({ ok: false, problems: ["SP_MQTT_ACCOUNTS must be one of none|dynsec, got 'passwd'"] });
  });

  it('notes embedded-broker settings that SP_MQTT_URL makes moot', () => {
    const r = loadConfig({ SP_MQTT_URL: 'mqtt://127.0.0.1:1883', SP_MQTT_PORT: '1884' });
    expect(r).toMatchObject({ ok: true, notes: ['SP_MQTT_PORT is ignored: SP_MQTT_URL is set, so no embedded broker runs'] });
  });
});

describe('printing', () => {
  it('never prints a broker password', () => {
    expect(redactUrl('mqtt://gw:s3cret@broker:1883')).toBe('mqtt://gw:***@broker:1883');
    expect(loadConfig({ SP_MQTT_URL: 'http://gw:s3cret@x' })).toMatchObject({ ok: false });
    expect(JSON.stringify(loadConfig({ SP_MQTT_URL: 'http://gw:s3cret@x' }))).not.toContain('s3cret');
  });

  it('gives both ways out when the port is taken', () => {
    expect(portInUseMessage('127.0.0.1', 1883)).toContain('SP_MQTT_PORT=1884 npm start');
    expect(portInUseMessage('127.0.0.1', 1883)).toContain('SP_MQTT_URL=mqtt://127.0.0.1:1883 npm start');
    expect(portInUseMessage('0.0.0.0', 1883)).toContain('SP_MQTT_HOST=0.0.0.0 SP_MQTT_PORT=1884 npm start');
    expect(portInUseMessage('0.0.0.0', 1883)).toContain('SP_MQTT_URL=mqtt://127.0.0.1:1883 npm start');
  });
});

describe('startBanner', () => {
  const facts = { httpUrl: 'http://127.0.0.1:8080', mqttUrl: 'mqtt://127.0.0.1:1883', embeddedBroker: true, embeddedStore: true, dataDir: '/tmp/sp', notes: [] };
  const demo = { controllers: 15, users: [{ username: 'dispatch', role: 'dispatcher', password: 'pw-1' }] };

  it('points at the UI in a browser when it is built, and says how to build it when not', () => {
    const built = startBanner({ ...facts, ui: true, demo });
    expect(built).toContain('API and UI   http://127.0.0.1:8080');
    expect(built).toContain('open http://127.0.0.1:8080/ in a browser and log in as dispatch');
    const missing = startBanner({ ...facts, ui: false, demo });
    expect(missing).toContain('UI           not built: run npm run build');
    expect(missing).not.toContain('in a browser');
  });
});
