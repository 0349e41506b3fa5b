// Gateway configuration from SP_ environment variables: defaults, every problem at once, notes.
import { describe, expect, it } from 'vitest';
import { loadConfig, redactUrl } from '../../src/config.js';
import { portInUseMessage } from '../../src/banner.js';

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment (empty values count as unset)', () => {
    expect(loadConfig({ SP_MQTT_PORT: '' })).toEqual({
      ok: true,
      notes: [],
      config: {
        mqttUrl: undefined,
        mqttHost: '127.0.0.1',
        mqttPort: 1883,
        dataDir: './data',
        demoControllers: 15,
        demoDoors: 3,
        demoRate: 2,
        logLevel: 'info',
      },
    });
  });

  it('reads every setting', () => {
    const r = loadConfig({
      SP_MQTT_HOST: '0.0.0.0', SP_MQTT_PORT: '1884', SP_DATA_DIR: '/var/lib/sp', SP_DEMO_CONTROLLERS: '0',
      SP_DEMO_DOORS: '5', SP_DEMO_RATE: '0.5', SP_LOG_LEVEL: 'debug',
    });
    expect(r).toMatchObject({ ok: true, config: { mqttHost: '0.0.0.0', mqttPort: 1884, dataDir: '/var/lib/sp', demoControllers: 0, demoDoors: 5, demoRate: 0.5, logLevel: 'debug' } });
  });

  it('reports every problem at once', () => {
    expect(loadConfig({ SP_MQTT_PORT: 'abc', SP_DEMO_CONTROLLERS: '-1', SP_DEMO_DOORS: '65', SP_MQTT_URL: 'http://x', SP_LOG_LEVEL: 'loud' })).toEqual({
      ok: false,
      problems: [
        "SP_MQTT_URL must be an mqtt:// or mqtts:// URL such as mqtt://127.0.0.1:1883, got 'http://x'",
        "SP_MQTT_PORT must be a whole number from 0 to 65535, got 'abc'",
        'SP_DEMO_CONTROLLERS must be from 0 to 10000, got -1',
        'SP_DEMO_DOORS must be from 1 to 64, got 65',
        "SP_LOG_LEVEL must be one of debug|info|warn|error, got 'loud'",
      ],
    });
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
