// Issue 8: the roster CSV reader — RFC 4180 quoting, BOM, CRLF — and its per-line checks.
import { describe, expect, it } from 'vitest';
import { parseCsv, parseRosterCsv } from '../../../src/features/roster/csv.js';

describe('parseCsv', () => {
  it('reads quoted fields with commas, doubled quotes and line breaks, and numbers lines from the record start', () => {
    const { records, errors } = parseCsv('a,b,c\r\n"x, y","say ""hi""","two\nlines"\r\n\r\nlast,,\n');
    expect(errors).toEqual([]);
    expect(records).toEqual([
      { line: 1, fields: ['a', 'b', 'c'] },
      { line: 2, fields: ['x, y', 'say "hi"', 'two\nlines'] },
      { line: 5, fields: ['last', '', ''] },
    ]);
  });

  it('drops a leading BOM and takes a last line without a line end', () => {
    expect(parseCsv('\uFEFFid,name\n1,A').records).toEqual([
      { line: 1, fields: ['id', 'name'] },
      { line: 2, fields: ['1', 'A'] },
    ]);
  });

  it('reports an unclosed quote and stray quotes by line', () => {
    expect(parseCsv('a\n"open\n').errors).toEqual([{ line: 2, message: 'a quoted field is not closed' }]);
    const { records, errors } = parseCsv('a,b\nx"y,z\n"q"r,s\nok,1\n');
    expect(errors.map((e) => e.line)).toEqual([2, 3]);
    expect(records.map((r) => r.line)).toEqual([1, 4]);
  });
});

describe('parseRosterCsv', () => {
  it('maps columns in any order, case-insensitively; normalises uids; unit optional without tags', () => {
    const { members, errors } = parseRosterCsv('TagUids,NAME,externalid,unitCallSign\r\n"a1b2c3d4; A1B2C3D5;a1b2c3d4",  Anna  ,E1,RTJ 2310\r\n,Bo,E2,\r\n');
    expect(errors).toEqual([]);
    expect(members).toEqual([
      { line: 2, externalId: 'E1', name: 'Anna', unitCallSign: 'RTJ 2310', tagUids: ['A1B2C3D4', 'A1B2C3D5'] },
      { line: 3, externalId: 'E2', name: 'Bo', tagUids: [] },
    ]);
  });

  it('reports every bad line with its number and column', () => {
    const csv = [
      'externalId,name,unitCallSign,tagUids',
      'E1,Anna,RTJ 1,A1B2C3D4', // 2 ok
      'E2,,RTJ 1,', // 3 no name
      'E3,Cem,RTJ 1,ABC', // 4 odd hex
      'E4,Dag', // 5 too few fields
      'E1,Eva,RTJ 1,', // 6 repeated id
      'E5,Fi\u200Bn,RTJ 1,', // 7 invisible character
      `E6,${'x'.repeat(121)},,`, // 8 name too long
    ].join('\n');
    const { errors } = parseRosterCsv(csv);
    expect(errors.map((e) => [e.line, e.field])).toEqual([
      [3, 'name'],
      [4, 'tagUids'],
      [5, undefined],
      [6, 'externalId'],
      [7, 'name'],
      [8, 'name'],
    ]);
    expect(errors[3]?.message).toMatch(/already on line 2/);
  });

  it('checks the header: unknown, repeated and missing columns, and an empty file', () => {
    const unknown = parseRosterCsv('externalId,name,phone\n').errors;
    expect(unknown.map((e) => [e.line, e.field])).toEqual([[1, 'phone']]);
    expect(unknown[0]?.message).toMatch(/unknown column/);
    expect(parseRosterCsv('externalId,externalId,name\n').errors[0]?.message).toBe('column named twice');
    expect(parseRosterCsv('name\nA\n').errors).toEqual([{ line: 1, field: 'externalId', message: 'required column missing' }]);
    expect(parseRosterCsv('').errors[0]?.message).toMatch(/no header line/);
    expect(parseRosterCsv('\uFEFF\r\n').errors[0]?.message).toMatch(/no header line/);
  });
});
