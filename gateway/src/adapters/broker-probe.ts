/**
 * One MQTT connect to an external broker (SP_MQTT_URL) before anything relies on it: a wrong
 * URL or a stopped broker is reported at once, in a sentence, rather than as controllers retrying
 * in silence (DESIGN §10: the gateway reconnects later, but a start against nothing is a mistake).
 */
import { connectMqtt } from '@smart-passage/protocol/controller';

export class BrokerUnreachableError extends Error {
  readonly code = 'broker-unreachable';
  constructor(message: string) {
    super(message);
    this.name = 'BrokerUnreachableError';
  }
}

/** Resolve once a CONNACK arrives; reject with BrokerUnreachableError otherwise. */
export async function probeBroker(url: string, timeoutMs = 5_000): Promise<void> {
  const client = connectMqtt({ url, clientId: `sp-probe-${process.pid}-${Date.now().toString(36)}`, reconnectPeriod: 0, connectTimeout: timeoutMs });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new BrokerUnreachableError(`no MQTT answer within ${timeoutMs / 1000} s`)), timeoutMs);
      client.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      client.once('error', (err) => {
        clearTimeout(timer);
        // The probe has no account: a broker that refuses it (CONNACK 4 bad credentials, 5 not
        // authorised) has answered, which is all this checks. The gateway's own connect, with its
        // account, reports a wrong username or password.
        const code = (err as { code?: unknown }).code;
        if (code === 4 || code === 5) resolve();
        else reject(new BrokerUnreachableError(err.message));
      });
      client.once('close', () => {
        clearTimeout(timer);
        reject(new BrokerUnreachableError('connection closed before the broker answered'));
      });
    });
  } finally {
    client.end(true);
  }
}
