/**
 * The admin's roster import (issue 8): pick a CSV, preview the plan (a dry run: nothing changes),
 * then apply exactly what was previewed. Apply is offered only for a preview without errors of the
 * same file, agency and mode; any change to those drops the preview. A file with bad lines is
 * refused by the gateway as a whole (422 `policy-violation`, `details.errors`), shown per line.
 */
import { api, ApiError, type Api } from '../api/client';
import { errorText } from '../logic/format';

export type RosterMode = 'sync' | 'merge';

export interface RosterLineError {
  line?: number;
  field?: string;
  message: string;
}

export interface RosterPlanRow {
  line?: number;
  externalId: string;
  name: string;
  action: 'create' | 'update' | 'remove' | 'unchanged';
  unitCallSign?: string;
  tagUids: string[];
  active: boolean;
  blockTagUids: string[];
  notes: string[];
}

export interface RosterPlan {
  agencyId: string;
  mode: RosterMode;
  applied: boolean;
  counts: { create: number; update: number; remove: number; unchanged: number };
  unitsToCreate: string[];
  tagsToCreate: string[];
  tagsToBlock: string[];
  rows: RosterPlanRow[];
  errors: RosterLineError[];
}

/** Largest file the panel sends (the gateway takes 1 MB). */
export const MAX_ROSTER_BYTES = 1024 * 1024;

/** "Line 4, tagUids: …" */
export function lineErrorText(e: RosterLineError): string {
  const where = [e.line !== undefined ? `Line ${e.line}` : undefined, e.field].filter(Boolean).join(', ');
  return where ? `${where}: ${e.message}` : e.message;
}

export class RosterImportState {
  #agencyId = $state('');
  #mode = $state<RosterMode>('merge');
  #fileName = $state<string | undefined>(undefined);
  #csv = $state<string | undefined>(undefined);
  #preview = $state<RosterPlan | undefined>(undefined);
  #result = $state<RosterPlan | undefined>(undefined);
  #busy = $state<'preview' | 'apply' | undefined>(undefined);
  #error = $state<string | undefined>(undefined);
  #lineErrors = $state<RosterLineError[]>([]);
  readonly #api: Api;

  constructor(client: Api = api) {
    this.#api = client;
  }

  get agencyId(): string {
    return this.#agencyId;
  }
  get mode(): RosterMode {
    return this.#mode;
  }
  get fileName(): string | undefined {
    return this.#fileName;
  }
  get preview(): RosterPlan | undefined {
    return this.#preview;
  }
  /** The plan the gateway applied last. */
  get result(): RosterPlan | undefined {
    return this.#result;
  }
  get busy(): 'preview' | 'apply' | undefined {
    return this.#busy;
  }
  get error(): string | undefined {
    return this.#error;
  }
  /** Bad lines, from a preview or from a refused apply. */
  get lineErrors(): RosterLineError[] {
    return this.#lineErrors;
  }
  get canPreview(): boolean {
    return this.#agencyId !== '' && this.#csv !== undefined && this.#busy === undefined;
  }
  /** A clean preview of the current file, agency and mode. */
  get canApply(): boolean {
    return this.#preview !== undefined && this.#preview.errors.length === 0 && this.#busy === undefined;
  }

  #reset(): void {
    this.#preview = undefined;
    this.#lineErrors = [];
    this.#error = undefined;
  }

  setAgency(id: string): void {
    this.#agencyId = id;
    this.#reset();
  }

  setMode(mode: RosterMode): void {
    this.#mode = mode;
    this.#reset();
  }

  /** A picked file's text (the component reads it). */
  setFile(name: string, text: string): void {
    this.#reset();
    this.#result = undefined;
    if (new TextEncoder().encode(text).length > MAX_ROSTER_BYTES) {
      this.#fileName = undefined;
      this.#csv = undefined;
      this.#error = `${name} is larger than 1 MB`;
      return;
    }
    this.#fileName = name;
    this.#csv = text;
  }

  #path(): string {
    return `/api/v1/agencies/${encodeURIComponent(this.#agencyId)}/roster`;
  }

  async runPreview(): Promise<void> {
    if (!this.canPreview || this.#csv === undefined) return;
    this.#reset();
    this.#busy = 'preview';
    try {
      const plan = await this.#api.postCsv<RosterPlan>(this.#path(), this.#csv, { query: { mode: this.#mode, dryRun: true } });
      this.#preview = plan;
      this.#lineErrors = plan.errors;
    } catch (err) {
      this.#error = errorText(err);
    } finally {
      this.#busy = undefined;
    }
  }

  /** Apply the previewed file; true when the gateway applied it. */
  async apply(): Promise<boolean> {
    if (!this.canApply || this.#csv === undefined) return false;
    this.#busy = 'apply';
    this.#error = undefined;
    try {
      this.#result = await this.#api.postCsv<RosterPlan>(this.#path(), this.#csv, { query: { mode: this.#mode } });
      this.#preview = undefined;
      this.#lineErrors = [];
      return true;
    } catch (err) {
      // The roster changed between preview and apply: the gateway refused the file as a whole.
      const lines = err instanceof ApiError && err.code === 'policy-violation' ? (err.details as { errors?: RosterLineError[] } | undefined)?.errors : undefined;
      if (lines) this.#lineErrors = lines;
      this.#preview = undefined;
      this.#error = errorText(err);
      return false;
    } finally {
      this.#busy = undefined;
    }
  }
}
