// The dispatch UI's build (STYLE: dispatch-ui/). The gateway serves dist/ at /, so asset URLs are
// absolute from the root; `npm run dev -w dispatch-ui` proxies the API and socket.io to a running
// gateway on 127.0.0.1:8080 (SP_GATEWAY_URL names another). The build prints each bundle's size.
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';

const gateway = process.env['SP_GATEWAY_URL'] ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [svelte()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 600, reportCompressedSize: true },
  server: { proxy: { '/api': gateway, '/socket.io': { target: gateway, ws: true } } },
});
