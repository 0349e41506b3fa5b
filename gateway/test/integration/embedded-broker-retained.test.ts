// The embedded broker's retained messages (issue 7): a SUBSCRIBE of filters without wildcards is
// answered from an index by topic instead of a scan of every retained topic. What a subscriber
// receives must be what MQTT 3.1.1 §3.3.1.3 says either way: the retained message of each matching
// topic, none for a topic cleared by an empty retained publish, and wildcards still matching all.
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '@smart-passage/protocol';
import { EmbeddedBroker } from '../../src/adapters/embedded-broker.js';

const ends: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const end of ends.splice(0).reverse()) await end();
});

async function client(url: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  ends.push(() => c.endAsync());
  return c;
}

/** The retained messages a new subscription to `filters` gets, by topic (waits until none came for 150 ms). */
async function retainedFor(url: string, filters: string[]): Promise<Record<string, string>> {
  const c = await client(url);
  const got: Record<string, string> = {};
  let last = Date.now();
  c.on('message', (topic, payload, packet) => {
    if (packet.retain) got[topic] = payload.toString();
    last = Date.now();
  });
  await c.subscribeAsync(filters, { qos: 1 });
  while (Date.now() - last < 150) await new Promise((r) => setTimeout(r, 25));
  return got;
}

describe('EmbeddedBroker: retained messages', () => {
  it('gives a subscription without wildcards its topics’ retained messages, a wildcard one every match, and nothing for a cleared topic', async () => {
    const broker = new EmbeddedBroker({ host: '127.0.0.1', port: 0, logger: silentLogger });
    await broker.start();
    ends.push(() => broker.stop());
    const pub = await client(broker.url);
    await pub.publishAsync('sp/v1/c/ctl-1/state', 'one', { qos: 1, retain: true });
    await pub.publishAsync('sp/v1/c/ctl-2/state', 'two', { qos: 1, retain: true });
    await pub.publishAsync('sp/v1/c/ctl-3/state', 'three', { qos: 1, retain: true });
    await pub.publishAsync('sp/v1/c/ctl-3/state', 'three again', { qos: 1, retain: true }); // replaces
    await pub.publishAsync('sp/v1/c/ctl-2/state', '', { qos: 1, retain: true }); // clears

    expect(await retainedFor(broker.url, ['sp/v1/c/ctl-1/state'])).toEqual({ 'sp/v1/c/ctl-1/state': 'one' });
    expect(await retainedFor(broker.url, ['sp/v1/c/ctl-2/state', 'sp/v1/c/ctl-3/state', 'sp/v1/c/ctl-9/state'])).toEqual({ 'sp/v1/c/ctl-3/state': 'three again' });
    expect(await retainedFor(broker.url, ['sp/v1/c/+/state'])).toEqual({ 'sp/v1/c/ctl-1/state': 'one', 'sp/v1/c/ctl-3/state': 'three again' });
    expect(await retainedFor(broker.url, ['sp/v1/c/ctl-1/state', 'sp/v1/c/ctl-3/#'])).toEqual({ 'sp/v1/c/ctl-1/state': 'one', 'sp/v1/c/ctl-3/state': 'three again' });
  });
});
