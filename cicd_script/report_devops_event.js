#!/usr/bin/env node
// Report one DevOps event from a CI/CD job to the devops-metrics gateway.
//
// Node 18+, no npm dependencies (node:http/node:https, so no experimental-fetch warning on Node 18).
// Behaves exactly like report_devops_event.py and report_devops_event.sh (same arguments, messages
// and exit codes); `--help` says everything a user needs.
'use strict';

const http = require('node:http');
const https = require('node:https');
const path = require('node:path');
const { randomUUID } = require('node:crypto');

const EXIT_OK = 0;
const EXIT_GAVE_UP = 1;
const EXIT_USAGE = 2;
const DEFAULT_URL = 'http://127.0.0.1:8000/process-event';
const DEFAULT_TIMEOUT_S = '60';
const SOURCE = 'cicd_script';
const EVENTS = ['push', 'deploy', 'test_pass', 'deploy_failed', 'service_restored'];
const OPTIONS = ['--metadata', '--sha', '--time'];
const REPO_RE = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,139}$/;
const SHA_RE = /^[0-9a-fA-F]{7,64}$/;
const TIME_RE =
  /^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]{1,9})?)?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?$/;
const URL_RE = /^https?:\/\/[^/?#\s]+/;
const TIMEOUT_RE = /^[0-9]+(\.[0-9]+)?$/;
const NEGATIVE_NUMBER_RE = /^-\d+$|^-\d*\.\d+$/;
const MAX_METADATA_BYTES = 1024;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 8000;
const ATTEMPT_TIMEOUT_MS = 15000;
const MIN_ATTEMPT_MS = 500;

const HELP = `usage: {prog} <Repo name> <Event> [--metadata <Metadata>] [--sha <commit>] [--time <ISO>]

Report one DevOps event from a CI/CD job to the devops-metrics gateway (POST /process-event).

arguments:
  <Repo name>            repository: letters, digits, '.', '_', '-', '/' (1-140 characters,
                         starting with a letter or digit), or ALL for an event of no single repo
  <Event>                one of:
                           push              commits were pushed (give --sha for lead time)
                           deploy            a deployment to production finished
                           test_pass         the test suite passed
                           deploy_failed     a production deployment failed (it needed a fix or a
                                             rollback); counts toward the change failure rate
                           service_restored  service is restored after a failed deployment;
                                             ends the recovery time
  --metadata <Metadata>  free text or JSON, at most 1024 bytes (UTF-8), e.g. a version or a URL
  --sha <commit>         commit SHA the event is about, 7-64 hex digits; push and deploy events
                         with the same SHA give the lead time for changes
  --time <ISO>           when it happened: ISO-8601 (2026-01-01T12:00:00Z) or
                         'YYYY-MM-DD HH:MM:SS' (UTC); default: now; at most 15 minutes ahead
  -h, --help             show this help and exit

environment:
  DEVOPS_EVENTS_SECRET_TOKEN  required: the gateway's token (sent as a Bearer token, never printed)
  API_DEVOPS_EVENT_CATCHER    gateway URL (default: http://127.0.0.1:8000/process-event)
  DEVOPS_EVENT_TIMEOUT        seconds to keep retrying before giving up (default: 60)

behaviour:
  Each run generates one event_id (a UUID) and sends it with every attempt, so a retried request
  is counted once downstream. Connection errors, timeouts, HTTP 408, 429 and 5xx are retried with
  exponential backoff and jitter, honouring Retry-After, until DEVOPS_EVENT_TIMEOUT runs out.
  On success the only output on stdout is one line 'event_id=<uuid>' (ready to append to
  $GITHUB_OUTPUT); retries and errors are reported on stderr.

exit codes:
  0  accepted: the event is in the Kinesis stream
  1  gave up: the gateway stayed unreachable or unavailable for DEVOPS_EVENT_TIMEOUT seconds
  2  usage or validation error, found locally or by the gateway (e.g. HTTP 401 wrong token,
     422 invalid field): retrying cannot help; the message says what to fix
`;

/** Bad arguments or configuration: exit 2 with a message saying what to fix. */
class UsageError extends Error {
  constructor(message, showUsage = false) {
    super(message);
    this.showUsage = showUsage;
  }
}

/** Mirrors Python argparse's rule for "does this argument look like an option?". */
function looksLikeOption(arg) {
  return arg.startsWith('-') && arg !== '-' && !NEGATIVE_NUMBER_RE.test(arg) && !arg.includes(' ');
}

function wantsHelp(argv) {
  const end = argv.indexOf('--');
  const options = end === -1 ? argv : argv.slice(0, end);
  return options.includes('-h') || options.includes('--help');
}

/** The seed's interface, parsed with argparse's rules and messages (see the Python script). */
function parseArgs(argv) {
  const positionals = [];
  const unrecognized = [];
  const options = {};
  let onlyPositionals = false;
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (!onlyPositionals && arg === '--') {
      onlyPositionals = true;
    } else if (onlyPositionals || !looksLikeOption(arg)) {
      if (positionals.length < 2) positionals.push(arg);
      else unrecognized.push(arg);
    } else {
      const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
      const name = eq === -1 ? arg : arg.slice(0, eq);
      if (!OPTIONS.includes(name)) {
        unrecognized.push(arg);
      } else if (eq !== -1) {
        options[name.slice(2)] = arg.slice(eq + 1);
      } else if (i + 1 < argv.length && !looksLikeOption(argv[i + 1])) {
        options[name.slice(2)] = argv[i + 1];
        i += 1;
      } else {
        throw new UsageError(`argument ${name}: expected one argument`, true);
      }
    }
  }
  if (positionals.length < 2) {
    const missing = ['repo', 'event'].slice(positionals.length);
    throw new UsageError(`the following arguments are required: ${missing.join(', ')}`, true);
  }
  if (unrecognized.length) throw new UsageError(`unrecognized arguments: ${unrecognized.join(' ')}`, true);
  return { repo: positionals[0], event: positionals[1], ...options };
}

