/**
 * esp-rfid's MQTT JSON, as its own documentation describes it (esprfid/esp-rfid README-MQTT.md,
 * "Commands received by ESP-RFID" and "Messages sent by ESP-RFID"; see BRIDGES.md for the
 * exact references). Written from that description, not from the firmware's code.
 *
 * - A device has a base topic `TOPIC` set in its web UI (with "auto-topic", the last 6 hex digits
 *   of its MAC are appended). Commands go to `TOPIC/cmd`; everything it says comes on `TOPIC/send`.
 * - Every command is a JSON object with `cmd` and `doorip`, the device's IP as a string: a device
 *   ignores a command whose `doorip` is not its own.
 * - `adduser` {uid, user, acctype, validsince, validuntil}: acctype "1" = Always, "0" = Disabled,
 *   "99" = Admin; validsince/validuntil are Unix epoch seconds. Answered `{type:"adduser", ip, hostname}`.
 * - `deletuid` {uid}: answered `{type:"deletuid", ip, hostname}`.
 * - `opendoor`: answered by a standard access message.
 * - `getuserlist`: answered by one `{command:"userfile", uid, user, acctype, validsince, validuntil}`
 *   message per user, with NO end marker (so the bridge waits for a quiet period).
 * - The device sends `{type:"boot", time, uptime, ip, hostname}` once connected,
 *   `{type:"heartbeat", time, uptime, ip, hostname}` every N s (default 180), and
 *   `{type:"access", time, isKnown:"true"|"false", access, username, uid, hostname}` when a tag is
 *   read; `access` is "Always"/"Admin"/"Disabled"/"Expired"/"Denied" (an array with several doors).
 */

/** acctype 1, "Always": the only access type the bridge ever sends. 99 (Admin) never. */
export const ACCTYPE_ALWAYS = '1';

export type EspRfidCommand =
  | { cmd: 'adduser'; doorip: string; uid: string; user: string; acctype: typeof ACCTYPE_ALWAYS; validsince: string; validuntil: string }
  | { cmd: 'deletuid'; doorip: string; uid: string }
  | { cmd: 'opendoor'; doorip: string }
  | { cmd: 'getuserlist'; doorip: string };

/** One user as `getuserlist` reports it. */
export interface EspRfidUser {
  uid: string;
  user: string;
  acctype: string;
  validsince: number;
  validuntil: number;
}

export type EspRfidMessage =
  | { kind: 'boot'; time: number | undefined; ip: string | undefined }
  | { kind: 'heartbeat'; time: number | undefined; ip: string | undefined }
  | { kind: 'ack'; of: 'adduser' | 'deletuid' | 'deletusers' }
  | { kind: 'userfile'; user: EspRfidUser }
  | { kind: 'access'; time: number | undefined; known: boolean; access: string; username: string; uid: string }
  | { kind: 'other' };

export function cmdTopic(base: string): string {
  return `${base}/cmd`;
}
export function sendTopic(base: string): string {
  return `${base}/send`;
}

const num = (v: unknown): number | undefined => {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) ? n : undefined;
};
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);

/** Read one message from `TOPIC/send`; anything unexpected is `other`, never an exception. */
export function parseEspRfidMessage(payload: Buffer | string): EspRfidMessage {
  let v: unknown;
  try {
    v = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
  } catch {
    return { kind: 'other' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { kind: 'other' };
  const o = v as Record<string, unknown>;
  if (o.command === 'userfile') {
    const uid = str(o.uid);
    if (uid === undefined) return { kind: 'other' };
    return {
      kind: 'userfile',
      user: { uid, user: str(o.user) ?? '', acctype: str(o.acctype) ?? '', validsince: num(o.validsince) ?? 0, validuntil: num(o.validuntil) ?? 0 },
    };
  }
  switch (o.type) {
    case 'boot':
    case 'heartbeat':
      return { kind: o.type, time: num(o.time), ip: str(o.ip) };
    case 'adduser':
    case 'deletuid':
    case 'deletusers':
      return { kind: 'ack', of: o.type };
    case 'access': {
      // With several doors on one device, `access` is an array; the bridge drives one door.
      const access = Array.isArray(o.access) ? str(o.access[0]) : str(o.access);
      return {
        kind: 'access',
        time: num(o.time),
        known: o.isKnown === 'true' || o.isKnown === true,
        access: access ?? '',
        username: str(o.username) ?? '',
        uid: (str(o.uid) ?? '').trim(),
      };
    }
    default:
      return { kind: 'other' };
  }
}

/** The access states esp-rfid reports for an open door. */
export function accessGranted(m: { known: boolean; access: string }): boolean {
  return m.known && (m.access === 'Always' || m.access === 'Admin' || m.access === 'Granted');
}
