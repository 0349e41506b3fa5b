// Svelte 5 with runes everywhere (immich-style state classes in *.svelte.ts).
export default { compilerOptions: { runes: true } };
