/**
 * What `npm start` prints: what runs where and what to try next, and the advice for a start that
 * cannot get its port. Text only; main decides when to print it.
 */
import { relative } from 'node:path';
import { BrokerUnreachableError } from './adapters/broker-probe.js';
import { PortInUseError, PortNotAllowedError } from './adapters/embedded-broker.js';
import { redactUrl } from './config.js';

export interface BannerFacts {
  /** Where the API and UI answer. */
  httpUrl: string;
  /** The dispatch UI's build is served at `httpUrl` (false: not built, API only). */
  ui?: boolean;
  /** The MQTT URL controllers use. */
  mqttUrl: string;
  /** True when the embedded broker runs; false when SP_MQTT_URL names another broker. */
  embeddedBroker: boolean;
  /** True for the embedded store; false with SP_REDIS_URL. */
  embeddedStore: boolean;
  dataDir: string;
  /** The demo users and their passwords, when the demo district runs and they were generated here. */
  demo?: { controllers: number; users: { username: string; role: string; password: string }[] };
  admin?: string;
  notes: readonly string[];
}

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' || rel.startsWith('..') ? path : rel;
}

/** Printed on stdout once at start. It carries the demo passwords: never sent to the log. */
export function startBanner(f: BannerFacts): string {
  const mqtt = redactUrl(f.mqttUrl);
  const lines = [
    'Smart Passage gateway',
    '',
    `  API and UI   ${f.httpUrl}  (OpenAPI: ${f.httpUrl}/api/v1/openapi.json)`,
    ...(f.ui === false ? ['  UI           not built: run npm run build, then start again (the API runs without it)'] : []),
    f.embeddedBroker ? `  MQTT broker  embedded on ${mqtt} (TCP_NODELAY)` : `  MQTT broker  ${mqtt} (SP_MQTT_URL)`,
    f.embeddedStore ? `  store        embedded, ${shown(f.dataDir)}/store.sqlite` : '  store        Redis (SP_REDIS_URL)',
    `  data dir     ${shown(f.dataDir)} (keys and demo secrets, mode 0600)`,
  ];
  if (f.admin !== undefined) lines.push(`  admin        ${f.admin} (SP_ADMIN_USER)`);
  const d = f.demo;
  if (d) {
    lines.push(`  demo         Södermalm district: 12 buildings, 40 doors, ${d.controllers} in-process reference controllers`, '', '  user          role        password');
    for (const u of d.users) lines.push(`  ${u.username.padEnd(13)} ${u.role.padEnd(11)} ${u.password}`);
    const dispatcher = d.users.find((u) => u.role === 'dispatcher');
    if (dispatcher) {
      lines.push(
        '',
        'Try it:',
        ...(f.ui === false ? [] : [`  open ${f.httpUrl}/ in a browser and log in as ${dispatcher.username} (or any user above), or with curl:`]),
        `  curl -s ${f.httpUrl}/api/v1/auth/login -H 'content-type: application/json' \\`,
        `       -d '{"username":"${dispatcher.username}","password":"${dispatcher.password}"}'`,
        '  (then send "authorization: Bearer <accessToken>"; README.md walks through a grant)',
      );
    }
  } else {
    lines.push('  demo         off (SP_DEMO=off, or external services configured)');
  }
  lines.push(...(f.notes.length > 0 ? ['', ...f.notes.map((n) => `note: ${n}`)] : []), '', 'Ctrl-C stops everything.', '');
  return lines.join('\n');
}

/** The port is taken: say which, and the two ways out. No stack trace: this is not a bug. */
export function portInUseMessage(host: string, port: number): string {
  const other = port < 65535 ? port + 1 : port - 1;
  const hostPart = host === '127.0.0.1' ? '' : `SP_MQTT_HOST=${host} `;
  // A wildcard listen address is not one to connect to.
  const reach = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return [
    `Smart Passage cannot start: port ${port} on ${host} is already in use (another MQTT broker, such as Mosquitto, is probably listening there).`,
    'Two ways out:',
    `  - run the embedded broker on another port:  ${hostPart}SP_MQTT_PORT=${other} npm start`,
    `  - or use the broker already running there:  SP_MQTT_URL=mqtt://${reach.includes(':') ? `[${reach}]` : reach}:${port} npm start`,
    '',
  ].join('\n');
}

/** An expected start failure as advice; anything else as its message. Never a stack trace. */
export function failureMessage(err: unknown, mqttUrl: string | undefined): string {
  if (err instanceof PortInUseError) return portInUseMessage(err.host, err.port);
  if (err instanceof PortNotAllowedError) {
    return `Smart Passage cannot start: not allowed to listen on ${err.host}:${err.port} (ports below 1024 need privileges).\nPick another: SP_MQTT_PORT=1884 npm start\n`;
  }
  if (err instanceof BrokerUnreachableError && mqttUrl !== undefined) {
    return [
      `Smart Passage cannot start: no MQTT broker answers at SP_MQTT_URL=${redactUrl(mqttUrl)} (${err.message}).`,
      'Start that broker, fix the URL, or leave SP_MQTT_URL unset to run the embedded broker (SP_MQTT_PORT picks its port).',
      '',
    ].join('\n');
  }
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string };
  if (e.code === 'EADDRINUSE' && e.syscall === 'listen') {
    return `Smart Passage cannot start: the HTTP port ${String(e.port)} on ${String(e.address)} is already in use.\nPick another: SP_PORT=${(e.port ?? 8080) + 1} npm start\n`;
  }
  const text = err instanceof Error ? err.message : String(err);
  const where = mqttUrl === undefined ? '' : ` (SP_MQTT_URL=${redactUrl(mqttUrl)}: is that broker running?)`;
  return `Smart Passage cannot start: ${text}${where}\n`;
}
