/**
 * The two text forms of an audit export (protocol/AUDIT.md §5): JSON Lines, and CSV for
 * spreadsheets. Pure, no I/O: the gateway's exporter writes lines with `jsonlLine` / `csvLine`
 * and `sp-audit-verify` reads them back with `CsvRowReader`, so both agree cell for cell.
 *
 * The CSV form carries, in its last column `json`, the very line the JSON Lines form would hold, so
 * a CSV export verifies exactly like a JSON Lines one. The other columns are for people; the
 * verifier recomputes them from `json` and reports any visible cell that differs (`csv-mismatch`).
 *
 * @example
 *   out.write(csvHeaderLine());
 *   for (const line of lines) out.write(csvLine(line)); // 'entry,42,building:bld-01,7,2025-…\r\n'
 */
import type { ExportLine } from './audit.js';

/** The CSV columns, in order (AUDIT.md §5.2). The first row of a CSV export names them. */
export const EXPORT_CSV_COLUMNS = [
  'record',
  'id',
  'chain',
  'seq',
  'at',
  'type',
  'actor',
  'buildingId',
  'doorId',
  'incidentId',
  'grantId',
  'unitId',
  'tagId',
  'controllerId',
  'reason',
  'hash',
  'json',
] as const;
export type ExportCsvColumn = (typeof EXPORT_CSV_COLUMNS)[number];

/** The entry fields shown as they are, one column each. */
const PLAIN_ENTRY_FIELDS = ['id', 'chain', 'type', 'buildingId', 'doorId', 'incidentId', 'grantId', 'unitId', 'tagId', 'controllerId', 'reason', 'hash'] as const;

/** One line of the JSON Lines form: the line object as `JSON.stringify` writes it, then LF. */
export function jsonlLine(line: ExportLine): string {
  return `${JSON.stringify(line)}\n`;
}

/** The first row of the CSV form: the column names, then CRLF (RFC 4180). */
export function csvHeaderLine(): string {
  return `${EXPORT_CSV_COLUMNS.join(',')}\r\n`;
}

/** One row of the CSV form: `csvCells`, quoted where RFC 4180 needs it, joined by commas, then CRLF. */
export function csvLine(line: ExportLine): string {
  return `${csvCells(line).map(csvQuote).join(',')}\r\n`;
}

/**
 * The cells of a CSV row before quoting, in `EXPORT_CSV_COLUMNS` order: the human columns (with
 * `guardFormula` applied) and `json` = `JSON.stringify(line)` untouched. Accepts any object, so the
 * verifier can recompute the cells of whatever a file holds.
 * @example csvCells(entryLine)[6] === 'user:usr-1 (dispatch)'
 */
export function csvCells(line: ExportLine | Record<string, unknown>): string[] {
  const o = line as Record<string, unknown>;
  const cells = new Map<ExportCsvColumn, string>();
  cells.set('record', cellText(o.record));
  switch (o.record) {
    case 'entry':
      for (const f of PLAIN_ENTRY_FIELDS) cells.set(f, cellText(o[f]));
      cells.set('seq', cellText(o.seq));
      cells.set('at', isoTime(o.at));
      cells.set('actor', actorText(o.actor));
      break;
    case 'checkpoint':
      cells.set('chain', cellText(o.chain));
      cells.set('seq', cellText(o.size));
      cells.set('at', isoTime(o.at));
      cells.set('actor', keyText(o.kid));
      cells.set('hash', cellText(o.head));
      break;
    case 'header': {
      const query = o.query as { chains?: unknown } | undefined;
      cells.set('chain', Array.isArray(query?.chains) ? query.chains.map(cellText).join(' ') : '');
      cells.set('at', isoTime(o.exportedAt));
      break;
    }
    case 'trailer':
      cells.set('at', isoTime(o.exportedAt));
      cells.set('actor', keyText(o.kid));
      break;
    default:
      break;
  }
  return EXPORT_CSV_COLUMNS.map((c) => (c === 'json' ? JSON.stringify(line) : guardFormula(cells.get(c) ?? '')));
}

/**
 * Who did it, for people: `user:usr-1 (dispatch)` (id, then the username at the time),
 * `controller:ctl-1`, `integration:int-3`, `system` (or `system:<id>`).
 */
export function actorText(actor: unknown): string {
  if (actor === null || typeof actor !== 'object' || Array.isArray(actor)) return cellText(actor);
  const a = actor as Record<string, unknown>;
  const base = a.id === undefined ? cellText(a.kind) : `${cellText(a.kind)}:${cellText(a.id)}`;
  return a.name === undefined ? base : `${base} (${cellText(a.name)})`;
}

/** ms epoch → ISO 8601 in UTC with milliseconds (`2025-11-28T11:40:00.000Z`); anything else as text. */
export function isoTime(ms: unknown): string {
  if (typeof ms === 'number' && Number.isFinite(ms) && Math.abs(ms) <= 8.64e15) return new Date(ms).toISOString();
  return cellText(ms);
}

function keyText(kid: unknown): string {
  return kid === undefined ? '' : `key:${cellText(kid)}`;
}

/** A value as cell text: strings as they are, numbers and booleans in JS form, absent as empty, the rest as JSON. */
function cellText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === undefined || v === null) return '';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v) ?? '';
}

