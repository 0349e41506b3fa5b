// The admin's roster import panel state against a fake Api injected through its constructor:
// preview is a dry run of the picked file; apply is offered only after a clean preview of the same
// file, agency and mode; bad lines are shown by number; a refused apply shows the gateway's lines.
import { describe, expect, it } from 'vitest';
import { ApiError, type Api, type RequestOptions } from '../../src/lib/api/client';
import { lineErrorText, MAX_ROSTER_BYTES, RosterImportState, type RosterPlan } from '../../src/lib/state/roster.svelte';

const plan = (o: Partial<RosterPlan> = {}): RosterPlan => ({
  agencyId: 'ag-fire',
  mode: 'sync',
  applied: false,
  counts: { create: 1, update: 0, remove: 1, unchanged: 0 },
  unitsToCreate: [],
  tagsToCreate: ['A1B2C3D4'],
  tagsToBlock: ['F00DF00D'],
  rows: [],
  errors: [],
  ...o,
});

function fakeApi(answer: (csv: string, dryRun: boolean) => Promise<RosterPlan>) {
  const calls: string[] = [];
  const client = {
    postCsv: (path: string, csv: string, o: RequestOptions = {}) => {
      calls.push(`${path} ${JSON.stringify(o.query)} ${csv.length}`);
      return answer(csv, o.query?.['dryRun'] === true);
    },
  };
  return { api: client as unknown as Api, calls };
}

describe('RosterImportState', () => {
  it('previews as a dry run, then applies the same file; a change of mode drops the preview', async () => {
    const { api, calls } = fakeApi((_csv, dry) => Promise.resolve(plan({ applied: !dry })));
    const s = new RosterImportState(api);
    expect(s.canPreview).toBe(false);
    s.setAgency('ag-fire');
    s.setMode('sync');
    s.setFile('roster.csv', 'externalId,name\nE1,Anna\n');
    expect(s.canPreview).toBe(true);
    expect(s.canApply).toBe(false);
    await s.runPreview();
    expect(calls).toEqual(['/api/v1/agencies/ag-fire/roster {"mode":"sync","dryRun":true} 24']);
    expect(s.preview?.tagsToBlock).toEqual(['F00DF00D']);
    expect(s.canApply).toBe(true);

    s.setMode('merge');
    expect(s.preview).toBeUndefined();
    expect(s.canApply).toBe(false);
    expect(await s.apply()).toBe(false);
    expect(calls).toHaveLength(1);

    await s.runPreview();
    expect(await s.apply()).toBe(true);
    expect(calls[2]).toBe('/api/v1/agencies/ag-fire/roster {"mode":"merge"} 24');
    expect(s.result?.applied).toBe(true);
    expect(s.preview).toBeUndefined();
  });

  it('a preview with bad lines shows them and offers no apply; a refused apply shows the gateway’s lines', async () => {
    let refuse = false;
    const { api } = fakeApi((_csv, dry) => {
      if (dry) return Promise.resolve(plan({ errors: refuse ? [] : [{ line: 3, field: 'tagUids', message: '"XYZ" is not a tag uid' }] }));
      return Promise.reject(new ApiError(422, 'policy-violation', 'the roster has 1 bad line; nothing was changed', { errors: [{ line: 2, field: 'tagUids', message: 'tag A1B2C3D4 belongs to another agency' }] }));
    });
    const s = new RosterImportState(api);
    s.setAgency('ag-fire');
    s.setFile('r.csv', 'x');
    await s.runPreview();
    expect(s.lineErrors.map(lineErrorText)).toEqual(['Line 3, tagUids: "XYZ" is not a tag uid']);
    expect(s.canApply).toBe(false);

    refuse = true;
    await s.runPreview();
    expect(s.canApply).toBe(true);
    expect(await s.apply()).toBe(false);
    expect(s.lineErrors.map(lineErrorText)).toEqual(['Line 2, tagUids: tag A1B2C3D4 belongs to another agency']);
    expect(s.error).toMatch(/nothing was changed/);
    expect(s.canApply).toBe(false);
  });

  it('refuses a file over 1 MB without sending it', () => {
    const { api, calls } = fakeApi(() => Promise.resolve(plan()));
    const s = new RosterImportState(api);
    s.setAgency('ag-fire');
    s.setFile('big.csv', 'x'.repeat(MAX_ROSTER_BYTES + 1));
    expect(s.error).toMatch(/larger than 1 MB/);
    expect(s.canPreview).toBe(false);
    expect(calls).toEqual([]);
  });
});
