// The production files (docker-compose.yml, deploy/nginx, deploy/mosquitto) say what DESIGN §7,
// §10 and §11 ask, and name only settings the gateway reads. No Docker engine runs on the machines
// this suite runs on, so these checks read the files; the parts they configure are exercised for
// real elsewhere (private Mosquitto with dynamic security, Redis with AOF, several instances).
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_SCHEMA } from '../../src/config.js';
import { KEY_ENV } from '../../src/keys/key-store.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  secrets?: string[];
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}
interface Compose {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
  secrets: Record<string, { file: string }>;
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as Compose;
const gateways = Object.entries(compose.services).filter(([, s]) => s.image?.startsWith('smart-passage/gateway'));
const KNOWN_ENV = new Set<string>([...Object.values(CONFIG_SCHEMA).map((s) => s.env), ...KEY_ENV]);

describe('docker-compose.yml', () => {
  it('runs two gateway instances with distinct ids, one Redis prefix, built from the Dockerfile', () => {
    expect(gateways.map(([name]) => name).sort()).toEqual(['gateway-a', 'gateway-b']);
    const env = gateways.map(([, s]) => s.environment ?? {});
    expect(new Set(env.map((e) => e.SP_INSTANCE_ID)).size).toBe(2);
    expect(new Set(env.map((e) => e.SP_REDIS_PREFIX)).size).toBe(1);
    for (const [, s] of gateways) {
      expect(s.build?.dockerfile).toBe('deploy/gateway.Dockerfile');
      expect(existsSync(join(root, s.build?.dockerfile ?? 'missing'))).toBe(true);
      expect(s.environment?.SP_REDIS_URL).toBe('redis://redis:6379');
      expect(s.environment?.SP_MQTT_URL).toBe('mqtt://mosquitto:1883');
      expect(s.environment?.SP_MQTT_ACCOUNTS).toBe('dynsec');
      expect(s.environment?.SP_TRUST_PROXY).toBe('1');
      expect(s.depends_on?.redis?.condition).toBe('service_healthy');
      expect(s.depends_on?.mosquitto?.condition).toBe('service_healthy');
    }
  });

  it('gives the gateways only settings they read (a typo would be ignored silently in production)', () => {
    for (const [name, s] of gateways) {
      const unknown = Object.keys(s.environment ?? {}).filter((k) => !KNOWN_ENV.has(k));
      expect(unknown, name).toEqual([]);
    }
  });

  it('mounts every *_FILE setting from a secret the service has, and every secret from a file under deploy/secrets', () => {
    for (const [name, s] of gateways) {
      for (const [k, v] of Object.entries(s.environment ?? {})) {
        if (!k.endsWith('_FILE')) continue;
        const secret = /^\/run\/secrets\/([a-z_]+)$/.exec(v)?.[1];
        expect(secret, `${name} ${k}`).toBeDefined();
        expect(s.secrets, `${name} ${k}`).toContain(secret);
      }
      for (const secret of s.secrets ?? []) expect(compose.secrets[secret]?.file, secret).toMatch(/^\.\/deploy\/secrets\/[a-z-]+$/);
    }
    // The three keys come from files, so both instances sign with the same keys (DESIGN §11).
    for (const k of ['SP_GATEWAY_KEY_FILE', 'SP_AUDIT_KEY_FILE', 'SP_JWT_KEY_FILE']) {
      expect(new Set(gateways.map(([, s]) => s.environment?.[k])).size, k).toBe(1);
      expect(gateways[0]?.[1].environment?.[k], k).toBeDefined();
    }
  });

  it('keeps Redis writes on disk before they are acknowledged (AOF, fsync always)', () => {
    const cmd = compose.services.redis?.command?.join(' ') ?? '';
    expect(cmd).toContain('--appendonly yes');
    expect(cmd).toContain('--appendfsync always');
    expect(compose.services.redis?.volumes).toContain('redis-data:/data');
  });

  it('has a health check on every service and declares every named volume it mounts', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      expect(s.healthcheck?.test.length, name).toBeGreaterThan(0);
      for (const v of s.volumes ?? []) {
        const source = v.split(':')[0] ?? '';
        if (source.startsWith('.')) expect(existsSync(join(root, source)), `${name} ${v}`).toBe(true);
        else expect(compose.volumes, `${name} ${v}`).toHaveProperty(source);
      }
    }
  });

