/**
 * RFC 8785 JSON Canonicalization Scheme. We delegate to the `canonicalize` package (the RFC's
 * co-author's implementation) and check it against the RFC's own examples in our tests.
 */
import canonicalizeImpl from 'canonicalize';

/**
 * Canonical JSON text of `value` (RFC 8785): sorted keys, ECMAScript number form, no whitespace.
 * @example jcs({ b: 1, a: [true, null] }) === '{"a":[true,null],"b":1}'
 */
export function jcs(value: unknown): string {
  const text = canonicalizeImpl(value);
  if (text === undefined) throw new TypeError('value has no JSON representation');
  return text;
}