/** The gateway's rules, checked before any request so a typo fails fast and sends nothing. */
function validate(args) {
  if (!REPO_RE.test(args.repo)) {
    throw new UsageError(
      `invalid repo '${args.repo}': use 1-140 letters, digits, '.', '_', '-', '/' ` +
        'starting with a letter or digit, or ALL',
    );
  }
  if (!EVENTS.includes(args.event)) {
    const internal = args.event.startsWith('calc_') ? ' (calc_* events are computed by the aggregator)' : '';
    throw new UsageError(`invalid event '${args.event}'${internal}: must be one of ${EVENTS.join(', ')}`);
  }
  if (args.sha !== undefined && !SHA_RE.test(args.sha)) {
    throw new UsageError(`invalid --sha '${args.sha}': must be 7-64 hex digits`);
  }
  if (args.time !== undefined && !TIME_RE.test(args.time)) {
    throw new UsageError(
      `invalid --time '${args.time}': use ISO-8601 (2026-01-01T12:00:00Z) or 'YYYY-MM-DD HH:MM:SS'`,
    );
  }
  if (args.metadata !== undefined) {
    const size = Buffer.byteLength(args.metadata, 'utf8');
    if (size > MAX_METADATA_BYTES) {
      throw new UsageError(`--metadata is ${size} bytes; at most ${MAX_METADATA_BYTES} bytes are allowed`);
    }
  }
}

