// Lint with type information: floating promises are errors (STYLE.md). The dispatch UI is linted
// too: its TypeScript with dispatch-ui/tsconfig.json (tests: dispatch-ui/test/tsconfig.json), its
// .svelte components with eslint-plugin-svelte, type-aware in <script lang="ts">.
import js from '@eslint/js';
import svelte from 'eslint-plugin-svelte';
import globals from 'globals';
import tseslint from 'typescript-eslint';
import svelteConfig from './dispatch-ui/svelte.config.js';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'data/**', 'coverage/**', 'test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  ...svelte.configs.recommended,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['*.js', '*.ts', 'dispatch-ui/*.js'] }, // bench/*.js: bench/tsconfig.json
        tsconfigRootDir: import.meta.dirname,
        extraFileExtensions: ['.svelte'],
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // Components and rune modules: svelte-eslint-parser, with typescript-eslint's parser for the
  // TypeScript inside (same project service, so the type-aware rules apply there too).
  {
    files: ['**/*.svelte', '**/*.svelte.ts'],
    languageOptions: {
      parserOptions: { parser: tseslint.parser, projectService: true, extraFileExtensions: ['.svelte'], svelteConfig, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // State classes keep Maps and Sets in `$state.raw` and replace them whole (immutable
      // updates); the rule flags every such Map, and every local one built in a function.
      'svelte/prefer-svelte-reactivity': 'off',
    },
  },
  {
    files: ['**/*.svelte'],
    rules: {
      // The project service cannot type an imported .svelte component (no svelte2tsx here), so a
      // callback prop's parameters are `any` to it: `onPick={(at) => …}` would be flagged. The
      // promise rules and the rest of the type-aware set still apply; svelte-check types these.
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  // TypeScript checks names itself (and knows global type namespaces such as GeoJSON).
  { files: ['**/*.ts', '**/*.svelte'], rules: { 'no-undef': 'off' } },
  // The UI runs in the browser; its tests and config run in Node.
  { files: ['dispatch-ui/src/**/*.{ts,svelte}'], languageOptions: { globals: { ...globals.browser } } },
  { files: ['dispatch-ui/test/**/*.ts', 'dispatch-ui/*.{js,ts}'], languageOptions: { globals: { ...globals.node } } },
  // The config itself is plain JS whose imports' types need not resolve to lint it.
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' } },
  },
);
