import { defineConfig } from "vite";

// The chirp binary embeds dist/ and serves index.html at `/` and every other file under
// `/app/` (a path no API route uses: user references are numeric or start with '@').
export default defineConfig({
  base: "/app/",
  build: {
    outDir: process.env.CHIRP_WEB_OUT_DIR ?? "dist",
    emptyOutDir: true,
    assetsDir: "",
    target: "es2022",
    // Small assets stay separate files so the server's content types and caching apply.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  test: {
    include: ["src/**/*.test.ts"],
  },
});