/** The environment, checked: gateway URL, token and the total time budget in milliseconds. */
function readConfig(env) {
  const url = env.API_DEVOPS_EVENT_CATCHER || DEFAULT_URL;
  if (!URL_RE.test(url)) {
    throw new UsageError(`API_DEVOPS_EVENT_CATCHER must be an http:// or https:// URL, not '${url}'`);
  }
  const token = (env.DEVOPS_EVENTS_SECRET_TOKEN || '').trim();
  if (!token) {
    throw new UsageError(
      "DEVOPS_EVENTS_SECRET_TOKEN is not set: export the gateway's token (make run prints it)",
    );
  }
  if (/[\s\x00-\x1f\x7f]/.test(token)) {
    throw new UsageError('DEVOPS_EVENTS_SECRET_TOKEN contains whitespace or control characters');
  }
  const rawTimeout = env.DEVOPS_EVENT_TIMEOUT || DEFAULT_TIMEOUT_S;
  if (!TIMEOUT_RE.test(rawTimeout) || Number(rawTimeout) <= 0) {
    throw new UsageError(`DEVOPS_EVENT_TIMEOUT must be a positive number of seconds, not '${rawTimeout}'`);
  }
  const [whole, fraction = ''] = rawTimeout.split('.');
  const timeoutMs = Math.max(1, Number(whole) * 1000 + Number((fraction + '000').slice(0, 3)));
  return { url, token, timeoutMs };
}

function buildBody(args, eventId) {
  const body = { repo: args.repo, event: args.event, event_id: eventId, source: SOURCE };
  for (const name of ['metadata', 'sha', 'time']) {
    if (args[name] !== undefined) body[name] = args[name];
  }
  return JSON.stringify(body);
}

/** The gateway's error detail in one line: 'field: reason; ...', the detail string, or the body. */
function describeBody(text) {
  let detail;
  try {
    const parsed = JSON.parse(text);
    detail = parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed.detail : undefined;
  } catch {
    detail = undefined;
  }
  if (Array.isArray(detail) && detail.length && detail.every((d) => d && typeof d === 'object' && 'field' in d)) {
    return detail.map((d) => `${d.field}: ${d.reason ?? ''}`).join('; ');
  }
  if (typeof detail === 'string') return detail;
  const flat = text.split(/\s+/).filter(Boolean).join(' ');
  return flat ? flat.slice(0, 200) : '(empty body)';
}

/** What to fix for a 4xx that retrying cannot cure. */
function clientErrorMessage(status, text, url) {
  const detail = describeBody(text);
  if (status >= 300 && status < 400) {
    return `the gateway redirects (HTTP ${status}): set API_DEVOPS_EVENT_CATCHER to the final URL`;
  }
  if (status === 401 || status === 403) {
    return `token rejected: check DEVOPS_EVENTS_SECRET_TOKEN (HTTP ${status}: ${detail})`;
  }
  if (status === 404 || status === 405) {
    return `no event endpoint at ${url}: check API_DEVOPS_EVENT_CATCHER (HTTP ${status}: ${detail})`;
  }
  if (status === 413) return `request too large: shorten --metadata (HTTP 413: ${detail})`;
  if (status === 422) return `event rejected by the gateway (HTTP 422): ${detail}`;
  return `request rejected by the gateway (HTTP ${status}): ${detail}`;
}

function isRetryable(attempt) {
  return attempt.status === 0 || attempt.status === 408 || attempt.status === 429 || attempt.status >= 500;
}

function describeAttempt(attempt) {
  return attempt.status === 0 ? attempt.error : `HTTP ${attempt.status}: ${describeBody(attempt.text)}`;
}

function transportError(err, timeoutMs) {
  if (err.code === 'ECONNREFUSED') return 'connection refused';
  if (err.code === 'ETIMEDOUT') return `timed out after ${fmtSeconds(timeoutMs)}`;
  return `connection error: ${err.code || err.message}`;
}

/** One POST; resolves to {status, text, retryAfter} or {status: 0, error} and never rejects. */
function post(url, token, body, timeoutMs) {
  return new Promise((resolve) => {
    const client = url.startsWith('https:') ? https : http;
    let settled = false;
    const finish = (attempt) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(attempt);
      }
    };
    const request = client.request(url, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/json',
        Authorization: `Bearer ${token}`,
        'User-Agent': 'report_devops_event.js',
        'Content-Length': Buffer.byteLength(body, 'utf8'),
      },
    });
    const timer = setTimeout(() => {
      const err = new Error('timed out');
      err.code = 'ETIMEDOUT';
      request.destroy(err);
    }, timeoutMs);
    request.on('response', (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () =>
        finish({
          status: response.statusCode,
          text: Buffer.concat(chunks).toString('utf8'),
          retryAfter: response.headers['retry-after'],
        }),
      );
      response.on('error', (err) => finish({ status: 0, error: transportError(err, timeoutMs) }));
    });
    request.on('error', (err) => finish({ status: 0, error: transportError(err, timeoutMs) }));
    request.end(body, 'utf8');
  });
}

