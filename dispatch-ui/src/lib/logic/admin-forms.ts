/**
 * Parsing what admins type into the small admin forms (pure).
 */

/** PROTOCOL DoorRef. */
const DOOR_REF = /^[A-Za-z0-9._-]{1,32}$/;

/**
 * The door list of a controller registration, one door a line: `ref` then an optional name
 * (`d1 Street door`). Blank lines are skipped; refs must be unique.
 */
export function parseDoorRefs(text: string): { ok: true; doors: { ref: string; name?: string }[] } | { ok: false; error: string } {
  const doors: { ref: string; name?: string }[] = [];
  const seen = new Set<string>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const [ref = '', ...rest] = line.split(/\s+/);
    if (!DOOR_REF.test(ref)) return { ok: false, error: `line ${i + 1}: "${ref}" is not a door ref (1–32 of A–Z a–z 0–9 . _ -)` };
    if (seen.has(ref)) return { ok: false, error: `line ${i + 1}: ref "${ref}" twice` };
    seen.add(ref);
    const name = rest.join(' ').trim();
    doors.push(name ? { ref, name: name.slice(0, 128) } : { ref });
  }
  if (doors.length > 64) return { ok: false, error: 'at most 64 doors' };
  return { ok: true, doors };
}
