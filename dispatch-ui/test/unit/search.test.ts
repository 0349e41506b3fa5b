import { describe, expect, it } from 'vitest';
import { matchBuildings } from '../../src/lib/components/dispatch/search';

describe('matchBuildings', () => {
  const bs = [
    { name: 'Södra Porten', address: 'Götgatan 71' },
    { name: 'Nytorget 6', address: 'Nytorget 6, Stockholm' },
  ];
  it('every word in name or address, any case', () => {
    expect(matchBuildings(bs, 'götgatan').map((b) => b.name)).toEqual(['Södra Porten']);
    expect(matchBuildings(bs, 'NYTORGET stockholm').map((b) => b.name)).toEqual(['Nytorget 6']);
    expect(matchBuildings(bs, 'nytorget götgatan')).toEqual([]);
  });
  it('an empty query matches all', () => {
    expect(matchBuildings(bs, '  ')).toHaveLength(2);
  });
});