/** Milliseconds as '1.2s', truncated the same way in all three scripts. */
function fmtSeconds(ms) {
  const clamped = Math.max(Math.floor(ms), 0);
  return `${Math.floor(clamped / 1000)}.${Math.floor((clamped % 1000) / 100)}s`;
}

function nowMs() {
  return Math.floor(performance.now());
}

/** Exponential backoff with jitter: a random delay in [half, full] of min(cap, base * 2^retry). */
function backoffMs(retry) {
  const full = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** retry);
  const half = Math.floor(full / 2);
  return half + Math.floor(Math.random() * (half + 1));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function log(prog, message) {
  process.stderr.write(`${prog}: ${message}\n`);
}

function fail(prog, message, code) {
  log(prog, `error: ${message}`);
  return code;
}

function giveUp(prog, attempt, attempts, start, extra) {
  return fail(
    prog,
    `gave up after ${attempts} attempt(s) in ${fmtSeconds(nowMs() - start)} ` +
      `(DEVOPS_EVENT_TIMEOUT): ${describeAttempt(attempt)}${extra}`,
    EXIT_GAVE_UP,
  );
}

async function main() {
  const prog = path.basename(process.argv[1] || 'report_devops_event.js');
  const argv = process.argv.slice(2);
  if (wantsHelp(argv)) {
    process.stdout.write(HELP.replaceAll('{prog}', prog));
    return EXIT_OK;
  }
  let args;
  let config;
  try {
    args = parseArgs(argv);
    validate(args);
    config = readConfig(process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.showUsage) process.stderr.write(`${HELP.split('\n')[0].replaceAll('{prog}', prog)}\n`);
    return fail(prog, `${err.message} (see --help)`, EXIT_USAGE);
  }

  const eventId = randomUUID();
  const body = buildBody(args, eventId);
  const start = nowMs();
  const deadline = start + config.timeoutMs;
  for (let attemptNo = 1; ; attemptNo += 1) {
    let remaining = deadline - nowMs();
    const attempt = await post(config.url, config.token, body, Math.min(ATTEMPT_TIMEOUT_MS, remaining));
    if (attempt.status >= 200 && attempt.status < 300) {
      let acceptedId = eventId;
      try {
        acceptedId = JSON.parse(attempt.text).event_id || eventId;
      } catch {
        acceptedId = eventId;
      }
      process.stdout.write(`event_id=${acceptedId}\n`);
      return EXIT_OK;
    }
    if (!isRetryable(attempt)) {
      return fail(prog, clientErrorMessage(attempt.status, attempt.text, config.url), EXIT_USAGE);
    }
    remaining = deadline - nowMs();
    let wait = backoffMs(attemptNo - 1);
    const retryAfter = (attempt.retryAfter || '').trim();
    if (/^[0-9]+$/.test(retryAfter)) {
      const retryAfterMs = Number(retryAfter) * 1000;
      if (retryAfterMs + MIN_ATTEMPT_MS > remaining) {
        return giveUp(prog, attempt, attemptNo, start, `; the gateway asked to wait ${retryAfter}s`);
      }
      wait = Math.max(wait, retryAfterMs);
    }
    wait = Math.min(wait, remaining - MIN_ATTEMPT_MS);
    if (wait < 0) return giveUp(prog, attempt, attemptNo, start, '');
    log(prog, `attempt ${attemptNo} failed (${describeAttempt(attempt)}); retrying in ${fmtSeconds(wait)}`);
    await sleep(wait);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`report_devops_event.js: internal error: ${err && err.stack ? err.stack : err}\n`);
    process.exitCode = EXIT_GAVE_UP;
  },
);
