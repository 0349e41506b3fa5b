/**
 * The roster CSV (issue 8): RFC 4180 records (comma-separated; a field in double quotes may hold
 * commas, line breaks and `""` for a quote), CRLF or LF line ends, an optional UTF-8 BOM, blank
 * lines skipped. Then the roster's own columns, checked line by line so an import can report
 * every bad line at once and change nothing.
 *
 * Columns (a header line names them, any order, case-insensitive):
 *   externalId    required  the roster system's id for the person (unique within the agency)
 *   name          required  the person's name
 *   unitCallSign  optional  the unit they ride with; created in the agency when missing;
 *                           required when the person has tags
 *   tagUids       optional  PROTOCOL TagUid hex (2–16 bytes), several separated by `;`
 */
import { TAG_UID } from '../admin/tags.js';

export interface CsvRecord {
  /** 1-based line where the record starts (a quoted field may span lines). */
  line: number;
  fields: string[];
}

export interface LineError {
  /** 1-based line in the file; absent for an error about the whole roster. */
  line?: number;
  /** The column (or SCIM attribute) at fault, when one is. */
  field?: string;
  message: string;
}

/** Split RFC 4180 text into records. Errors: an unterminated quote, a stray quote. */
export function parseCsv(text: string): { records: CsvRecord[]; errors: LineError[] } {
  const src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const records: CsvRecord[] = [];
  const errors: LineError[] = [];
  let line = 1;
  let i = 0;
  while (i < src.length) {
    const start = line;
    const fields: string[] = [];
    let field = '';
    let bad: string | undefined;
    for (;;) {
      if (src[i] === '"' && field === '') {
        // A quoted field: up to the closing quote, `""` being one quote.
        i += 1;
        let closed = false;
        while (i < src.length) {
          const c = src[i]!;
          if (c === '"') {
            if (src[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i += 1;
            closed = true;
            break;
          }
          if (c === '\n') line += 1;
          field += c;
          i += 1;
        }
        if (!closed) {
          errors.push({ line: start, message: 'a quoted field is not closed' });
          return { records, errors };
        }
        const next = src[i];
        if (next !== undefined && next !== ',' && next !== '\r' && next !== '\n') bad ??= 'text after a closing quote';
      }
      // Up to the next comma or line end.
      while (i < src.length && src[i] !== ',' && src[i] !== '\n' && !(src[i] === '\r' && src[i + 1] === '\n')) {
        if (src[i] === '"') bad ??= 'a quote inside an unquoted field (quote the whole field and double the quote)';
        field += src[i];
        i += 1;
      }
      fields.push(field);
      field = '';
      if (src[i] === ',') {
        i += 1;
        continue;
      }
      break;
    }
    // The line end.
    if (src[i] === '\r') i += 1;
    if (src[i] === '\n') {
      i += 1;
      line += 1;
    }
    if (bad !== undefined) errors.push({ line: start, message: bad });
    else if (!(fields.length === 1 && fields[0]!.trim() === '')) records.push({ line: start, fields });
  }
  return { records, errors };
}

/** One person as a roster names them (a CSV line, a SCIM User). */
export interface MemberInput {
  line?: number;
  externalId: string;
  name: string;
  unitCallSign?: string;
  /** Upper-case, without repeats. */
  tagUids: string[];
  /** Default true; false suspends the member (SCIM `active`). */
  active?: boolean;
}

export const COLUMNS = ['externalId', 'name', 'unitCallSign', 'tagUids'] as const;
type Column = (typeof COLUMNS)[number];
/** Most members one import takes. */
export const MAX_MEMBERS = 10_000;

// As admin/common.ts Text(): no control characters and nothing invisible (zero-width, bidi, BOM).
// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const BAD_CHARS = /[\u0000-\u001F\u007F\u00AD\u200B-\u200F\u202A-\u202E\u2060-\u2069\uFEFF]/;

/** A one-line text value: trimmed, NFC, 1..max characters; or an error message. */
export function checkText(raw: string, max: number): { value: string } | { error: string } {
  const v = raw.trim().normalize('NFC');
  if (v === '') return { error: 'is empty' };
  if (v.length > max) return { error: `is longer than ${max} characters` };
  if (BAD_CHARS.test(v)) return { error: 'holds a control or invisible character' };
  return { value: v };
}

/** `;`-separated tag uids → upper-case, without repeats; or an error message naming the bad one. */
export function checkTagUids(raw: readonly string[]): { value: string[] } | { error: string } {
  const out: string[] = [];
  for (const part of raw) {
    const uid = part.trim().toUpperCase();
    if (uid === '') continue;
    if (!TAG_UID.test(uid)) return { error: `"${part.trim().slice(0, 40)}" is not a tag uid (2–16 bytes as hex)` };
    if (!out.includes(uid)) out.push(uid);
  }
  return { value: out };
}

/**
 * A roster CSV → members, or every line error. A file with any error yields no members to use:
 * the caller changes nothing (issue 8: all-or-nothing).
 */
export function parseRosterCsv(text: string): { members: MemberInput[]; errors: LineError[] } {
  const { records, errors } = parseCsv(text);
  const header = records[0];
  if (header === undefined) {
    if (errors.length === 0) errors.push({ line: 1, message: `no header line: expected ${COLUMNS.join(',')}` });
    return { members: [], errors };
  }
  const index = new Map<Column, number>();
  header.fields.forEach((name, i) => {
    const col = COLUMNS.find((c) => c.toLowerCase() === name.trim().toLowerCase());
    if (col === undefined) errors.push({ line: header.line, field: name.trim().slice(0, 40), message: `unknown column (expected ${COLUMNS.join(', ')})` });
    else if (index.has(col)) errors.push({ line: header.line, field: col, message: 'column named twice' });
    else index.set(col, i);
  });
  for (const need of ['externalId', 'name'] as const) if (!index.has(need)) errors.push({ line: header.line, field: need, message: 'required column missing' });
  if (errors.some((e) => e.line === header.line)) return { members: [], errors };
  if (records.length - 1 > MAX_MEMBERS) return { members: [], errors: [...errors, { message: `more than ${MAX_MEMBERS} members in one file` }] };

  const members: MemberInput[] = [];
  const seen = new Map<string, number>();
  for (const r of records.slice(1)) {
    if (r.fields.length !== header.fields.length) {
      errors.push({ line: r.line, message: `${r.fields.length} fields, the header has ${header.fields.length}` });
      continue;
    }
    const get = (c: Column): string => {
      const i = index.get(c);
      return i === undefined ? '' : r.fields[i]!;
    };
    const before = errors.length;
    const fail = (field: Column, message: string): void => void errors.push({ line: r.line, field, message });
    const ext = checkText(get('externalId'), 128);
    const name = checkText(get('name'), 120);
    if ('error' in ext) fail('externalId', `externalId ${ext.error}`);
    if ('error' in name) fail('name', `name ${name.error}`);
    let unit: string | undefined;
    if (get('unitCallSign').trim() !== '') {
      const u = checkText(get('unitCallSign'), 32);
      if ('error' in u) fail('unitCallSign', `unitCallSign ${u.error}`);
      else unit = u.value;
    }
    const tags = checkTagUids(get('tagUids').split(';'));
    if ('error' in tags) fail('tagUids', tags.error);
    if (errors.length > before || 'error' in ext || 'error' in name || 'error' in tags) continue;
    const first = seen.get(ext.value);
    if (first !== undefined) {
      fail('externalId', `externalId "${ext.value.slice(0, 40)}" already on line ${first}`);
      continue;
    }
    seen.set(ext.value, r.line);
    members.push({ line: r.line, externalId: ext.value, name: name.value, ...(unit !== undefined ? { unitCallSign: unit } : {}), tagUids: tags.value });
  }
  return { members, errors };
}