  it('publishes only the proxy to the world and plain MQTT on loopback only', () => {
    const published = Object.entries(compose.services).flatMap(([name, s]) => (s.ports ?? []).map((p) => `${name} ${p}`));
    expect(published.sort()).toEqual(['mosquitto 127.0.0.1:1883:1883', 'proxy 8080:8080']);
  });
});

describe('deploy/nginx/nginx.conf', () => {
  const conf = read('deploy/nginx/nginx.conf').replace(/#.*$/gm, '');

  it('balances over exactly the gateway services, on their port', () => {
    const upstream = /upstream gateways \{([^}]*)\}/.exec(conf)?.[1] ?? '';
    const servers = [...upstream.matchAll(/server ([\w.-]+):(\d+)/g)].map((m) => `${m[1]}:${m[2]}`);
    expect(servers.sort()).toEqual(gateways.map(([name, s]) => `${name}:${s.environment?.SP_PORT ?? String(CONFIG_SCHEMA.port.default)}`).sort());
    expect(compose.services.proxy?.volumes).toContain('./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro');
  });

  it('passes WebSocket upgrades for socket.io and the client address and scheme to the gateways', () => {
    const sio = /location \/socket\.io\/ \{([^}]*)\}/.exec(conf)?.[1] ?? '';
    expect(sio).toMatch(/proxy_set_header Upgrade \$http_upgrade;/);
    expect(sio).toMatch(/proxy_set_header Connection \$connection_upgrade;/);
    expect(sio).toMatch(/proxy_http_version 1\.1;/);
    for (const block of [sio, /location \/ \{([^}]*)\}/.exec(conf)?.[1] ?? '']) {
      expect(block).toMatch(/proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;/);
      expect(block).toMatch(/proxy_set_header X-Forwarded-Proto \$scheme;/);
    }
    // A grant must never be sent twice to the instances: no retry of non-idempotent requests.
    expect(conf).not.toMatch(/non_idempotent/);
  });
});

describe('deploy/mosquitto/mosquitto.conf', () => {
  const conf = read('deploy/mosquitto/mosquitto.conf').replace(/#.*$/gm, '');

  it('refuses anonymous clients, keeps sessions across restarts and sets TCP_NODELAY', () => {
    expect(conf).toMatch(/^allow_anonymous false$/m);
    expect(conf).toMatch(/^persistence true$/m);
    expect(conf).toMatch(/^set_tcp_nodelay true$/m);
    // A queue cap makes Mosquitto drop messages it already acknowledged to the controller.
    expect(conf).toMatch(/^max_queued_messages 0$/m);
  });

  it('takes accounts from the Dynamic Security plugin, whose file lives in the data volume', () => {
    expect(conf).toMatch(/^plugin \/usr\/lib\/mosquitto_dynamic_security\.so$/m);
    expect(conf).toMatch(/^plugin_opt_config_file \/mosquitto\/data\/[\w.-]+\.json$/m);
    expect(compose.services.mosquitto?.volumes).toContain('mosquitto-data:/mosquitto/data');
  });
});

describe('the gateway process (issue 7, memory)', () => {
  it('runs with the same V8 heap flags in the Dockerfile, under npm start and in the benchmark', async () => {
    // @ts-expect-error the bench scripts are plain JavaScript without declarations
    const { GATEWAY_NODE_FLAGS } = (await import('../../../bench/gateway-lib.js')) as { GATEWAY_NODE_FLAGS: string[] };
    expect(GATEWAY_NODE_FLAGS).toEqual(expect.arrayContaining([expect.stringMatching(/^--max-old-space-size=\d+$/), expect.stringMatching(/^--max-semi-space-size=\d+$/)]));
    const cmd = /^CMD (\[.*\])$/m.exec(read('deploy/gateway.Dockerfile'))?.[1];
    expect(JSON.parse(cmd ?? '[]')).toEqual(['node', ...GATEWAY_NODE_FLAGS, 'gateway/dist/main.js']);
    const start = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts.start;
    expect(start).toBe(`npm run build && node ${GATEWAY_NODE_FLAGS.join(' ')} gateway/dist/main.js`);
  });
});
