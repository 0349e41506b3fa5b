/**
 * A controller's checks on what arrives on its own `sync` and `cmd` topics (PROTOCOL §4, §9):
 * topic, size, signature, audience, type for the topic, replay window, command expiry. One
 * implementation for the reference controller and for bridges that act as controllers.
 */
import { openMessage, type Opened } from '../envelope.js';
import type { TrustedKeys } from '../keys.js';
import { MAX_COMMAND_TTL_MS, MAX_PAYLOAD_BYTES, parseControllerTopic, TYPES_BY_TOPIC } from '../topics.js';

export interface InboundContext {
  /** This controller's id: the only audience it accepts. */
  ctrl: string;
  keys: TrustedKeys;
  now: number;
  /** The persisted replay window (PROTOCOL §4.4). */
  lastSeq: number;
  recentSeqs: readonly number[];
}

/**
 * Open a gateway message, or undefined for a topic that is not this controller's sync/cmd.
 * A rejected `bad-body` message is authentic and fresh: its `seq` is to be consumed, and the
 * gateway told (PROTOCOL §9) — `seq` carries it.
 */
export function openInbound(topic: string, payload: Uint8Array, c: InboundContext): (Opened & { seq?: number }) | undefined {
  const t = parseControllerTopic(topic);
  if (!t || t.ctrl !== c.ctrl || (t.leaf !== 'sync' && t.leaf !== 'cmd')) return undefined;
  const opened = openMessage(payload, {
    types: TYPES_BY_TOPIC[t.leaf],
    keys: c.keys,
    maxBytes: MAX_PAYLOAD_BYTES[t.leaf],
    ctrl: c.ctrl,
    now: c.now,
    replay: { highest: c.lastSeq, recent: c.recentSeqs },
    ...(t.leaf === 'cmd' ? { maxTtlMs: MAX_COMMAND_TTL_MS } : {}),
  });
  if (!opened.ok && opened.code === 'bad-body' && opened.id) {
    return { ...opened, seq: (JSON.parse(new TextDecoder().decode(payload)) as { seq: number }).seq };
  }
  return opened;
}
