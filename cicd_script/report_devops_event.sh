#!/usr/bin/env bash
# Report one DevOps event from a CI/CD job to the devops-metrics gateway.
#
# Needs bash and curl only (no jq). Behaves exactly like report_devops_event.py and
# report_devops_event.js (same arguments, messages and exit codes); `--help` says it all.
# The token reaches curl on stdin, never on its command line, so `ps` cannot show it.
set -euo pipefail

readonly EXIT_OK=0 EXIT_GAVE_UP=1 EXIT_USAGE=2
readonly DEFAULT_URL="http://127.0.0.1:8000/process-event"
readonly DEFAULT_TIMEOUT_S="60"
readonly SOURCE="cicd_script"
readonly EVENTS="push deploy test_pass deploy_failed service_restored incident_opened incident_resolved"
readonly INCIDENT_EVENTS="incident_opened incident_resolved"
# Every option takes one value; the order is the order in which they are checked.
readonly VALUE_OPTIONS=(sha before time metadata environment outcome remediation deployment-id incident-id team service commits)
readonly REPO_RE='^[A-Za-z0-9][A-Za-z0-9._/-]{0,139}$'
readonly SHA_RE='^[0-9a-fA-F]{7,64}$'
readonly ID_RE='^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$'
# ISO-8601 or 'YYYY-MM-DD HH:MM:SS'; the groups are the same in the .py and .js scripts.
readonly TIME_RE='^([0-9]{4})-([0-9]{2})-([0-9]{2})([T ]([0-9]{2}):([0-9]{2})(:([0-9]{2})([.,][0-9]{1,9})?)?(([Zz])|([+-])([0-9]{2})(:?([0-9]{2}))?)?)?$'
readonly SPACE_CHARS=$' \t\n\r\f\v'
readonly MAX_NAME_CHARS=100 MAX_COMMITS=2048
readonly EARLIEST_S=946684800 # 2000-01-01T00:00:00Z
readonly MAX_AHEAD_S=900
readonly TIME_HINT="use ISO-8601 (2026-01-01T12:00:00Z) or 'YYYY-MM-DD HH:MM:SS'"
readonly URL_RE='^https?://[^/?#[:space:]]+'
readonly TIMEOUT_RE='^([0-9]+)(\.([0-9]+))?$'
readonly NEGATIVE_NUMBER_RE='^-[0-9]+$|^-[0-9]*\.[0-9]+$'
readonly MAX_METADATA_BYTES=1024
readonly BACKOFF_BASE_MS=500 BACKOFF_CAP_MS=8000
readonly ATTEMPT_TIMEOUT_MS=15000 MIN_ATTEMPT_MS=500

PROG="${0##*/}"
readonly PROG

HELP="$(
  cat <<'EOF'
usage: {prog} <Repo name> <Event> [--metadata <Metadata>] [--sha <commit>] [--time <ISO>] [options]

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
EOF
)"
readonly HELP

log() { printf '%s: %s\n' "$PROG" "$1" >&2; }

# usage_error MESSAGE [show_usage]: exit 2 with a message saying what to fix.
usage_error() {
  if [[ "${2:-}" == "show_usage" ]]; then
    local usage="${HELP%%$'\n'*}"
    printf '%s\n' "${usage//\{prog\}/$PROG}" >&2
  fi
  log "error: $1 (see --help)"
  exit "$EXIT_USAGE"
}

# Mirrors Python argparse's rule for "does this argument look like an option?".
looks_like_option() {
  [[ "$1" == -* && "$1" != "-" && ! "$1" =~ $NEGATIVE_NUMBER_RE && "$1" != *" "* ]]
}

wants_help() {
  local arg
  for arg in "$@"; do
    [[ "$arg" == "--" ]] && return 1
    [[ "$arg" == "-h" || "$arg" == "--help" ]] && return 0
  done
  return 1
}

byte_length() {
  local LC_ALL=C
  printf '%s' "${#1}"
}

