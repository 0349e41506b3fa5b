/**
 * What `npm start` prints: what runs where and what to try next, and the advice for a start that
 * cannot get its port. Text only; main decides when to print it.
 */
import { relative } from 'node:path';
import { BrokerUnreachableError } from './adapters/broker-probe.js';
import { PortInUseError, PortNotAllowedError } from './adapters/embedded-broker.js';
import { redactUrl } from './config.js';

export interface BannerFacts {
  /** The URL clients use. */
  url: string;
  /** True when the embedded broker runs; false when SP_MQTT_URL names another broker. */
  embedded: boolean;
  demo?: {
    controllers: number;
    doors: number;
    firstId: string;
    lastId: string;
    rate: number;
    tags: readonly string[];
    fleetFile: string;
    stateDir: string;
  };
  notes: readonly string[];
}

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' || rel.startsWith('..') ? path : rel;
}

export function startBanner(f: BannerFacts): string {
  const url = redactUrl(f.url);
  const u = new URL(f.url);
  const lines = [
    'Smart Passage — development start (the gateway itself is not built yet)',
    '',
    f.embedded
      ? `  MQTT broker  embedded aedes on ${url} (TCP_NODELAY; no client auth yet: loopback only)`
      : `  MQTT broker  ${url} (SP_MQTT_URL; no embedded broker)`,
  ];
  const d = f.demo;
  if (d) {
    lines.push(
      `  demo fleet   ${d.controllers} reference controllers × ${d.doors} doors (${d.firstId} … ${d.lastId})`,
      `               responders present ${d.tags.length} tags at ${d.rate}/s; a stand-in dispatcher grants some for 60 s every 5 s`,
      `  fleet file   ${shown(d.fleetFile)} (mode 0600: holds private keys)`,
      `  state files  ${shown(d.stateDir)}/`,
      `  tags         ${d.tags.join(', ')}`,
      '',
      'Run the conformance suite against this broker and fleet:',
      `  npm run conformance -- --fleet ${shown(d.fleetFile)} --url ${url}`,
    );
  } else {
    lines.push('  demo fleet   off (SP_DEMO_CONTROLLERS=0)');
  }
  lines.push(
    'Watch the traffic:',
    `  mosquitto_sub -h ${u.hostname.replace(/^\[|\]$/g, '')} -p ${u.port || '1883'} -t 'sp/v1/#' -v`,
    ...(f.notes.length > 0 ? ['', ...f.notes.map((n) => `note: ${n}`)] : []),
    '',
    'Ctrl-C stops everything.',
    '',
  );
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
  const text = err instanceof Error ? err.message : String(err);
  const where = mqttUrl === undefined ? '' : ` (SP_MQTT_URL=${redactUrl(mqttUrl)}: is that broker running?)`;
  return `Smart Passage cannot start: ${text}${where}\n`;
}
