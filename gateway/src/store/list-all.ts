import type { CollectionName, Collections, IndexField, StorePort } from './port.js';

/** Every document with an index value, read page by page (the port caps a page at 1,000). */
export async function listAll<K extends CollectionName>(store: StorePort, c: K, where: { field: IndexField<K>; value: string }): Promise<Collections[K][]> {
  const out: Collections[K][] = [];
  let after: string | undefined;
  for (;;) {
    const page = await store.list(c, { where, limit: 500, ...(after !== undefined ? { after } : {}) });
    out.push(...page);
    if (page.length < 500) return out;
    after = (page[page.length - 1] as { id: string }).id;
  }
}
