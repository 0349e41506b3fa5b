/**
 * What the reference controller keeps across restarts (PROTOCOL §5.4, §6.3): the highest accepted
 * gateway seq (so a restart never accepts a replay), the applied grant set, and the backlog of
 * signed events not yet acknowledged by the broker (so a restart loses none).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { HeldGrant } from './decide.js';

export interface PersistedState {
  format: 1;
  ctrl: string;
  /** Highest accepted gateway seq, and the accepted ones within the replay window below it. */
  lastSeq: number;
  recentSeqs: number[];
  appliedVersion: number;
  grants: HeldGrant[];
  /** Signed `evt` payloads (JSON text) in the order they were made, oldest first. */
  backlog: string[];
  /** Offline codes used (PROTOCOL §2.6): one per (door, window), kept while the window is accepted. */
  spentCodes?: { door: string; window: number }[];
}

export interface ControllerStateStore {
  load(): PersistedState | undefined;
  save(state: PersistedState): void;
}

/** Keeps state in memory only: for large simulated fleets where a file per controller costs too much. */
export class MemoryStateStore implements ControllerStateStore {
  #state: PersistedState | undefined;
  load(): PersistedState | undefined {
    return this.#state === undefined ? undefined : structuredClone(this.#state);
  }
  save(state: PersistedState): void {
    this.#state = structuredClone(state);
  }
}

/**
 * A JSON file replaced atomically: write a temp file, fsync, rename. A crash leaves either the old
 * or the new state, never half of one.
 */
export class FileStateStore implements ControllerStateStore {
  readonly #path: string;
  constructor(path: string) {
    this.#path = path;
  }

  load(): PersistedState | undefined {
    let text: string;
    try {
      text = readFileSync(this.#path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const state = JSON.parse(text) as PersistedState;
    if (state.format !== 1) throw new Error(`${this.#path}: unknown state format ${String(state.format)}`);
    return { ...state, recentSeqs: state.recentSeqs ?? [] };
  }

  save(state: PersistedState): void {
    mkdirSync(dirname(this.#path), { recursive: true });
    const tmp = `${this.#path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(state));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.#path);
  }
}