# option_events NAME: the events that may carry option NAME (the gateway's rule); empty = every event.
option_events() {
  case "$1" in
    before) printf '%s' "push" ;;
    environment) printf '%s' "deploy deploy_failed service_restored incident_opened incident_resolved" ;;
    outcome | remediation) printf '%s' "deploy deploy_failed" ;;
    deployment-id) printf '%s' "deploy deploy_failed incident_opened" ;;
    incident-id) printf '%s' "$INCIDENT_EVENTS" ;;
    commits) printf '%s' "push deploy deploy_failed" ;;
  esac
}

# option_index NAME: sets OPTION_INDEX to NAME's position in VALUE_OPTIONS, or -1.
option_index() {
  local i
  OPTION_INDEX=-1
  for i in "${!VALUE_OPTIONS[@]}"; do
    if [[ "${VALUE_OPTIONS[i]}" == "$1" ]]; then
      OPTION_INDEX=$i
      return 0
    fi
  done
}

# Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm, as in .py/.js).
days_from_civil() {
  local y="$1" m="$2" d="$3" era yoe doy doe
  ((m <= 2)) && y=$((y - 1))
  if ((y >= 0)); then era=$((y / 400)); else era=$(((y - 399) / 400)); fi
  yoe=$((y - era * 400))
  if ((m > 2)); then doy=$(((153 * (m - 3) + 2) / 5 + d - 1)); else doy=$(((153 * (m + 9) + 2) / 5 + d - 1)); fi
  doe=$((yoe * 365 + yoe / 4 - yoe / 100 + doy))
  DAYS=$((era * 146097 + doe - 719468))
}

days_in_month() {
  local y="$1" m="$2"
  if ((m == 2)); then
    if ((y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))); then MONTH_DAYS=29; else MONTH_DAYS=28; fi
  elif ((m == 4 || m == 6 || m == 9 || m == 11)); then
    MONTH_DAYS=30
  else
    MONTH_DAYS=31
  fi
}

