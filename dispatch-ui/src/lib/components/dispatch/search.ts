/** Building search (pure, unit-tested): every word of the query in the name or the address. */
export function matchBuildings<T extends { name: string; address: string }>(items: readonly T[], query: string): T[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return [...items];
  return items.filter((b) => {
    const hay = `${b.name} ${b.address}`.toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}
