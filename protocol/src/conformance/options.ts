/** What `runConformance` is told: where the controller is, its keys, and the test bench hooks. */
import type { Logger } from '../log.js';

/** Ways a test bench can act on the controller; each unlocks the checks that need it. */
export interface ConformanceHooks {
  /** Drop the controller's connection without DISCONNECT (power cut), so the broker sends its will. */
  crash?: () => Promise<void>;
  /** Stop the controller process or instance and start it again (it keeps its persisted state). */
  restart?: () => Promise<void>;
  /** Cut the controller off the broker while it keeps running. */
  goOffline?: () => Promise<void>;
  /** Let it reconnect. */
  goOnline?: () => Promise<void>;
  /** Present a tag at the reader of `door`. */
  presentTag?: (door: string, uid: string) => void | Promise<void>;
}

/** The controller under test, a gateway key it trusts, and the test bench. Never logged or echoed. */
export interface ConformanceOptions {
  /** `mqtt://host:port` or `mqtts://…` */
  url: string;
  username?: string;
  password?: string;
  controllerId: string;
  /** The kid the controller signs under. */
  controllerKid: string;
  /** base64url of the controller's raw Ed25519 public key (as registered at provisioning). */
  controllerPublicKey: string;
  /** A gateway key the controller trusts: its kid and base64url 32-byte seed. */
  gatewayKey: { kid: string; seed: string };
  /** A door ref on the controller. It is pulsed and held open briefly during the run. */
  door: string;
  /** A second door ref: enables the wrong-door check. */
  otherDoor?: string;
  /** UID of the test tag (upper-case hex); granted at `door` for the run. */
  tag?: string;
  hooks?: ConformanceHooks;
  /** How long to wait for any one reply or event; default 3000 ms. */
  timeoutMs?: number;
  /** How long a restart (or a reconnect after a crash) may take; default 30 s. */
  restartTimeoutMs?: number;
  log?: Logger;
}

/** The tag the suite grants when none is given. */
export const DEFAULT_TEST_TAG = '5A5A0000C0DE';
