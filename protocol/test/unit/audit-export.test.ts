// The CSV and JSON Lines forms of an audit export (AUDIT.md §5): cells, quoting, formula guard, and
// reading rows back, including quoted cells that span lines.
import { describe, expect, it } from 'vitest';
import {
  AUDIT_EXPORT_FORMAT,
  CsvRowReader,
  EXPORT_CSV_COLUMNS,
  actorText,
  csvCells,
  csvHeaderLine,
  csvLine,
  csvQuote,
  guardFormula,
  isoTime,
  jsonlLine,
  parseCsvExport,
  splitCsvRow,
  type ExportLine,
} from '../../src/index.js';

const entry: ExportLine = {
  record: 'entry',
  v: 1,
  chain: 'building:bld-01',
  seq: 7,
  at: 1_764_330_000_000,
  type: 'access.denied',
  actor: { kind: 'controller', id: 'ctl-7' },
  buildingId: 'bld-01',
  doorId: 'floor-3',
  tagId: '04A1B2C3',
  controllerId: 'ctl-7',
  reason: '-1+1',
  id: '1042',
  hash: 'ab'.repeat(32),
};

describe('CSV cells', () => {
  it('has the columns of AUDIT.md §5.2 and a CRLF header row', () => {
    expect(csvHeaderLine()).toBe('record,id,chain,seq,at,type,actor,buildingId,doorId,incidentId,grantId,unitId,tagId,controllerId,reason,hash,json\r\n');
    expect(EXPORT_CSV_COLUMNS.at(-1)).toBe('json');
  });

  it('writes an entry row: ISO time, actor text, guarded reason, untouched json, CRLF', () => {
    const cells = csvCells(entry);
    expect(Object.fromEntries(EXPORT_CSV_COLUMNS.map((c, i) => [c, cells[i]]))).toEqual({
      record: 'entry',
      id: '1042',
      chain: 'building:bld-01',
      seq: '7',
      at: '2025-11-28T11:40:00.000Z',
      type: 'access.denied',
      actor: 'controller:ctl-7',
      buildingId: 'bld-01',
      doorId: 'floor-3',
      incidentId: '',
      grantId: '',
      unitId: '',
      tagId: '04A1B2C3',
      controllerId: 'ctl-7',
      reason: "'-1+1",
      hash: 'ab'.repeat(32),
      json: JSON.stringify(entry),
    });
    const line = csvLine(entry);
    expect(line.endsWith('\r\n')).toBe(true);
    expect(line.startsWith("entry,1042,building:bld-01,7,2025-11-28T11:40:00.000Z,access.denied,controller:ctl-7,bld-01,floor-3,,,,04A1B2C3,ctl-7,'-1+1,")).toBe(true);
    expect(line).toContain(`"${JSON.stringify(entry).replaceAll('"', '""')}"`);
  });

  it('writes checkpoint, header and trailer rows', () => {
    const cp: ExportLine = { record: 'checkpoint', v: 1, chain: 'system', size: 9, head: 'cd'.repeat(32), at: 0, kid: 'k1', sig: 'x' };
    expect(csvCells(cp).slice(0, 16)).toEqual(['checkpoint', '', 'system', '9', '1970-01-01T00:00:00.000Z', '', 'key:k1', '', '', '', '', '', '', '', '', 'cd'.repeat(32)]);
    const header: ExportLine = { record: 'header', format: AUDIT_EXPORT_FORMAT, exportedAt: 0, query: { chains: ['building:a', 'system'] }, keys: [] };
    expect(csvCells(header).slice(0, 5)).toEqual(['header', '', 'building:a system', '', '1970-01-01T00:00:00.000Z']);
    const trailer: ExportLine = { record: 'trailer', v: 1, format: AUDIT_EXPORT_FORMAT, exportedAt: 0, entries: 0, chains: [], kid: 'k1', sig: 'x' };
    expect(csvCells(trailer).slice(4, 7)).toEqual(['1970-01-01T00:00:00.000Z', '', 'key:k1']);
  });

  it('shows actors as kind:id (name)', () => {
    expect(actorText({ kind: 'user', id: 'usr-1', name: 'dispatch' })).toBe('user:usr-1 (dispatch)');
    expect(actorText({ kind: 'controller', id: 'ctl-1' })).toBe('controller:ctl-1');
    expect(actorText({ kind: 'integration', id: 'cad-1' })).toBe('integration:cad-1');
    expect(actorText({ kind: 'system' })).toBe('system');
    expect(actorText({ kind: 'system', id: 'scheduler' })).toBe('system:scheduler');
    expect(actorText(undefined)).toBe('');
  });

  it('guards every formula-starting character, in human columns only', () => {
    for (const c of ['=', '+', '-', '@', '\t', '\r']) expect(guardFormula(`${c}SUM(A1)`)).toBe(`'${c}SUM(A1)`);
    for (const s of ['SUM', ' =x', "'=x", '', '1-2']) expect(guardFormula(s)).toBe(s);
    const evil = { ...entry, reason: '@cmd', doorId: '=1+1', tagId: '+31' } as ExportLine;
    const cells = csvCells(evil);
    expect([cells[8], cells[12], cells[14]]).toEqual(["'=1+1", "'+31", "'@cmd"]);
    expect(cells[16]).toBe(JSON.stringify(evil));
  });

  it('quotes what RFC 4180 needs quoted', () => {
    expect(csvQuote('plain')).toBe('plain');
    expect(csvQuote('a,b')).toBe('"a,b"');
    expect(csvQuote('say "hi"')).toBe('"say ""hi"""');
    expect(csvQuote('two\nlines')).toBe('"two\nlines"');
    expect(csvQuote('cr\r')).toBe('"cr\r"');
  });

  it('writes times as ISO 8601 and anything else as text', () => {
    expect(isoTime(1_764_330_000_123)).toBe('2025-11-28T11:40:00.123Z');
    expect(isoTime('soon')).toBe('soon');
    expect(isoTime(1e300)).toBe('1e+300');
  });

  it('writes a JSON line with LF', () => {
    expect(jsonlLine(entry)).toBe(`${JSON.stringify(entry)}\n`);
  });
});

