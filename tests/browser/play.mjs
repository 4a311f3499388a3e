// Plays one game against a bot on the gateway's web page, in headless
// Chromium, as a player would: sign in as a guest, pick a mode (the picker
// must list what GET /api/v1/modes answers), "Play a bot now", roll and bank
// to the end, then check the final screen and the revealed seed. On the way it drops the WebSocket once and reloads the page
// once, and checks that the event log still holds every event exactly once.
//
//   node tests/browser/play.mjs http://127.0.0.1:8080/ [mode]
//
// Prints a one-line JSON summary and exits 0, or says what went wrong (with a
// screenshot) and exits 1. CHROMIUM names the browser (/usr/bin/chromium).

import { chromium } from 'playwright-core';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const url = process.argv[2];
const mode = process.argv[3] || 'classic';
const RUN_MS = 170_000; // the whole run, browser start to final screen
const BANK_AT = 20; // roll while the turn score is below this, then bank
// Bots take about a second per action, and a rare game runs long: past this
// the player forfeits, which still ends the game with standings and a seed.
const FORFEIT_AFTER_MS = 120_000;
const started = Date.now();
const consoleErrors = []; // shown when the run fails
const pageErrors = []; // uncaught exceptions: these fail the run
let browser;
let page;
let step = 'starting';

function left() {
  const ms = RUN_MS - (Date.now() - started);
  if (ms <= 0) throw new Error(`out of time (${RUN_MS / 1000} s)`);
  return ms;
}

// Waits until `predicate` (run in the page) answers something truthy; that is the answer.
async function until(what, predicate, arg, timeout = 20_000) {
  step = what;
  const handle = await page.waitForFunction(predicate, arg, { timeout: Math.min(timeout, left()), polling: 50 });
  return handle.jsonValue();
}

// The event log's seqs must be 1..last, each once.
async function checkLog() {
  const seqs = await page.$$eval('#log li', (items) => items.map((li) => Number(li.dataset.seq)).reverse());
  seqs.forEach((seq, i) => {
    if (seq !== i + 1) throw new Error(`the event log is not gap- and duplicate-free: ${seqs.join(',')}`);
  });
  return seqs.length;
}

