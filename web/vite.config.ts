/// <reference types="vitest/config" />
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { defineConfig, type Plugin } from "vite";

const here = fileURLToPath(new URL(".", import.meta.url));
const publicDir = join(here, "public");

/** Every file of public/, as URL paths ("/manifest.webmanifest", "/icons/icon-192.png"). */
function publicFiles(dir = publicDir): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory()
      ? publicFiles(path)
      : ["/" + relative(publicDir, path).split("\\").join("/")];
  });
}

/**
 * The service worker (sw.js, hand-written) with the list of the app shell's files of this
 * build and a version derived from them: a new build installs a new cache and drops the old.
 */
function serviceWorker(): Plugin {
  return {
    name: "nuage-service-worker",
    apply: "build",
    generateBundle(_options, bundle) {
      const built = Object.keys(bundle).map((name) => "/" + name);
      const shell = ["/", ...built, ...publicFiles()].sort();
      const version = createHash("sha256").update(shell.join("\n")).digest("hex").slice(0, 12);
      const template = readFileSync(join(here, "sw.js"), "utf8");
      const source = template
        .replace('"__VERSION__"', JSON.stringify(version))
        .replace('["__SHELL__"]', JSON.stringify(shell));
      this.emitFile({ type: "asset", fileName: "sw.js", source });
    },
  };
}

/** A gzipped copy next to each text file of the build (file.js.gz): the server sends it to
 * browsers that accept gzip, without compressing at each request. */
function precompress(): Plugin {
  return {
    name: "nuage-precompress",
    apply: "build",
    writeBundle(options, bundle) {
      for (const name of Object.keys(bundle)) {
        if (!/\.(js|css|html|svg|webmanifest)$/.test(name)) continue;
        const path = join(options.dir ?? "", name);
        const data = readFileSync(path);
        if (data.length < 1024) continue;
        writeFileSync(path + ".gz", gzipSync(data, { level: 9 }));
      }
    },
  };
}

export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  plugins: [serviceWorker(), precompress()],
  build: {
    // Shipped inside the Python package; `nuage serve` serves it at /.
    outDir: join(here, "..", "src", "nuage", "webapp"),
    emptyOutDir: true,
    target: "es2020",
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev` next to a `nuage serve` on 8080 (docs/configuration.md).
    proxy: {
      "/api": { target: "http://127.0.0.1:8080", ws: true },
      "/sip": { target: "http://127.0.0.1:8080", ws: true },
    },
  },
  test: {
    environment: "jsdom",
    include: ["test/**/*.test.{ts,tsx}"],
    setupFiles: ["test/setup.ts"],
    restoreMocks: true,
  },
});