describe('reading CSV back', () => {
  it('splits rows with quoted commas, quotes and empty cells', () => {
    expect(splitCsvRow('a,"b,""c""",')).toEqual(['a', 'b,"c"', '']);
    expect(splitCsvRow('')).toEqual(['']);
    expect(splitCsvRow('"",x')).toEqual(['', 'x']);
    expect(splitCsvRow('a"b')).toEqual({ error: 'a quote inside unquoted cell 1' });
    expect(splitCsvRow('"a"b')).toEqual({ error: 'text after the closing quote of cell 1' });
    expect(splitCsvRow('"a')).toEqual({ error: 'unterminated quoted cell 1' });
  });

  it('assembles a row whose quoted cell spans lines, keeping CR, LF and CRLF inside it', () => {
    const r = new CsvRowReader();
    expect(r.push('a,"one\r', 1)).toBeUndefined();
    expect(r.open).toBe(true);
    expect(r.push('two\rthree', 2)).toBeUndefined();
    expect(r.push('four",b\r', 3)).toEqual({ line: 1, cells: ['a', 'one\r\ntwo\rthree\nfour', 'b'] });
    expect(r.push('', 4)).toBeUndefined();
    expect(r.push('c,d', 5)).toEqual({ line: 5, cells: ['c', 'd'] });
  });

  it('round-trips lines written by csvLine, whatever their text', () => {
    const odd = { ...entry, reason: 'a "quoted", \r\nmulti-line\rreason\n', doorId: '\ttab' } as ExportLine;
    const rows = parseCsvExport(csvHeaderLine() + csvLine(entry) + csvLine(odd));
    if (!Array.isArray(rows)) throw new Error(rows.error);
    expect(rows.map((r) => r.line)).toEqual([1, 2, 3]);
    expect(rows[0]!.cells).toEqual([...EXPORT_CSV_COLUMNS]);
    expect(rows[1]!.cells).toEqual(csvCells(entry));
    expect(rows[2]!.cells).toEqual(csvCells(odd));
    expect(JSON.parse(rows[2]!.cells[16]!)).toEqual(odd);
  });

  it('reports a quote left open at the end, and bounds a row', () => {
    expect(parseCsvExport('a,"b\r\n')).toEqual({ line: 1, error: 'unterminated quoted cell at the end of the file' });
    const r = new CsvRowReader({ maxRowChars: 10 });
    expect(r.push('"0123456789', 1)).toEqual({ line: 1, error: 'row longer than 10 characters' });
  });
});