async function main() {
  if (!url) throw new Error('usage: node play.mjs <url> [mode]');
  step = 'launching chromium';
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: 30_000,
  });
  page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  step = 'opening the page';
  await page.goto(url);
  await until('signing in', () => document.body.dataset.connection === 'online');
  const user = await page.getAttribute('#me', 'data-user');

  // The mode picker lists the playable modes as the API answers them.
  const picker = await until('waiting for the mode picker', () => {
    const options = [...document.querySelectorAll('#mode option')].filter((o) => o.value);
    return options.length > 0 && options.map((o) => ({ id: o.value, builtin: o.dataset.builtin === 'true', hash: o.dataset.hash }));
  });
  step = 'reading GET /api/v1/modes';
  const listed = await page.evaluate(async () => (await (await fetch('/api/v1/modes')).json()).modes);
  const summarize = (modes) => JSON.stringify(modes.map((m) => [m.id, !!m.builtin, m.hash]));
  if (summarize(picker) !== summarize(listed)) {
    throw new Error(`the mode picker shows ${summarize(picker)}, the API lists ${summarize(listed)}`);
  }

  step = 'choosing the mode';
  await page.selectOption('#mode', mode);
  const details = await until('waiting for the mode details', (id) => {
    const el = document.getElementById('mode-details');
    return el.dataset.id === id && !el.hidden && el.textContent;
  }, mode, 5_000);
  // The services may still be starting: a refused join shows an error and
  // leaves the button enabled, so try a few times.
  for (let attempt = 1; ; attempt++) {
    step = 'starting a bot match';
    await page.click('#play-bot');
    try {
      await until('waiting for the match', () => document.body.dataset.screen !== 'lobby', null, 5_000);
      break;
    } catch (e) {
      if (attempt === 5) throw e;
    }
  }
  const seedHash = await until('waiting for the seed hash', () => {
    const text = document.getElementById('seed-hash').textContent;
    return /^[0-9a-f]{64}$/.test(text) && text;
  });
  // The match's buttons come from its mode's actions: a built-in mode has
  // no custom ones.
  const customButtons = await page.$$eval('#custom-actions button', (buttons) => buttons.map((b) => b.dataset.action));

  let rolls = 0;
  let banks = 0;
  let timerSeen = null;
  let forfeited = false;
  let dropped = false;
  let reloaded = false;
  for (;;) {
    const state = await until('waiting for my turn or the end', () => {
      if (document.body.dataset.screen === 'final') return 'final';
      return !document.getElementById('roll').disabled && 'turn';
    }, null, 60_000);
    if (state === 'final') break;

    // Early in the game, so that a short game (a bot that wins in a few
    // turns) still has the drop and the reload: a player gets at least one
    // action every turn, and a bot rarely wins in two.
    const actions = rolls + banks;
    if (actions === 1 && !dropped) {
      // Lose the connection: the page must reconnect and resume after its last event.
      dropped = true;
      step = 'dropping the WebSocket';
      await page.evaluate(() => window.dashdice.drop());
      await until('reconnecting', () => document.body.dataset.connection !== 'online', null, 5_000);
      await until('reconnecting', () => document.body.dataset.connection === 'online', null, 30_000);
      continue;
    }
    if (actions === 2 && !reloaded) {
      // Reload: the same guest (sessionStorage) is back in the same match.
      reloaded = true;
      step = 'reloading';
      await page.reload();
      await until('back in the match after a reload', () => document.body.dataset.screen !== 'lobby'
        && document.body.dataset.connection === 'online', null, 30_000);
      const again = await page.getAttribute('#me', 'data-user');
      if (again !== user) throw new Error(`a reload signed in as ${again}, not ${user}`);
      continue;
    }

    if (timerSeen === null) {
      // The turn timer counts down to the snapshot's deadline.
      timerSeen = await until('waiting for the turn timer', () => {
        const text = document.getElementById('timer').textContent;
        return /^\d+ s left$/.test(text) && text;
      }, null, 5_000);
    }

    if (Date.now() - started > FORFEIT_AFTER_MS && !forfeited) {
      forfeited = true;
      step = 'forfeiting a long game';
      await page.click('#forfeit');
      await page.click('#forfeit'); // it asks twice
      continue;
    }

    step = 'acting';
    const turnScore = Number(await page.getAttribute('#turn-score', 'data-value'));
    const canBank = !(await page.isDisabled('#bank'));
    if (canBank && turnScore >= BANK_AT) {
      await page.click('#bank', { timeout: 5_000 });
      banks += 1;
    } else {
      await page.click('#roll', { timeout: 5_000 });
      rolls += 1;
    }
  }

  step = 'reading the final screen';
  const winner = (await page.textContent('#winner')).trim();
  if (!winner) throw new Error('no winner shown');
  const standings = await page.$$eval('#standings tbody tr', (rows) => rows.map((r) => ({
    player: r.dataset.player,
    result: r.dataset.result,
    score: Number(r.cells[2].textContent),
  })));
  if (standings.length !== 2) throw new Error(`expected 2 standings, got ${JSON.stringify(standings)}`);
  if (!standings.some((s) => s.player === user)) throw new Error(`${user} is not in the standings`);
  const seedStatus = await until('checking the seed', () => {
    const s = document.getElementById('seed-status').dataset.status;
    return !['pending', 'checking'].includes(s) && s;
  });
  if (seedStatus !== 'verified') throw new Error(`seed status: ${seedStatus}`);
  const events = await checkLog();
  if (await page.isVisible('#play-again') !== true) throw new Error('no "Play again" button');
  step = 'going back to the lobby';
  await page.click('#play-again');
  await until('back in the lobby', () => document.body.dataset.screen === 'lobby'
    && !document.getElementById('play-bot').disabled, null, 10_000);
  if (pageErrors.length) throw new Error(`the page threw: ${pageErrors.join(' | ')}`);

  console.log(JSON.stringify({
    ok: true, mode, modes: picker, mode_details: details, custom_buttons: customButtons, user, winner, standings, seed_hash: seedHash, seed_status: seedStatus,
    events, rolls, banks, timer: timerSeen, forfeited, reconnected: dropped, reloaded, seconds: Math.round((Date.now() - started) / 1000),
  }));
}

// A hard stop, should something hang outside a bounded wait.
const watchdog = setTimeout(() => fail(new Error('the run took over 180 s')), 180_000);

async function fail(error) {
  console.error(`browser test failed while ${step}: ${error.message}`);
  if (pageErrors.length) console.error(`page exceptions: ${pageErrors.join(' | ')}`);
  if (consoleErrors.length) console.error(`console errors: ${consoleErrors.slice(-10).join(' | ')}`);
  if (page) {
    const shot = join(tmpdir(), `dashdice-browser-${process.pid}.png`);
    try {
      await page.screenshot({ path: shot, fullPage: true, timeout: 5_000 });
      console.error(`screenshot: ${shot}`);
      const text = await page.evaluate(() => document.body.innerText.slice(0, 1500));
      console.error(`page text:\n${text}`);
    } catch (e) {
      console.error(`no screenshot: ${e.message}`);
    }
  }
  await browser?.close().catch(() => {});
  process.exit(1);
}

main().then(async () => {
  clearTimeout(watchdog);
  await browser.close();
  process.exit(0);
}, fail);