# time_problem VALUE: sets TIME_PROBLEM to '' when the gateway would take VALUE as an event time,
# else to invalid, early or future.
time_problem() {
  TIME_PROBLEM=invalid
  [[ "$1" =~ $TIME_RE ]] || return 0
  local year=$((10#${BASH_REMATCH[1]})) month=$((10#${BASH_REMATCH[2]})) day=$((10#${BASH_REMATCH[3]}))
  local hour=$((10#${BASH_REMATCH[5]:-0})) minute=$((10#${BASH_REMATCH[6]:-0})) second=$((10#${BASH_REMATCH[8]:-0}))
  local sign="${BASH_REMATCH[12]}" offset_h=$((10#${BASH_REMATCH[13]:-0})) offset_m=$((10#${BASH_REMATCH[15]:-0}))
  ((month >= 1 && month <= 12)) || return 0
  days_in_month "$year" "$month"
  ((day >= 1 && day <= MONTH_DAYS)) || return 0
  ((hour <= 23 && minute <= 59 && second <= 59 && offset_h <= 23 && offset_m <= 59)) || return 0
  local offset=$((offset_h * 3600 + offset_m * 60))
  [[ "$sign" == "-" ]] && offset=$((-offset))
  days_from_civil "$year" "$month" "$day"
  local epoch=$((DAYS * 86400 + hour * 3600 + minute * 60 + second - offset))
  if ((epoch < EARLIEST_S)); then
    TIME_PROBLEM=early
  elif ((epoch - STARTED_S > MAX_AHEAD_S)); then
    TIME_PROBLEM=future
  else
    TIME_PROBLEM=""
  fi
}

# check_time VALUE LABEL [WHERE]: exit 2 unless the gateway would take VALUE as an event time.
check_time() {
  local where="${3:-}"
  time_problem "$1"
  case "$TIME_PROBLEM" in
    invalid) usage_error "${where}invalid $2 '$1': $TIME_HINT" ;;
    early) usage_error "${where}$2 '$1' is before 2000-01-01; send the real event time" ;;
    future) usage_error "${where}$2 '$1' is more than 15 minutes in the future" ;;
  esac
}

# trim TEXT: sets TRIMMED to TEXT without leading and trailing ASCII whitespace.
trim() {
  TRIMMED="$1"
  TRIMMED="${TRIMMED#"${TRIMMED%%[!"$SPACE_CHARS"]*}"}"
  TRIMMED="${TRIMMED%"${TRIMMED##*[!"$SPACE_CHARS"]}"}"
}

# check_name VALUE LABEL: environment, team and service names: trimmed (into TRIMMED), 1-100
# characters (code points: UTF-8 continuation bytes are not counted), no control characters.
check_name() {
  local LC_ALL=C chars
  trim "$1"
  chars="${TRIMMED//[$'\x80'-$'\xbf']/}"
  if [[ -z "$TRIMMED" ]] || ((${#chars} > MAX_NAME_CHARS)) || [[ "$TRIMMED" == *[$'\x01'-$'\x1f'$'\x7f']* ]]; then
    usage_error "invalid $2 '$1': use 1-100 characters without control characters"
  fi
}

check_id() {
  if [[ ! "$1" =~ $ID_RE ]]; then
    usage_error "invalid $2 '$1': use 1-128 letters, digits, '.', '_', ':', '-' starting with a letter or digit"
  fi
}

# read_commits SOURCE: '<sha>' or '<sha> <time>' per line (git log --format='%H %cI', git rev-list),
# blank lines skipped; sets COMMITS_JSON (a JSON array) and COMMIT_COUNT.
read_commits() {
  local source="$1" path="$1" line sha rest number=0
  [[ "$source" == "-" ]] && path=/dev/stdin
  if [[ -d "$path" || ! -r "$path" ]]; then
    usage_error "--commits: cannot read '${source}'"
  fi
  COMMITS_JSON="" COMMIT_COUNT=0
  while IFS= read -r line || [[ -n "$line" ]]; do
    number=$((number + 1))
    trim "$line"
    line="$TRIMMED"
    [[ -z "$line" ]] && continue
    sha="${line%%[ $'\t']*}"
    if [[ ! "$sha" =~ $SHA_RE ]]; then
      usage_error "--commits line ${number}: invalid sha '${sha}': must be 7-64 hex digits"
    fi
    rest="${line#"$sha"}"
    rest="${rest#"${rest%%[! $'\t']*}"}"
    # Both values matched SHA_RE / TIME_RE, which admit nothing JSON must escape: no subshell per line.
    COMMITS_JSON+="${COMMITS_JSON:+,}{\"sha\":\"${sha}\""
    if [[ -n "$rest" ]]; then
      check_time "$rest" "time" "--commits line ${number}: "
      COMMITS_JSON+=",\"time\":\"${rest}\""
    fi
    COMMITS_JSON+="}"
    COMMIT_COUNT=$((COMMIT_COUNT + 1))
  done <"$path"
  if ((COMMIT_COUNT > MAX_COMMITS)); then
    usage_error "--commits lists ${COMMIT_COUNT} commits; at most ${MAX_COMMITS} are allowed (e.g. git rev-list --max-count=2048)"
  fi
  COMMITS_JSON="[${COMMITS_JSON}]"
}

# started_now: the moment the script started, STARTED_S (Unix seconds) and STARTED_ISO
# ('2026-01-01T12:00:00.123Z', the event's time unless --time says otherwise).
started_now() {
  local TZ=UTC0 stamp ms="000"
  if [[ -n "${EPOCHREALTIME:-}" ]]; then
    local t="${EPOCHREALTIME/[,.]/}"
    STARTED_S=$((10#$t / 1000000))
    printf -v ms '%03d' "$((10#$t / 1000 % 1000))"
  else
    STARTED_S="$(date +%s)"
  fi
  if ! printf -v stamp '%(%Y-%m-%dT%H:%M:%S)T' "$STARTED_S" 2>/dev/null; then
    stamp="$(date -u +%Y-%m-%dT%H:%M:%S)" # bash before 4.2
  fi
  STARTED_ISO="${stamp}.${ms}Z"
}

# json_string TEXT: TEXT as a JSON string literal (quotes, backslashes and control characters escaped).
json_string() {
  local s="$1" out="" c i code
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\n'/\\n}"
  s="${s//$'\r'/\\r}"
  s="${s//$'\t'/\\t}"
  if [[ "$s" == *[$'\x01'-$'\x1f']* ]]; then
    for ((i = 0; i < ${#s}; i++)); do
      c="${s:i:1}"
      if [[ "$c" == [$'\x01'-$'\x1f'] ]]; then
        printf -v code '%d' "'$c"
        printf -v c '\\u%04x' "$code"
      fi
      out+="$c"
    done
    s="$out"
  fi
  printf '"%s"' "$s"
}

# json_unescape TEXT: undo the common JSON string escapes (enough for error messages).
json_unescape() {
  local s="$1"
  s="${s//\\\"/\"}"
  s="${s//\\n/ }"
  s="${s//\\t/ }"
  s="${s//\\\//\/}"
  s="${s//\\\\/\\}"
  printf '%s' "$s"
}

# describe_body TEXT: the gateway's error detail in one line: 'field: reason; ...', the detail
# string, or the body itself.
describe_body() {
  local text="$1" rest out="" str='"((\\.|[^"\\])*)"' sp='[[:space:]]*'
  local item_re="\\{${sp}\"field\"${sp}:${sp}${str}${sp},${sp}\"reason\"${sp}:${sp}${str}${sp}\\}"
  if [[ "$text" =~ \"detail\"${sp}:${sp}\[ ]]; then
    rest="$text"
    while [[ "$rest" =~ $item_re ]]; do
      out+="${out:+; }$(json_unescape "${BASH_REMATCH[1]}"): $(json_unescape "${BASH_REMATCH[3]}")"
      rest="${rest#*"${BASH_REMATCH[0]}"}"
    done
    if [[ -n "$out" ]]; then
      printf '%s' "$out"
      return
    fi
  fi
  if [[ "$text" =~ \"detail\"${sp}:${sp}${str} ]]; then
    json_unescape "${BASH_REMATCH[1]}"
    return
  fi
  local flat words
  read -r -d '' -a words <<<"$text" || true
  flat="${words[*]:-}"
  if [[ -n "$flat" ]]; then printf '%s' "${flat:0:200}"; else printf '(empty body)'; fi
}

client_error_message() {
  local status="$1" detail url="$3"
  detail="$(describe_body "$2")"
  case "$status" in
    3??) printf 'the gateway redirects (HTTP %s): set API_DEVOPS_EVENT_CATCHER to the final URL' "$status" ;;
    401 | 403) printf 'token rejected: check DEVOPS_EVENTS_SECRET_TOKEN (HTTP %s: %s)' "$status" "$detail" ;;
    404 | 405)
      printf 'no event endpoint at %s: check API_DEVOPS_EVENT_CATCHER (HTTP %s: %s)' "$url" "$status" "$detail"
      ;;
    413) printf 'request too large: shorten --metadata (HTTP 413: %s)' "$detail" ;;
    422) printf 'event rejected by the gateway (HTTP 422): %s' "$detail" ;;
    *) printf 'request rejected by the gateway (HTTP %s): %s' "$status" "$detail" ;;
  esac
}

# Milliseconds as '1.2s', truncated the same way in all three scripts.
fmt_seconds() {
  local ms="$1"
  ((ms < 0)) && ms=0
  printf '%d.%ds' "$((ms / 1000))" "$((ms % 1000 / 100))"
}

now_ms() {
  if [[ -n "${EPOCHREALTIME:-}" ]]; then
    local t="${EPOCHREALTIME/[,.]/}"
    printf '%s' "$((10#$t / 1000))"
  else
    printf '%s' "$(($(date +%s) * 1000))"
  fi
}

ms_to_seconds() { printf '%d.%03d' "$(($1 / 1000))" "$(($1 % 1000))"; }

# Exponential backoff with jitter: a random delay in [half, full] of min(cap, base * 2^retry).
backoff_ms() {
  local retry="$1" full
  ((retry > 10)) && retry=10
  full=$((BACKOFF_BASE_MS * (1 << retry)))
  ((full > BACKOFF_CAP_MS)) && full=$BACKOFF_CAP_MS
  local half=$((full / 2))
  printf '%s' "$((half + (RANDOM * 32768 + RANDOM) % (half + 1)))"
}

new_uuid() {
  local id
  if [[ -r /proc/sys/kernel/random/uuid ]]; then
    id="$(cat /proc/sys/kernel/random/uuid)"
  elif command -v uuidgen >/dev/null 2>&1; then
    id="$(uuidgen)"
  else
    local hex
    hex="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    id="${hex:0:8}-${hex:8:4}-4${hex:13:3}-$(printf '%x' $((0x${hex:16:1} & 3 | 8)))${hex:17:3}-${hex:20:12}"
  fi
  printf '%s' "$id" | tr 'A-F' 'a-f'
}

# post URL BODY_FILE TIMEOUT_MS: sets STATUS (0 = transport error), RESPONSE, RETRY_AFTER, ERROR.
post() {
  local url="$1" body_file="$2" timeout_ms="$3" rc=0 code
  : >"$WORK/headers"
  : >"$WORK/response"
  code="$(
    printf 'Authorization: Bearer %s\n' "$TOKEN" |
      curl --silent --show-error --request POST --max-time "$(ms_to_seconds "$timeout_ms")" \
        --header @- --header "Expect:" \
        --header "Content-Type: application/json" --header "Accept: application/json" \
        --user-agent "report_devops_event.sh" \
        --data-binary "@$body_file" --dump-header "$WORK/headers" --output "$WORK/response" \
        --write-out '%{http_code}' "$url" 2>"$WORK/curl_err"
  )" || rc=$?
  STATUS=0 RESPONSE="" RETRY_AFTER="" ERROR=""
  if ((rc != 0)); then
    ERROR="connection error: $(tr -d '\r\n' <"$WORK/curl_err")"
    # curl 7 is "could not connect": refused, unless it names an unreachable network.
    if ((rc == 7)) && [[ "$ERROR" != *"route to host"* && "$ERROR" != *"nreachable"* ]]; then
      ERROR="connection refused"
    elif ((rc == 28)); then
      ERROR="timed out after $(fmt_seconds "$timeout_ms")"
    fi
    return 0
  fi
  STATUS="$code"
  RESPONSE="$(cat "$WORK/response")"
  local line value
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line%$'\r'}"
    if [[ "$line" == [Rr][Ee][Tt][Rr][Yy]-[Aa][Ff][Tt][Ee][Rr]:* ]]; then
      value="${line#*:}"
      value="${value#"${value%%[![:space:]]*}"}"
      RETRY_AFTER="${value%"${value##*[![:space:]]}"}"
    fi
  done <"$WORK/headers"
}

describe_attempt() {
  if [[ "$STATUS" == "0" ]]; then printf '%s' "$ERROR"; else printf 'HTTP %s: %s' "$STATUS" "$(describe_body "$RESPONSE")"; fi
}

give_up() {
  local attempts="$1" start="$2" extra="$3"
  log "error: gave up after ${attempts} attempt(s) in $(fmt_seconds "$(($(now_ms) - start))") (DEVOPS_EVENT_TIMEOUT): $(describe_attempt)${extra}"
  exit "$EXIT_GAVE_UP"
}

main() {
  if wants_help "$@"; then
    printf '%s\n' "${HELP//\{prog\}/$PROG}"
    exit "$EXIT_OK"
  fi

  started_now

  # The seed's interface, parsed with argparse's rules and messages (see the Python script).
  local -a positionals=() unrecognized=() values=() given=()
  local only_positionals=0 arg name value
  while (($# > 0)); do
    arg="$1"
    shift
    if ((only_positionals == 0)) && [[ "$arg" == "--" ]]; then
      only_positionals=1
    elif ((only_positionals == 1)) || ! looks_like_option "$arg"; then
      if ((${#positionals[@]} < 2)); then positionals+=("$arg"); else unrecognized+=("$arg"); fi
    else
      name="$arg"
      if [[ "$arg" == --*=* ]]; then name="${arg%%=*}"; fi
      option_index "${name#--}"
      if [[ "$name" != --* ]] || ((OPTION_INDEX < 0)); then
        unrecognized+=("$arg")
        continue
      fi
      if [[ "$arg" == --*=* ]]; then
        value="${arg#*=}"
      elif (($# > 0)) && ! looks_like_option "$1"; then
        value="$1"
        shift
      else
        usage_error "argument ${name}: expected one argument" show_usage
      fi
      values[OPTION_INDEX]="$value"
      given[OPTION_INDEX]=1
    fi
  done
  if ((${#positionals[@]} == 0)); then
    usage_error "the following arguments are required: repo, event" show_usage
  elif ((${#positionals[@]} == 1)); then
    usage_error "the following arguments are required: event" show_usage
  fi
  if ((${#unrecognized[@]} > 0)); then
    usage_error "unrecognized arguments: ${unrecognized[*]}" show_usage
  fi
  local repo="${positionals[0]}" event="${positionals[1]}"

  # The gateway's rules, checked before any request so a typo fails fast and sends nothing.
  if [[ ! "$repo" =~ $REPO_RE ]]; then
    usage_error "invalid repo '${repo}': use 1-140 letters, digits, '.', '_', '-', '/' starting with a letter or digit, or ALL"
  fi
  if [[ " $EVENTS " != *" $event "* || "$event" == *" "* || -z "$event" ]]; then
    local internal=""
    [[ "$event" == calc_* ]] && internal=" (calc_* events are computed by the aggregator)"
    usage_error "invalid event '${event}'${internal}: must be one of ${EVENTS// /, }"
  fi
  local i allowed field fields="" time="$STARTED_ISO" has_incident_id=0 size
  for i in "${!VALUE_OPTIONS[@]}"; do
    [[ "${given[i]:-0}" == 1 ]] || continue
    name="${VALUE_OPTIONS[i]}"
    value="${values[i]}"
    allowed="$(option_events "$name")"
    if [[ -n "$allowed" && " $allowed " != *" $event "* ]]; then
      usage_error "--${name} only applies to ${allowed// /, } events"
    fi
    field="${name//-/_}"
    case "$name" in
      sha | before)
        [[ "$value" =~ $SHA_RE ]] || usage_error "invalid --${name} '${value}': must be 7-64 hex digits"
        ;;
      time)
        check_time "$value" "--time"
        time="$value"
        continue
        ;;
      metadata)
        size="$(byte_length "$value")"
        if ((size > MAX_METADATA_BYTES)); then
          usage_error "--metadata is ${size} bytes; at most ${MAX_METADATA_BYTES} bytes are allowed"
        fi
        ;;
      environment | team | service)
        check_name "$value" "--${name}"
        value="$TRIMMED"
        ;;
      outcome)
        [[ "$value" == "success" || "$value" == "failure" ]] ||
          usage_error "invalid --outcome '${value}': must be success or failure"
        if [[ "$value" == "success" && "$event" == "deploy_failed" ]]; then
          usage_error "--outcome success contradicts deploy_failed; report a deploy instead"
        fi
        ;;
      remediation)
        [[ "$value" == "hotfix" || "$value" == "rollback" ]] ||
          usage_error "invalid --remediation '${value}': must be hotfix or rollback"
        ;;
      deployment-id | incident-id)
        check_id "$value" "--${name}"
        [[ "$name" == "incident-id" ]] && has_incident_id=1
        ;;
      commits)
        read_commits "$value"
        ((COMMIT_COUNT > 0)) && fields+=",\"commits\":${COMMITS_JSON}"
        continue
        ;;
    esac
    fields+=",\"${field}\":$(json_string "$value")"
  done
  if [[ " $INCIDENT_EVENTS " == *" $event "* ]] && ((has_incident_id == 0)); then
    usage_error "${event} needs --incident-id (it pairs incident_opened with incident_resolved)"
  fi

  # The environment: gateway URL, token and the total time budget in milliseconds.
  local url="${API_DEVOPS_EVENT_CATCHER:-$DEFAULT_URL}"
  if [[ ! "$url" =~ $URL_RE ]]; then
    usage_error "API_DEVOPS_EVENT_CATCHER must be an http:// or https:// URL, not '${url}'"
  fi
  TOKEN="${DEVOPS_EVENTS_SECRET_TOKEN:-}"
  TOKEN="${TOKEN#"${TOKEN%%[![:space:]]*}"}"
  TOKEN="${TOKEN%"${TOKEN##*[![:space:]]}"}"
  if [[ -z "$TOKEN" ]]; then
    usage_error "DEVOPS_EVENTS_SECRET_TOKEN is not set: export the gateway's token (make run prints it)"
  fi
  if [[ "$TOKEN" == *[[:space:][:cntrl:]]* ]]; then
    usage_error "DEVOPS_EVENTS_SECRET_TOKEN contains whitespace or control characters"
  fi
  local raw_timeout="${DEVOPS_EVENT_TIMEOUT:-$DEFAULT_TIMEOUT_S}" timeout_ms
  if [[ ! "$raw_timeout" =~ $TIMEOUT_RE ]]; then
    usage_error "DEVOPS_EVENT_TIMEOUT must be a positive number of seconds, not '${raw_timeout}'"
  fi
  local whole="${BASH_REMATCH[1]}" fraction="${BASH_REMATCH[3]}000"
  whole="${whole:0:9}"
  timeout_ms=$((10#$whole * 1000 + 10#${fraction:0:3}))
  if ((timeout_ms <= 0)) && [[ ! "$raw_timeout" =~ [1-9] ]]; then
    usage_error "DEVOPS_EVENT_TIMEOUT must be a positive number of seconds, not '${raw_timeout}'"
  fi
  ((timeout_ms < 1)) && timeout_ms=1

  # Built once: every attempt sends these very bytes (the time too, so a retry is identical).
  local event_id body
  event_id="$(new_uuid)"
  body="{\"repo\":$(json_string "$repo"),\"event\":$(json_string "$event"),\"event_id\":$(json_string "$event_id"),\"source\":$(json_string "$SOURCE")"
  body+=",\"time\":$(json_string "$time")${fields}}"

  WORK="$(mktemp -d "${TMPDIR:-/tmp}/report_devops_event.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  printf '%s' "$body" >"$WORK/body"

  local start deadline remaining wait attempt_no=0 retry_after_ms
  start="$(now_ms)"
  deadline=$((start + timeout_ms))
  while true; do
    attempt_no=$((attempt_no + 1))
    remaining=$((deadline - $(now_ms)))
    ((remaining > ATTEMPT_TIMEOUT_MS)) && remaining=$ATTEMPT_TIMEOUT_MS
    ((remaining < 1)) && remaining=1
    post "$url" "$WORK/body" "$remaining"
    if ((STATUS >= 200 && STATUS < 300)); then
      local accepted_id="$event_id"
      if [[ "$RESPONSE" =~ \"event_id\"[[:space:]]*:[[:space:]]*\"([^\"]+)\" ]]; then
        accepted_id="${BASH_REMATCH[1]}"
      fi
      printf 'event_id=%s\n' "$accepted_id"
      exit "$EXIT_OK"
    fi
    if ((STATUS != 0 && STATUS != 408 && STATUS != 429 && STATUS < 500)); then
      log "error: $(client_error_message "$STATUS" "$RESPONSE" "$url")"
      exit "$EXIT_USAGE"
    fi
    remaining=$((deadline - $(now_ms)))
    wait="$(backoff_ms "$((attempt_no - 1))")"
    if [[ "$RETRY_AFTER" =~ ^[0-9]+$ ]]; then
      retry_after_ms=$((10#${RETRY_AFTER:0:9} * 1000))
      if ((retry_after_ms + MIN_ATTEMPT_MS > remaining)); then
        give_up "$attempt_no" "$start" "; the gateway asked to wait ${RETRY_AFTER}s"
      fi
      ((retry_after_ms > wait)) && wait=$retry_after_ms
    fi
    ((wait > remaining - MIN_ATTEMPT_MS)) && wait=$((remaining - MIN_ATTEMPT_MS))
    ((wait < 0)) && give_up "$attempt_no" "$start" ""
    log "attempt ${attempt_no} failed ($(describe_attempt)); retrying in $(fmt_seconds "$wait")"
    sleep "$(ms_to_seconds "$wait")"
  done
}

main "$@"
