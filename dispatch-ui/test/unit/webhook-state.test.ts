// The owner's webhook panel state against a fake Api injected through its constructor: no
// webhook (configured: false) reads as none; creating one keeps the secret to show once until dismissed;
// changing the URL keeps no secret; the log lines say delivered / retrying / failed.
import { describe, expect, it } from 'vitest';
import { ApiError, type Api, type RequestOptions } from '../../src/lib/api/client';
import { deliveryText, WebhookState, type WebhookDelivery } from '../../src/lib/state/webhook.svelte';

function fakeApi() {
  let hook: { orgId: string; url: string; createdAt: number; updatedAt: number } | undefined;
  const calls: string[] = [];
  const log: WebhookDelivery[] = [{ id: 'whd-1', event: 'access.granted', auditId: '1', state: 'delivered', attempts: [{ at: 1, status: 200, ms: 3 }], createdAt: 1, finishedAt: 1 }];
  const client = {
    get: (path: string, _o?: RequestOptions) => {
      calls.push(`GET ${path}`);
      if (path.endsWith('/deliveries')) return Promise.resolve({ items: log });
      return Promise.resolve(hook ? { ...hook, configured: true } : { orgId: 'org-1', configured: false });
    },
    put: (path: string, body: { url: string; rotateSecret?: boolean }) => {
      calls.push(`PUT ${path} ${JSON.stringify(body)}`);
      if (!body.url.startsWith('https://')) return Promise.reject(new ApiError(400, 'validation-failed', 'must be an https URL'));
      const fresh = !hook || body.rotateSecret === true;
      hook = { orgId: 'org-1', url: body.url, createdAt: 1, updatedAt: 2 };
      return Promise.resolve({ ...hook, ...(fresh ? { secret: 'whsec_once' } : {}) });
    },
    del: (path: string) => {
      calls.push(`DELETE ${path}`);
      hook = undefined;
      return Promise.resolve();
    },
  };
  return { api: client as unknown as Api, calls };
}

describe('WebhookState', () => {
  it('no webhook yet, then created: the secret is shown once, a URL change brings none, rotate brings a new one', async () => {
    const { api, calls } = fakeApi();
    const s = new WebhookState('org-1', api);
    await s.load();
    expect(s.webhook).toBeUndefined();
    expect(s.error).toBeUndefined();
    expect(s.deliveries).toEqual([]);

    expect(await s.save(' https://hooks.example/a ')).toBe(true);
    expect(calls).toContain('PUT /api/v1/organisations/org-1/webhook {"url":"https://hooks.example/a"}');
    expect(s.webhook?.url).toBe('https://hooks.example/a');
    expect(s.secret).toBe('whsec_once');
    expect(s.webhook).not.toHaveProperty('secret');
    s.dismissSecret();
    expect(s.secret).toBeUndefined();

    await s.save('https://hooks.example/b');
    expect(s.secret).toBeUndefined();
    await s.save('https://hooks.example/b', true);
    expect(s.secret).toBe('whsec_once');

    await s.refreshLog();
    expect(s.deliveries).toHaveLength(1);
    await s.remove();
    expect(s.webhook).toBeUndefined();
    expect(s.deliveries).toEqual([]);
  });

  it('a refused URL is an error, nothing changes', async () => {
    const { api } = fakeApi();
    const s = new WebhookState('org-1', api);
    expect(await s.save('http://insecure.example/')).toBe(false);
    expect(s.error).toMatch(/https/);
    expect(s.webhook).toBeUndefined();
  });
});

describe('deliveryText', () => {
  const d = (x: Partial<WebhookDelivery>): WebhookDelivery => ({ id: 'x', event: 'access.granted', auditId: '1', state: 'pending', attempts: [], createdAt: 0, ...x });
  it('says delivered, retrying with the wait, or failed with the count', () => {
    expect(deliveryText(d({ state: 'delivered', attempts: [{ at: 0, status: 500, ms: 1 }, { at: 1, status: 200, ms: 1 }] }), 0)).toBe('Delivered (200)');
    expect(deliveryText(d({ attempts: [{ at: 0, status: 500, ms: 1 }], nextAt: 4_000 }), 0)).toBe('Retrying (500) in 4 s');
    expect(deliveryText(d({ attempts: [{ at: 0, error: 'ECONNREFUSED', ms: 1 }], nextAt: 600_000 }), 0)).toBe('Retrying (ECONNREFUSED) in 10 min');
    expect(deliveryText(d({ state: 'failed', attempts: [{ at: 0, error: 'timeout', ms: 1 }] }), 0)).toBe('Failed after 1 attempt (timeout)');
    expect(deliveryText(d({}), 0)).toBe('Sending…');
  });
});