/**
 * Spreadsheet formula injection (OWASP "CSV Injection"): a cell starting with `=`, `+`, `-`, `@`,
 * tab or CR could run as a formula in Excel or LibreOffice, so it gets a leading apostrophe,
 * which spreadsheets show as "text follows". Applied to the human columns only, never to `json`.
 * @example guardFormula('=HYPERLINK("x")') === `'=HYPERLINK("x")`
 */
export function guardFormula(cell: string): string {
  return /^[=+\-@\t\r]/.test(cell) ? `'${cell}` : cell;
}

/** RFC 4180: a cell holding `"`, `,`, CR or LF is wrapped in quotes, its quotes doubled. */
export function csvQuote(cell: string): string {
  return /[",\r\n]/.test(cell) ? `"${cell.replaceAll('"', '""')}"` : cell;
}

/**
 * Split one complete CSV row (without its line break) into cells (RFC 4180): quoted cells may hold
 * commas, doubled quotes and line breaks. Returns a message for a malformed row.
 * @example splitCsvRow('a,"b,""c""",') → ['a', 'b,"c"', '']
 */
export function splitCsvRow(row: string): string[] | { error: string } {
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    if (row.charCodeAt(i) === 0x22) {
      let value = '';
      let j = i + 1;
      for (;;) {
        const q = row.indexOf('"', j);
        if (q < 0) return { error: `unterminated quoted cell ${cells.length + 1}` };
        value += row.slice(j, q);
        if (row.charCodeAt(q + 1) === 0x22) {
          value += '"';
          j = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      cells.push(value);
      if (i === row.length) return cells;
      if (row.charCodeAt(i) !== 0x2c) return { error: `text after the closing quote of cell ${cells.length}` };
      i += 1;
      continue;
    }
    const comma = row.indexOf(',', i);
    const value = comma < 0 ? row.slice(i) : row.slice(i, comma);
    if (value.includes('"')) return { error: `a quote inside unquoted cell ${cells.length + 1}` };
    cells.push(value);
    if (comma < 0) return cells;
    i = comma + 1;
  }
}

/** A CSV row and the (1-based) line of the file it starts on. */
export interface CsvRow {
  line: number;
  cells: string[];
}

/**
 * Assembles CSV rows from physical lines, streaming: a quoted cell may span lines, so a row is
 * complete when its quotes balance. Feed it lines without their LF (a CR before the LF is kept
 * and dropped at the row's end, so CRLF and LF files both read). Blank rows are skipped.
 * @example
 *   const r = new CsvRowReader();
 *   r.push('a,"b', 1); // undefined: the quote is open
 *   r.push('c",d\r', 2); // { line: 1, cells: ['a', 'b\nc', 'd'] }
 */
export class CsvRowReader {
  #text = '';
  #start = 0;
  #quotes = 0;
  readonly #maxRow: number;

  constructor(opts: { maxRowChars?: number } = {}) {
    this.#maxRow = opts.maxRowChars ?? MAX_EXPORT_LINE_CHARS;
  }

  /** True while a quoted cell is open: the row continues on the next line. */
  get open(): boolean {
    return this.#quotes % 2 === 1;
  }

  /** The line the row being assembled started on (0 if none). */
  get startLine(): number {
    return this.#start;
  }

  /** One physical line; returns the row it completes, or undefined while a quoted cell is open. */
  push(line: string, lineNo: number): CsvRow | { line: number; error: string } | undefined {
    if (this.#quotes % 2 === 0) {
      this.#text = line;
      this.#start = lineNo;
      this.#quotes = 0;
    } else {
      this.#text += `\n${line}`;
    }
    for (let q = line.indexOf('"'); q >= 0; q = line.indexOf('"', q + 1)) this.#quotes += 1;
    if (this.#text.length > this.#maxRow) return { line: this.#start, error: `row longer than ${this.#maxRow} characters` };
    if (this.#quotes % 2 === 1) return undefined;
    const text = this.#text.endsWith('\r') ? this.#text.slice(0, -1) : this.#text;
    this.#text = '';
    this.#quotes = 0;
    if (text.trim() === '') return undefined;
    const cells = splitCsvRow(text);
    return Array.isArray(cells) ? { line: this.#start, cells } : { line: this.#start, error: cells.error };
  }
}

/** Longest line (or CSV row) a reader accepts: entries are small; this bounds memory on a hostile file. */
export const MAX_EXPORT_LINE_CHARS = 1 << 20;

/**
 * A whole CSV text as rows (header row included), for tests and small files; the verifier streams
 * instead. Returns a message for the first malformed row.
 */
export function parseCsvExport(text: string): CsvRow[] | { line: number; error: string } {
  const reader = new CsvRowReader();
  const rows: CsvRow[] = [];
  const lines = (text.startsWith('\ufeff') ? text.slice(1) : text).split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const [i, line] of lines.entries()) {
    const row = reader.push(line, i + 1);
    if (row === undefined) continue;
    if ('error' in row) return row;
    rows.push(row);
  }
  if (reader.open) return { line: reader.startLine, error: 'unterminated quoted cell at the end of the file' };
  return rows;
}
