import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// The controller's aiohttp server serves web/dist at "/" and the API at "/api" on the same origin.
// `npm run dev` proxies /api (and the /api/ws WebSocket) to a running controller; set
// HOTLINE_API to its address if it is not the default one.
const api = process.env.HOTLINE_API ?? 'http://127.0.0.1:8080'

export default defineConfig({
  base: '/',
  plugins: [vue()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2020',
    chunkSizeWarningLimit: 2000,
    rollupOptions: {
      output: {
        manualChunks: {
          vendor: ['vue', 'vue-router', 'element-plus'],
        },
      },
    },
  },
  server: {
    proxy: {
      '/api': { target: api, changeOrigin: false, ws: true },
    },
  },
})
