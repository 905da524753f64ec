// The web UI's build: plain TypeScript, no framework. Output goes where
// `hart serve` looks (<build>/web/ui, passed as --outDir by CMake); assets
// get content hashes so the server can mark them immutable. No inline
// script or style is emitted, so the server's CSP can forbid both.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    target: "es2020",
  },
  server: { proxy: { "/api": "http://127.0.0.1:8080", "/v1": "http://127.0.0.1:8080" } },
});
