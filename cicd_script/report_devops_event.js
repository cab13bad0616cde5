#!/usr/bin/env node
// Report one DevOps event from a CI/CD job to the devops-metrics gateway.
//
// Node 18+, no npm dependencies (node:http/node:https, so no experimental-fetch warning on Node 18).
// Behaves exactly like report_devops_event.py and report_devops_event.sh (same arguments, messages
// and exit codes); `--help` says everything a user needs.
'use strict';

const fs = require('node:fs');
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
const EVENTS = [
  'push',
  'deploy',
  'test_pass',
  'deploy_failed',
  'service_restored',
  'incident_opened',
  'incident_resolved',
];
const INCIDENT_EVENTS = ['incident_opened', 'incident_resolved'];
// Which events may carry each option (the gateway's rule; anything else is refused before sending).
const OPTION_EVENTS = {
  before: ['push'],
  environment: ['deploy', 'deploy_failed', 'service_restored', 'incident_opened', 'incident_resolved'],
  outcome: ['deploy', 'deploy_failed'],
  remediation: ['deploy', 'deploy_failed'],
  'deployment-id': ['deploy', 'deploy_failed', 'incident_opened'],
  'incident-id': INCIDENT_EVENTS,
  commits: ['push', 'deploy', 'deploy_failed'],
};
// Every option takes one value; the order is the order in which they are checked.
const VALUE_OPTIONS = [
  'sha',
  'before',
  'time',
  'metadata',
  'environment',
  'outcome',
  'remediation',
  'deployment-id',
  'incident-id',
  'team',
  'service',
  'commits',
];
const OPTIONS = VALUE_OPTIONS.map((name) => `--${name}`);
const REPO_RE = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,139}$/;
const SHA_RE = /^[0-9a-fA-F]{7,64}$/;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
// ISO-8601 or 'YYYY-MM-DD HH:MM:SS'; the groups are the same in the .py and .sh scripts.
const TIME_RE =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})([T ]([0-9]{2}):([0-9]{2})(:([0-9]{2})([.,][0-9]{1,9})?)?(([Zz])|([+-])([0-9]{2})(:?([0-9]{2}))?)?)?$/;
const CONTROL_RE = /[\x00-\x1f\x7f]/;
const URL_RE = /^https?:\/\/[^/?#\s]+/;
const TIMEOUT_RE = /^[0-9]+(\.[0-9]+)?$/;
const NEGATIVE_NUMBER_RE = /^-\d+$|^-\d*\.\d+$/;
const MAX_METADATA_BYTES = 1024;
const MAX_NAME_CHARS = 100;
const MAX_COMMITS = 2048;
const EARLIEST_S = 946684800; // 2000-01-01T00:00:00Z
const MAX_AHEAD_S = 15 * 60;
const TIME_HINT = "use ISO-8601 (2026-01-01T12:00:00Z) or 'YYYY-MM-DD HH:MM:SS'";
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 8000;
const ATTEMPT_TIMEOUT_MS = 15000;
const MIN_ATTEMPT_MS = 500;

const HELP = `usage: {prog} <Repo name> <Event> [--metadata <Metadata>] [--sha <commit>] [--time <ISO>] [options]

Report one DevOps event from a CI/CD job to the devops-metrics gateway (POST /process-event).

arguments:
  <Repo name>            repository: letters, digits, '.', '_', '-', '/' (1-140 characters,
                         starting with a letter or digit), or ALL for an event of no single repo
  <Event>                one of:
                           push               commits were pushed (give --sha, --before, --commits)
                           deploy             a deployment finished (--outcome failure if it
                                              failed: it counts as a deployment and a failure)
                           test_pass          the test suite passed
                           deploy_failed      the same as deploy --outcome failure
                           service_restored   the environment works again after a failure;
                                              ends the recovery time
                           incident_opened    an incident started (needs --incident-id)
                           incident_resolved  the incident ended (the same --incident-id)
  --metadata <Metadata>  free text or JSON, at most 1024 bytes (UTF-8), e.g. a version or a URL
  --sha <commit>         commit SHA the event is about, 7-64 hex digits: a push's head, the
                         deployed commit, or the change that caused an incident
  --before <commit>      a push's previous head (push only), 7-64 hex digits: the commit the
                         branch pointed to before the push (GitHub: github.event.before, GitLab:
                         $CI_COMMIT_BEFORE_SHA); all zeros (a new branch) is accepted and dropped
  --time <ISO>           when it happened: ISO-8601 (2026-01-01T12:00:00Z) or
                         'YYYY-MM-DD HH:MM:SS' (UTC), from 2000-01-01 to at most 15 minutes
                         ahead; default: when the script started (the same on every retry)
  --commits <file>       the changes a push brought or a deploy ships (push, deploy,
                         deploy_failed): one per line, '<sha>' or '<sha> <time>', at most 2048;
                         '-' reads stdin, e.g. git log --format='%H %cI' BEFORE..AFTER
  --environment <name>   where it happened (deploy, deploy_failed, service_restored, incident
                         events); default: production
  --outcome <outcome>    a deploy's outcome: success (the default) or failure
  --remediation <kind>   a deploy that fixes a failure: hotfix or rollback
  --deployment-id <id>   the deployment's own id (deploy, deploy_failed), or on incident_opened
                         the deployment that caused it; 1-128 letters, digits, '.', '_', ':', '-'
  --incident-id <id>     pairs incident_opened with incident_resolved (required on both)
  --team <name>          the team that owns it
  --service <name>       the service it is about (default: the repo)
                         (names: 1-100 characters, no control characters)
  -h, --help             show this help and exit

environment:
  DEVOPS_EVENTS_SECRET_TOKEN  required: the gateway's token (sent as a Bearer token, never printed)
  API_DEVOPS_EVENT_CATCHER    gateway URL (default: http://127.0.0.1:8000/process-event)
  DEVOPS_EVENT_TIMEOUT        seconds to keep retrying before giving up (default: 60)

behaviour:
  Each run generates one event_id (a UUID) and fixes the event's time once, and sends the very
  same body with every attempt, so a retried request is stored once, identically, downstream.
  Connection errors, timeouts, HTTP 408, 429 and 5xx are retried with exponential backoff and
  jitter, honouring Retry-After, until DEVOPS_EVENT_TIMEOUT runs out.
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

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm, as in .py/.sh). */
function daysFromCivil(year, month, day) {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor((y >= 0 ? y : y - 399) / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function daysInMonth(year, month) {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** '' when the gateway would take the value as an event time, else what is wrong with it. */
function timeProblem(value, nowS) {
  const match = TIME_RE.exec(value);
  if (!match) return 'invalid';
  const num = (group) => Number(match[group] || 0);
  const [year, month, day] = [num(1), num(2), num(3)];
  const [hour, minute, second, offsetH, offsetM] = [num(5), num(6), num(8), num(13), num(15)];
  if (!(month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month))) return 'invalid';
  if (hour > 23 || minute > 59 || second > 59 || offsetH > 23 || offsetM > 59) return 'invalid';
  const offset = (offsetH * 3600 + offsetM * 60) * (match[12] === '-' ? -1 : 1);
  const epoch = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
  if (epoch < EARLIEST_S) return 'early';
  if (epoch - nowS > MAX_AHEAD_S) return 'future';
  return '';
}

function checkTime(value, label, nowS, where = '') {
  const problem = timeProblem(value, nowS);
  if (problem === 'invalid') throw new UsageError(`${where}invalid ${label} '${value}': ${TIME_HINT}`);
  if (problem === 'early') {
    throw new UsageError(`${where}${label} '${value}' is before 2000-01-01; send the real event time`);
  }
  if (problem === 'future') {
    throw new UsageError(`${where}${label} '${value}' is more than 15 minutes in the future`);
  }
}

const trimSpace = (text) => text.replace(/^[ \t\n\r\f\v]+|[ \t\n\r\f\v]+$/g, '');

/** Environment, team and service names: trimmed, 1-100 characters, no control characters. */
function checkName(value, label) {
  const name = trimSpace(value);
  if (!name || [...name].length > MAX_NAME_CHARS || CONTROL_RE.test(name)) {
    throw new UsageError(`invalid ${label} '${value}': use 1-100 characters without control characters`);
  }
  return name;
}

function checkId(value, label) {
  if (!ID_RE.test(value)) {
    throw new UsageError(
      `invalid ${label} '${value}': use 1-128 letters, digits, '.', '_', ':', '-' starting with a letter or digit`,
    );
  }
}

function readCommits(source) {
  try {
    return fs.readFileSync(source === '-' ? 0 : source).toString('utf8');
  } catch {
    throw new UsageError(`--commits: cannot read '${source}'`);
  }
}

/** '<sha>' or '<sha> <time>' per line (git log --format='%H %cI', git rev-list); blank lines skipped. */
function parseCommits(text, nowS) {
  const commits = [];
  text.split('\n').forEach((raw, index) => {
    const line = trimSpace(raw);
    if (!line) return;
    const cut = line.search(/[ \t]/);
    const sha = cut === -1 ? line : line.slice(0, cut);
    if (!SHA_RE.test(sha)) {
      throw new UsageError(`--commits line ${index + 1}: invalid sha '${sha}': must be 7-64 hex digits`);
    }
    const commit = { sha };
    if (cut !== -1) {
      const time = line.slice(cut).replace(/^[ \t]+/, '');
      checkTime(time, 'time', nowS, `--commits line ${index + 1}: `);
      commit.time = time;
    }
    commits.push(commit);
  });
  if (commits.length > MAX_COMMITS) {
    throw new UsageError(
      `--commits lists ${commits.length} commits; at most ${MAX_COMMITS} are allowed ` +
        '(e.g. git rev-list --max-count=2048)',
    );
  }
  return commits;
}

/** The gateway's rules, checked before any request so a typo fails fast and sends nothing.
 * Returns the event's optional fields as they will be sent. */
function validate(args, nowS) {
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
  const fields = {};
  for (const name of VALUE_OPTIONS) {
    let value = args[name];
    if (value === undefined) continue;
    const allowed = OPTION_EVENTS[name];
    if (allowed !== undefined && !allowed.includes(args.event)) {
      throw new UsageError(`--${name} only applies to ${allowed.join(', ')} events`);
    }
    const field = name.replace('-', '_');
    if ((name === 'sha' || name === 'before') && !SHA_RE.test(value)) {
      throw new UsageError(`invalid --${name} '${value}': must be 7-64 hex digits`);
    }
    if (name === 'time') checkTime(value, '--time', nowS);
    if (name === 'metadata') {
      const size = Buffer.byteLength(value, 'utf8');
      if (size > MAX_METADATA_BYTES) {
        throw new UsageError(`--metadata is ${size} bytes; at most ${MAX_METADATA_BYTES} bytes are allowed`);
      }
    }
    if (['environment', 'team', 'service'].includes(name)) value = checkName(value, `--${name}`);
    if (name === 'outcome') {
      if (!['success', 'failure'].includes(value)) {
        throw new UsageError(`invalid --outcome '${value}': must be success or failure`);
      }
      if (value === 'success' && args.event === 'deploy_failed') {
        throw new UsageError('--outcome success contradicts deploy_failed; report a deploy instead');
      }
    }
    if (name === 'remediation' && !['hotfix', 'rollback'].includes(value)) {
      throw new UsageError(`invalid --remediation '${value}': must be hotfix or rollback`);
    }
    if (name === 'deployment-id' || name === 'incident-id') checkId(value, `--${name}`);
    if (name === 'commits') {
      const commits = parseCommits(readCommits(value), nowS);
      if (commits.length) fields[field] = commits;
      continue;
    }
    fields[field] = value;
  }
  if (INCIDENT_EVENTS.includes(args.event) && fields.incident_id === undefined) {
    throw new UsageError(`${args.event} needs --incident-id (it pairs incident_opened with incident_resolved)`);
  }
  return fields;
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

/** Built once: every attempt sends these very bytes (the time too, so a retry is identical). */
function buildBody(args, fields, eventId, startedMs) {
  const { time, ...rest } = fields;
  const body = { repo: args.repo, event: args.event, event_id: eventId, source: SOURCE };
  body.time = time !== undefined ? time : new Date(startedMs).toISOString();
  return JSON.stringify({ ...body, ...rest });
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
  let fields;
  let config;
  const startedMs = Date.now(); // the event's time unless --time says otherwise
  try {
    args = parseArgs(argv);
    fields = validate(args, Math.floor(startedMs / 1000));
    config = readConfig(process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.showUsage) process.stderr.write(`${HELP.split('\n')[0].replaceAll('{prog}', prog)}\n`);
    return fail(prog, `${err.message} (see --help)`, EXIT_USAGE);
  }

  const eventId = randomUUID();
  const body = buildBody(args, fields, eventId, startedMs);
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
