// The status page in headless Chromium (Debian's chromium through playwright-core) against the real stack:
// it lists every model with its tier per worker and redraws when a request moves a model between tiers; bull-board
// lists the model queues. SWAPSERVE_UPDATE_SCREENSHOTS=1 rewrites docs/status-page.png from this run.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { startStack, twoModelConfig, type Stack } from '../spine/stack.ts';
import { needsData, needsTool } from '../helpers/requires.ts';

/** Why this file's tests skip on a developer's machine (under CI a missing need fails). */
const SKIP = needsTool('chromium') || needsData();

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const SCREENSHOT = new URL('../../docs/status-page.png', import.meta.url).pathname;

let redis: TestRedis;
let stack: Stack;
let client: OpenAI;
let profile: string;
let browser: BrowserContext;
let page: Page;

before(async () => {
  if (SKIP) return;
  redis = await startRedis();
  stack = await startStack(twoModelConfig(redis));
  client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  profile = mkdtempSync(join(tmpdir(), 'swapserve-chromium-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 900 },
  });
  page = await browser.newPage();
});
after(async () => {
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await stack?.close();
  await redis?.stop();
});

const cell = (model: string, residency: string) =>
  `td[data-model="${model}"][data-worker="${stack.worker.workerId}"][data-residency="${residency}"]`;

describe('status page', { skip: SKIP }, () => {
  it('lists the models with their tier and follows a request that changes it', async () => {
    const res = await page.goto(stack.gateway.url + '/');
    assert.equal(res?.status(), 200);
    // Nothing resident yet: both models on disk on the one worker.
    await page.waitForSelector(cell('story-a', 'disk'), { timeout: 15_000 });
    await page.waitForSelector(cell('story-b', 'disk'), { timeout: 15_000 });
    assert.match(await page.locator('#summary').innerText(), /2 models · 1 workers \(1 ready\)/);
    assert.equal(await page.locator(`tr[data-worker-row="${stack.worker.workerId}"]`).count(), 1);

    // A cold request for story-a brings it to the GPU tier; the page redraws on its own.
    await client.chat.completions.create({ model: 'story-a', messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 8 });
    await page.waitForSelector(cell('story-a', 'gpu'), { timeout: 15_000 });
    assert.equal(await page.locator(cell('story-b', 'disk')).count(), 1);
    await page.waitForSelector('td[data-ttft-count="cold"]:text("1")', { timeout: 15_000 });

    // story-b takes the only GPU slot: story-a goes back to the host tier.
    await client.completions.create({ model: 'story-b', prompt: 'Once', max_tokens: 4 });
    await page.waitForSelector(cell('story-b', 'gpu'), { timeout: 15_000 });
    await page.waitForSelector(cell('story-a', 'host'), { timeout: 15_000 });
    // And back: a swap.
    await client.completions.create({ model: 'story-a', prompt: 'Once', max_tokens: 4 });
    await page.waitForSelector(cell('story-a', 'gpu'), { timeout: 15_000 });
    await page.waitForSelector('td[data-ttft-count="swap"]:text("1")', { timeout: 15_000 });
    await client.completions.create({ model: 'story-a', prompt: 'Once upon', max_tokens: 4 });
    await page.waitForSelector('td[data-ttft-count="warm"]:text("1")', { timeout: 15_000 });
    assert.equal(await page.locator('#recent tr').count(), 5, 'header + 4 requests');

    const out = process.env.SWAPSERVE_UPDATE_SCREENSHOTS === '1' ? SCREENSHOT : join(profile, 'status-page.png');
    await page.screenshot({ path: out, fullPage: true });
  });

  it('serves bull-board at /queues with one queue per model', async () => {
    const res = await page.goto(stack.gateway.url + '/queues');
    assert.equal(res?.status(), 200);
    await page.waitForSelector('text=story-a', { timeout: 15_000 });
    await page.waitForSelector('text=story-b', { timeout: 15_000 });
  });
});
