// How long the web UI takes to show a page at scale, in Debian's chromium
// (playwright-core) against a real `hart serve`: a model of 1,000 versions
// against one of 10 (the baseline, same store, same run), a model of 1,000
// tensors (100 llama-style layers) against one of 10, and the store-wide
// Models and Lineage pages over 1,020 versions. Each page is loaded fresh
// REPS times (default 5) from navigation until what a person looks for is
// drawn; the median and the spread are printed. Usage:
//   flock -x /tmp/bench.lock node bench/ui_bench.mjs BUILD_DIR [REPS]
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempStore, hartCli, startServe, stopServe } from '../tests/node/hart_server.mjs';
import { writeSafetensors } from '../tests/node/safetensors.mjs';

const build = resolve(process.argv[2] ?? 'build');
const reps = Number(process.argv[3] ?? 5);
const src = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { chromium } = createRequire(join(src, 'web', 'package.json'))('playwright-core');
const HART = join(build, 'hart');
const { dir, store } = tempStore('hart_ui_bench_');
const hart = hartCli(HART, store, ['ignore', 'ignore', 'inherit']);

const safetensors = (path, tensors, salt = 0) => writeSafetensors(path, tensors, (i) => ((i + salt) % 97) / 97 - 0.5);

function llama(layers) {
  const t = { 'model.embed_tokens.weight': [32, 16], 'model.norm.weight': [16], 'lm_head.weight': [32, 16] };
  for (let i = 0; i < layers; i++) {
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) t[`model.layers.${i}.self_attn.${p}.weight`] = [16, 16];
    for (const p of ['gate_proj', 'up_proj', 'down_proj']) t[`model.layers.${i}.mlp.${p}.weight`] = [16, 16];
    t[`model.layers.${i}.input_layernorm.weight`] = [16];
    t[`model.layers.${i}.post_attention_layernorm.weight`] = [16];
    t[`model.layers.${i}.self_attn.rotary.weight`] = [8];
  }
  return t;
}

const t0 = Date.now();
hart('init');
const files = (n, prefix) => Array.from({ length: n }, (_, i) => {
  const p = join(dir, `${prefix}${i}.safetensors`);
  safetensors(p, { w: [8] }, i);
  return p;
});
hart('ingest', ...files(1000, 'big'), '--model', 'big', '--license', 'mit');
hart('ingest', ...files(10, 'small'), '--model', 'small', '--license', 'mit');
safetensors(join(dir, 'many.safetensors'), llama(100));  // 3 + 100 x 10 = 1,003 tensors
safetensors(join(dir, 'few.safetensors'), llama(1));     // 13 tensors
hart('ingest', join(dir, 'many.safetensors'), '--model', 'many', '--license', 'mit');
hart('ingest', join(dir, 'few.safetensors'), '--model', 'few', '--license', 'mit');
const setup = (Date.now() - t0) / 1000;

const { server, base } = await startServe(HART, store, dir, ['--ui-dir', join(build, 'web', 'ui')], 'ignore');
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
page.setDefaultTimeout(60000);

async function measure(hash, selector) {
  const ms = [];
  for (let i = 0; i < reps + 1; i++) {
    await page.goto('about:blank');
    const s = performance.now();
    await page.goto(`${base}/#${hash}`);
    await page.waitForSelector(selector);
    if (i > 0) ms.push(performance.now() - s);  // the first load warms caches
  }
  ms.sort((a, b) => a - b);
  return { median: ms[Math.floor(ms.length / 2)], min: ms[0], max: ms[ms.length - 1] };
}

const rows = [
  ['Models (6 models, 1,020 versions)', '/', '.model-link'],
  ['Lineage (1,020 versions)', '/lineage', '.vnode[data-ref="big@1000"]'],
  ['Versions tab, 1,000 versions', '/m/big/1000?tab=versions', '.vt-count:has-text("1000 rows")'],
  ['Versions tab, 10 versions (baseline)', '/m/small/10?tab=versions', '.vt-count:has-text("10 rows")'],
  ['Tensors tab, 1,003 tensors', '/m/many/1?tab=tensors', '.vt-count:has-text("1003 rows")'],
  ['Tensors tab, 13 tensors (baseline)', '/m/few/1?tab=tensors', '.vt-count:has-text("13 rows")'],
  ['Graph, 1,003 tensors (blocks collapsed)', '/m/many/1?tab=graph', '.gnode-block'],
  ['Graph, 13 tensors (baseline)', '/m/few/1?tab=graph', '.gnode'],
  ['Treemap, 1,003 tensors', '/m/many/1?tab=treemap', 'rect.tm-cell'],
  ['Structure, 1,003 tensors', '/m/many/1?tab=structure', '.tree summary'],
];
console.log(`store set-up ${setup.toFixed(1)} s; ${reps} loads each after one warm-up; ms from navigation to drawn`);
console.log('| page | median ms | min | max |\n| --- | --- | --- | --- |');
for (const [name, hash, sel] of rows) {
  const m = await measure(hash, sel);
  console.log(`| ${name} | ${m.median.toFixed(0)} | ${m.min.toFixed(0)} | ${m.max.toFixed(0)} |`);
}
// Expanding every block of the 1,003-tensor graph: the click to the redraw.
await page.goto(`${base}/#/m/many/1?tab=graph`);
await page.waitForSelector('.gnode-block');
const s = performance.now();
await page.click('button:has-text("Expand all")');
await page.waitForFunction(() => document.querySelectorAll('.gnode-tensor').length >= 1003);
console.log(`| Graph, expand all 1,003 tensors (click to drawn) | ${(performance.now() - s).toFixed(0)} | | |`);
await browser.close();
await stopServe(server);
rmSync(dir, { recursive: true, force: true });
