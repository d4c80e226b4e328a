#!/usr/bin/env bash
# tollgate load benchmark: the simulated provider reached directly, through
# nginx, and through tollgate with metering on and off, on loopback. See
# bench/README.md.
#
#   bench/run.sh                          (make bench builds and calls it)
#   BENCH_SECONDS=5 BENCH_RUNS=3 bench/run.sh
#
# Environment:
#   BENCH_SECONDS  measured seconds per run           (default 10)
#   BENCH_WARMUP   warm-up seconds before each run    (default 2)
#   BENCH_RUNS     interleaved runs, medians reported (default 3)
#   BENCH_CONNS    connection counts                  (default "1 32 256")
#   BENCH_TARGETS  targets  (default "direct direct-x nginx tollgate tollgate-bg tollgate-nometer
#                  tollgate-plans tollgate-routing")
#                  direct-x is a second sim on the proxies' core, measured at
#                  1 connection only: the cost of one cross-core round trip,
#                  of which a proxy in this layout makes two per request.
#                  tollgate meters every request (journal and ledger in the
#                  temp dir, the default fsync policy); tollgate-nometer is a
#                  second tollgate, same config and core, with
#                  metering: {enabled: false}. tollgate-bg is tollgate with
#                  its own data_dir and its background threads (tg-ledger,
#                  tg-jflush) free to run on any core; its worker stays on
#                  the proxies' core. tollgate-plans is tollgate with the
#                  bench key on a customer whose plan has a hard cap and rate
#                  limits (per customer and per key) that never bind: every
#                  request is attributed, rate-limited, reserved and settled.
#                  tollgate-routing is tollgate whose model has three
#                  offerings, strategy cheapest, the cheapest of them at a
#                  provider that refuses connections: its breaker opens in
#                  the warm-up, and every request then orders the three by
#                  its expected cost, skips the open breaker and is served
#                  by the second (routing.breaker.cooldown_ms: 1 h, so no
#                  probe falls inside a measurement).
#   BENCH_AB_CYCLES   metering A/B: cycles of tollgate and tollgate-nometer
#                  (and of tollgate-plans and tollgate, for the plans bar,
#                  and of tollgate-routing and tollgate, for routing's)
#                  back to back, at each connection count above 1 (default
#                  10; 0 skips it). Each cycle measures both for
#                  BENCH_AB_SECONDS (default 3), in alternating order; the
#                  metering bar is judged on the median of the per-cycle
#                  ratios. Short windows side by side cancel the drift of a
#                  shared machine, which moves 10-second runs by 20% or more.
#   BENCH_TOGETHER_CYCLES  metering on and off at once: cycles of tollgate and
#                  tollgate-nometer loaded at the same time, each by its own
#                  wrk, for BENCH_AB_SECONDS, at each connection count above 1
#                  (default 10; 0 skips it). Reports what a request costs
#                  each in CPU time, measured under the same conditions to
#                  the moment; see "metering on and off at once" below.
#   BENCH_OUT      also write the results as markdown to this file
#   BENCH_PERF     after the runs, profile tollgate with perf during one extra
#                  32-connection run; the report goes to this file
#   BENCH_PERF_TARGET  the target BENCH_PERF profiles (default tollgate;
#                  tollgate-nometer for the comparison)
#   BENCH_NGINX_KEEPALIVE  idle upstream connections nginx keeps (default 64;
#                  below the connection count, nginx opens and closes the rest)
#   BENCH_KEEP     1: keep the temp dir (logs, configs, raw results)
#   BENCH_CORE_PROXY, BENCH_CORE_LOAD  cores of nginx/tollgate and of sim+wrk
#                  (default 0 and 1; equal: the one-core latency layout)
#   TOLLGATE_BIN   the gateway binary                 (default build/tollgate)
#
# Cores: the sim and wrk share core 1; nginx and both tollgates each get core 0
# (only one of them is loaded at a time). The same layout holds for every
# target. Each measurement waits for its target to be idle after the warm-up
# and again after the load (tollgate's ledger thread projecting the backlog,
# on the same core): no target's leftover work runs during another's
# measurement, and a measurement's CPU includes projecting its own load. Even
# runs take the targets in reverse order, so whatever a target leaves behind
# (dirty pages the kernel writes back) does not always land on one neighbour.
# Exit status: non-zero if any measurement had errors (or setup failed); the
# PASS/FAIL lines against the performance bar are informational.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_RUN=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
RUNS=${BENCH_RUNS:-3}
AB_CYCLES=${BENCH_AB_CYCLES:-10}
AB_SECONDS=${BENCH_AB_SECONDS:-3}
TOG_CYCLES=${BENCH_TOGETHER_CYCLES:-10}
CONNS=${BENCH_CONNS:-"1 32 256"}
TARGETS=${BENCH_TARGETS:-"direct direct-x nginx tollgate tollgate-bg tollgate-nometer tollgate-plans tollgate-routing"}
PERF_TARGET=${BENCH_PERF_TARGET:-tollgate}
BIN=${TOLLGATE_BIN:-$ROOT/build/tollgate}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
NGINX_KEEPALIVE=${BENCH_NGINX_KEEPALIVE:-64}
KEY=sk-tollgate-bench
CORE_PROXY=${BENCH_CORE_PROXY:-0}
CORE_LOAD=${BENCH_CORE_LOAD:-1}

die() { echo "bench: $*" >&2; exit 1; }
for t in wrk taskset awk sort; do command -v "$t" >/dev/null || die "$t not found (scripts/deps.sh bench)"; done
[ -x "$NGINX" ] || die "nginx not found (scripts/deps.sh bench)"
[ -x "$BIN" ] || die "$BIN not found (make)"
for t in $TARGETS; do
    case $t in direct | direct-x | nginx | tollgate | tollgate-bg | tollgate-nometer | tollgate-plans | tollgate-routing) ;;
    *) die "unknown target $t (BENCH_TARGETS)" ;;
    esac
done
[ -z "${BENCH_PERF:-}" ] || [ "$PERF_TARGET" = tollgate ] || case " $TARGETS " in *" $PERF_TARGET "*) ;; *)
    die "BENCH_PERF_TARGET=$PERF_TARGET is not in BENCH_TARGETS" ;;
esac

DIR=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX")
PIDS=()
cleanup() {
    local rc=$? p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: kept $DIR" >&2; else rm -rf "$DIR"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers ----------------------------------------------------------------

# port_open PORT: something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# listen_port LOG: the port from a tollgate "listening on 127.0.0.1:PORT" line.
listen_port() { grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$1" 2>/dev/null | head -n1 | sed 's/.*://'; }

# wait_port_in_log PID LOG NAME: wait for the log line, print the port.
wait_port_in_log() {
    local port=""
    for _ in $(seq 100); do
        port=$(listen_port "$2")
        [ -n "$port" ] && port_open "$port" && { echo "$port"; return; }
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    cat "$2" >&2
    die "$3 did not start"
}

# cpu_ticks PID: utime+stime of the whole process (all threads), in ticks.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# rss_kib PID
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
# settle PID: wait until the process is idle (at most 1 tick of CPU in 0.25 s;
# tollgate's ledger has caught up), for up to 120 s; print the seconds waited.
settle() {
    local a b i
    a=$(cpu_ticks "$1")
    for i in $(seq 480); do
        sleep 0.25
        b=$(cpu_ticks "$1")
        [ $((b - a)) -le 1 ] && { awk -v i="$i" 'BEGIN {printf "%.2f", (i - 1) * 0.25}'; return; }
        a=$b
    done
    die "pid $1 still busy 120 s after its load stopped"
}

has() { case " $TARGETS " in *" $1 "*) return 0 ;; esac; return 1; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# --- start the sim, nginx, tollgate -----------------------------------------

# Run a copy: the tree is shared, and a rebuild during the run must neither
# change what is measured nor leave perf with a deleted binary.
cp "$BIN" "$DIR/tollgate"
BIN=$DIR/tollgate

taskset -c $CORE_LOAD "$BIN" sim --listen 127.0.0.1:0 --seed 1 >"$DIR/sim.log" 2>&1 &
SIM_PID=$!
PIDS+=("$SIM_PID")
SIM_PORT=$(wait_port_in_log "$SIM_PID" "$DIR/sim.log" sim)
SIMX_PID=
if has direct-x; then
    taskset -c $CORE_PROXY "$BIN" sim --listen 127.0.0.1:0 --seed 1 >"$DIR/sim-x.log" 2>&1 &
    SIMX_PID=$!
    PIDS+=("$SIMX_PID")
    SIMX_PORT=$(wait_port_in_log "$SIMX_PID" "$DIR/sim-x.log" "sim (direct-x)")
fi

start_nginx() {
    # Below the ephemeral range: benchmark traffic leaves tens of thousands of
    # client ports in use or in TIME_WAIT there, and bind() would collide.
    local port low
    low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range)
    [ "$low" -gt 12000 ] || low=61000
    for _ in $(seq 20); do
        if [ "$low" = 61000 ]; then port=$((61000 + RANDOM % 4000)); else port=$((10000 + RANDOM % (low - 10000))); fi
        port_open "$port" && continue
        sed -e "s|@DIR@|$DIR|g" -e "s|@PORT@|$port|g" -e "s|@SIM_PORT@|$SIM_PORT|g" \
            -e "s|@KEEPALIVE@|$NGINX_KEEPALIVE|g" \
            bench/nginx.conf.in >"$DIR/nginx.conf"
        : >"$DIR/nginx-error.log"
        taskset -c $CORE_PROXY "$NGINX" -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/nginx-error.log" \
            >"$DIR/nginx.out" 2>&1 &
        NGINX_PID=$!
        for _ in $(seq 100); do
            port_open "$port" && { PIDS+=("$NGINX_PID"); NGINX_PORT=$port; return; }
            kill -0 "$NGINX_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
        grep -q 'Address already in use' "$DIR/nginx-error.log" "$DIR/nginx.out" || {
            cat "$DIR/nginx.out" "$DIR/nginx-error.log" >&2
            die "nginx did not start"
        }
    done
    die "nginx: no free port found"
}
has nginx && start_nginx

KEY_HASH=$("$BIN" keys hash "$KEY")
# tollgate_conf FILE METERING [plans|routing]: the one tollgate config, with
# METERING as its metering section (one YAML flow mapping); everything else
# is shared. With "plans", the bench key bills a customer on a plan whose
# hard cap and rate limits are checked for every request and never bind.
# With "routing", model bench has three offerings (see tollgate-routing).
tollgate_conf() {
    local owner="" billing="" offerings="[sim/bench]" routing=""
    if [ "${3:-}" = routing ]; then
        offerings="[down/bench, sim/bench, sim/bench2], strategy: cheapest"
        routing="routing: {breaker: {failures: 3, cooldown_ms: 3600000}}"
    fi
    if [ "${3:-}" = plans ]; then
        owner="    customer: bench-customer"
        billing="plans:
  - {id: bench-plan, overage: \"0\", hard_cap: {usd: \"1000000\"},
     limits: {rpm: 10000000, tpm: 1000000000000, concurrent: 100000},
     key_limits: {rpm: 10000000, tpm: 1000000000000, concurrent: 100000}}
apps:
  - {id: bench-app, margin: {markup_bps: 3000, platform_fee_bps: 500}}
customers:
  - {id: bench-customer, app: bench-app, plan: bench-plan}"
    fi
    cat >"$1" <<EOF
# generated by bench/run.sh
server:
  listen: 127.0.0.1:0
  workers: 1
log:
  level: info
sim:
  enabled: false
metering: $2
providers:
  - name: sim
    base_url: http://127.0.0.1:$SIM_PORT/v1
  - name: down
    base_url: http://127.0.0.1:1/v1
offerings:
  - {id: sim/bench, provider: sim, model: bench, price: {input: "0.15", output: "0.60"}}
  - {id: sim/bench2, provider: sim, model: bench, price: {input: "0.30", output: "1.20"}}
  - {id: down/bench, provider: down, model: bench, price: {input: "0.05", output: "0.20"}}
models:
  - {name: bench, offerings: $offerings}
$billing
$routing
keys:
  - id: bench
    sha256: $KEY_HASH
$owner
EOF
}
# start_tollgate NAME: tollgate serve with $DIR/NAME.yaml on the proxies' core;
# sets TG_PID and TG_PORT.
start_tollgate() {
    taskset -c $CORE_PROXY "$BIN" serve --config "$DIR/$1.yaml" >"$DIR/$1.out" 2>"$DIR/$1.log" &
    TG_PID=$!
    PIDS+=("$TG_PID")
    TG_PORT=$(wait_port_in_log "$TG_PID" "$DIR/$1.log" "$1")
}
TG_DATA=$DIR/tollgate-data
tollgate_conf "$DIR/tollgate.yaml" "{enabled: true, data_dir: $TG_DATA}"
tollgate_conf "$DIR/tollgate-nometer.yaml" "{enabled: false}"
TGN_PID=
if has tollgate-nometer; then
    start_tollgate tollgate-nometer
    TGN_PID=$TG_PID
    TGN_PORT=$TG_PORT
fi
TGB_PID=
if has tollgate-bg; then
    tollgate_conf "$DIR/tollgate-bg.yaml" "{enabled: true, data_dir: $DIR/tollgate-bg-data}"
    start_tollgate tollgate-bg
    TGB_PID=$TG_PID
    TGB_PORT=$TG_PORT
    # the threads exist once the port is logged; they inherited the core
    for task in /proc/"$TGB_PID"/task/*; do
        case $(cat "$task/comm") in
        tg-ledger | tg-jflush) taskset -p -c "0-$(($(nproc) - 1))" "${task##*/}" >/dev/null ;;
        esac
    done
fi
TGP_PID=
if has tollgate-plans; then
    tollgate_conf "$DIR/tollgate-plans.yaml" "{enabled: true, data_dir: $DIR/tollgate-plans-data}" plans
    start_tollgate tollgate-plans
    TGP_PID=$TG_PID
    TGP_PORT=$TG_PORT
fi
TGR_PID=
if has tollgate-routing; then
    tollgate_conf "$DIR/tollgate-routing.yaml" "{enabled: true, data_dir: $DIR/tollgate-routing-data}" routing
    start_tollgate tollgate-routing
    TGR_PID=$TG_PID
    TGR_PORT=$TG_PORT
fi
start_tollgate tollgate

target_port() {
    case $1 in
    direct) echo "$SIM_PORT" ;; direct-x) echo "$SIMX_PORT" ;; nginx) echo "$NGINX_PORT" ;;
    tollgate) echo "$TG_PORT" ;; tollgate-nometer) echo "$TGN_PORT" ;; tollgate-bg) echo "$TGB_PORT" ;;
    tollgate-plans) echo "$TGP_PORT" ;; tollgate-routing) echo "$TGR_PORT" ;;
    esac
}
target_pid() {
    case $1 in
    direct) echo "$SIM_PID" ;; direct-x) echo "$SIMX_PID" ;; nginx) echo "$NGINX_PID" ;;
    tollgate) echo "$TG_PID" ;; tollgate-nometer) echo "$TGN_PID" ;; tollgate-bg) echo "$TGB_PID" ;;
    tollgate-plans) echo "$TGP_PID" ;; tollgate-routing) echo "$TGR_PID" ;;
    esac
}


# --- the machine --------------------------------------------------------------

machine() {
    echo "machine:  $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "kernel:   $(uname -sr)"
    echo "nginx:    $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
    echo "wrk:      $(wrk -v 2>&1 | head -n1 | awk '{print $2}')"
    echo "tollgate: $("$BIN" --version 2>&1 | awk '{print $2}') ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$([ -z "$(git -C "$ROOT" status --porcelain -- src 2>/dev/null)" ] || echo ', with uncommitted changes in src'))"
    echo "layout:   sim + wrk on core $CORE_LOAD; nginx / tollgate (1 worker) on core $CORE_PROXY; loopback"
    echo "config:   nginx 1 process, upstream keepalive $NGINX_KEEPALIVE, access_log on; tollgate: 1 worker, log.level info"
    echo "metering: tollgate: on (journal and ledger.db in the temp dir on $(df -P "$DIR" | awk 'NR == 2 {print $1}'), default fsync policy); tollgate-bg: on, tg-ledger and tg-jflush on any core; tollgate-nometer: off; tollgate-plans: on, with a plan's cap and rate limits; tollgate-routing: on, three offerings (cheapest), the first one's breaker open"
    echo "runs:     $RUNS interleaved x ${SECONDS_RUN}s (+${WARMUP}s warm-up), wrk -t1, connections: $CONNS"
    if has tollgate && has tollgate-nometer && [ "$AB_CYCLES" -gt 0 ] && [ "$CONNS" != 1 ]; then
        echo "A/B:      metering on/off, $AB_CYCLES cycles x ${AB_SECONDS}s each, at the connection counts above 1"
    fi
    if has tollgate && has tollgate-nometer && [ "$TOG_CYCLES" -gt 0 ] && [ "$CONNS" != 1 ]; then
        echo "at once:  metering on and off loaded together, $TOG_CYCLES cycles x ${AB_SECONDS}s each, at the connection counts above 1"
    fi
}
# busy_pct SECONDS: how busy all cores were (percent) over the next SECONDS.
busy_pct() {
    local a b
    a=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat)
    sleep "$1"
    b=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat)
    echo "$a $b" | awk '{busy = $3 - $1; idle = $4 - $2; printf "%.0f", (busy + idle > 0) ? 100 * busy / (busy + idle) : 0}'
}
BUSY_START=$(busy_pct 2)
machine | tee "$DIR/machine.txt"
echo "busy:     cores ${BUSY_START}% busy in the 2 s before the benchmark (other work on the machine skews the figures)" \
    | tee -a "$DIR/machine.txt"
if [ "$BUSY_START" -gt 10 ]; then
    echo "WARNING: the machine was ${BUSY_START}% busy before the benchmark: other work is running and will skew the figures" >&2
fi

# --- measure ------------------------------------------------------------------

# wrk_run PORT CONNS SECONDS OUTFILE
wrk_run() {
    taskset -c $CORE_LOAD wrk -t1 -c"$2" -d"$3"s --timeout 5s --latency -s bench/chat.lua \
        "http://127.0.0.1:$1/v1/chat/completions" >"$4" 2>&1 || true
}
field() { grep -o "\b$1=[0-9.]*" "$2" | head -n1 | cut -d= -f2; }
# measure TARGET CONNS SECONDS OUTFILE: one measurement of an idle target,
# until it is idle again. Sets REQ, ERRS (failed requests; 1 if none
# completed), CPU_US (per request, all its threads), RSS (KiB, right after
# the load) and DRAIN (seconds until idle again).
measure() {
    local pid e cpu0 cpu1
    pid=$(target_pid "$1")
    settle "$pid" >/dev/null
    cpu0=$(cpu_ticks "$pid")
    wrk_run "$(target_port "$1")" "$2" "$3" "$4"
    RSS=$(rss_kib "$pid")
    DRAIN=$(settle "$pid")
    cpu1=$(cpu_ticks "$pid")
    grep -q '^BENCH ' "$4" || { cat "$4" >&2; die "wrk failed ($1, $2 connections)"; }
    REQ=$(field requests "$4")
    ERRS=0
    for e in connect read write status timeout; do ERRS=$((ERRS + $(field "$e" "$4"))); done
    [ "$REQ" -gt 0 ] || ERRS=$((ERRS + 1)) # no request completed at all
    CPU_US=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$HZ" -v n="$REQ" \
        'BEGIN {printf "%.1f", (n > 0) ? (b - a) * 1e6 / hz / n : 0}')
}

RESULTS=$DIR/results.tsv
: >"$RESULTS"
export BENCH_KEY=$KEY
REVERSED=$(awk '{for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1) ? " " : ""}' <<<"$TARGETS")
for run in $(seq "$RUNS"); do
    order=$TARGETS
    [ $((run % 2)) = 0 ] && order=$REVERSED
    for c in $CONNS; do
        for t in $order; do
            [ "$t" = direct-x ] && [ "$c" != 1 ] && continue
            port=$(target_port "$t")
            [ "$WARMUP" -gt 0 ] && wrk_run "$port" "$c" "$WARMUP" "$DIR/warm-$run-$c-$t.txt"
            out=$DIR/wrk-$run-$c-$t.txt
            measure "$t" "$c" "$SECONDS_RUN" "$out"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$t" "$c" "$REQ" \
                "$(field rps "$out")" "$(field p50_us "$out")" "$(field p99_us "$out")" \
                "$CPU_US" "$RSS" "$ERRS" "$DRAIN" >>"$RESULTS"
            printf 'run %d  %-16s c=%-4d %9.0f rps  p50 %6d us  p99 %6d us  %6.1f cpu-us/req  errors %d  idle after %ss\n' \
                "$run" "$t" "$c" "$(field rps "$out")" "$(field p50_us "$out")" \
                "$(field p99_us "$out")" "$CPU_US" "$ERRS" "$DRAIN" >&2
        done
    done
done

for t in $TARGETS; do
    pid=$(target_pid "$t")
    kill -0 "$pid" 2>/dev/null || die "$t (pid $pid) died during the benchmark"
done

# --- metering A/B ------------------------------------------------------------------
#
# tollgate against tollgate-nometer in short windows back to back: each
# cycle's ratio compares two measurements seconds apart, so what the machine
# does meanwhile (other tenants, writeback) hits both alike.

# ab_phase ON OFF TSV: ON and OFF in short windows back to back, at each
# connection count above 1, the order alternating; one line per
# measurement in TSV (cycle, target, conns, requests, CPU us/req, errors).
ab_phase() {
    local c cyc t order
    : >"$3"
    has "$1" && has "$2" && [ "$AB_CYCLES" -gt 0 ] || return 0
    for c in $CONNS; do
        [ "$c" = 1 ] && continue
        for cyc in $(seq "$AB_CYCLES"); do
            order="$1 $2"
            [ $((cyc % 2)) = 0 ] && order="$2 $1"
            for t in $order; do
                measure "$t" "$c" "$AB_SECONDS" "$DIR/ab-$cyc-$c-$t.txt"
                printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$cyc" "$t" "$c" "$REQ" "$CPU_US" "$ERRS" >>"$3"
                printf 'A/B %2d  %-16s c=%-4d %9.0f rps  %6.1f cpu-us/req  errors %d\n' "$cyc" "$t" "$c" \
                    "$(awk -v n="$REQ" -v s="$AB_SECONDS" 'BEGIN {print n / s}')" "$CPU_US" "$ERRS" >&2
            done
        done
    done
}
AB=$DIR/ab.tsv
ABP=$DIR/ab-plans.tsv
ab_phase tollgate tollgate-nometer "$AB"
ab_phase tollgate-plans tollgate "$ABP"
ABR=$DIR/ab-routing.tsv
ab_phase tollgate-routing tollgate "$ABR"

# --- metering on and off at once -----------------------------------------------
#
# Back-to-back windows still see a machine that changes between them: on
# this shared VM the A/B figure moves by several points from one run to the
# next with nothing changed. Here both targets share the proxies' core at
# the same moment, each loaded by its own wrk, so whatever else the machine
# does hits both alike. What is compared is the CPU time a request costs
# each (all its threads): on a saturated core, throughput is its inverse.
# Their request counts are printed too, but do not compare costs: the
# scheduler shares the core per thread, and tollgate has two threads more
# (tg-ledger, tg-jflush), so it gets a larger share than its cost earns.

# together_phase ON OFF TSV: ON and OFF loaded at the same time, each by
# its own wrk, at each connection count above 1; one line per cycle in TSV
# (cycle, conns, requests on, requests off, CPU ticks on, off, errors).
together_phase() {
    local c cyc pon poff on0 off0 wpid errs f e non noff
    : >"$3"
    has "$1" && has "$2" && [ "$TOG_CYCLES" -gt 0 ] || return 0
    pon=$(target_pid "$1")
    poff=$(target_pid "$2")
    for c in $CONNS; do
        [ "$c" = 1 ] && continue
        for cyc in $(seq "$TOG_CYCLES"); do
            settle "$pon" >/dev/null
            settle "$poff" >/dev/null
            on0=$(cpu_ticks "$pon")
            off0=$(cpu_ticks "$poff")
            wrk_run "$(target_port "$1")" "$c" "$AB_SECONDS" "$DIR/tog-$cyc-$c-$1.txt" &
            wpid=$!
            wrk_run "$(target_port "$2")" "$c" "$AB_SECONDS" "$DIR/tog-$cyc-$c-$2.txt"
            wait "$wpid"
            settle "$pon" >/dev/null
            settle "$poff" >/dev/null
            errs=0
            for f in "$DIR/tog-$cyc-$c-$1.txt" "$DIR/tog-$cyc-$c-$2.txt"; do
                grep -q '^BENCH ' "$f" || { cat "$f" >&2; die "wrk failed ($1 and $2 at once, $c connections)"; }
                for e in connect read write status timeout; do errs=$((errs + $(field "$e" "$f"))); done
            done
            non=$(field requests "$DIR/tog-$cyc-$c-$1.txt")
            noff=$(field requests "$DIR/tog-$cyc-$c-$2.txt")
            [ "$non" -gt 0 ] && [ "$noff" -gt 0 ] || errs=$((errs + 1))
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$cyc" "$c" "$non" "$noff" \
                "$(($(cpu_ticks "$pon") - on0))" "$(($(cpu_ticks "$poff") - off0))" "$errs" >>"$3"
            awk -F'\t' -v hz="$HZ" -v s="$AB_SECONDS" -v a="$1" -v b="$2" 'END {
                printf "together %2d  c=%-4d %s %9.0f rps %6.1f cpu-us/req  %s %9.0f rps %6.1f cpu-us/req  errors %d\n",
                    $1, $2, a, $3 / s, $5 * 1e6 / hz / $3, b, $4 / s, $6 * 1e6 / hz / $4, $7}' "$3" >&2
        done
    done
}
TOG=$DIR/together.tsv
TOGP=$DIR/together-plans.tsv
together_phase tollgate tollgate-nometer "$TOG"
together_phase tollgate-plans tollgate "$TOGP"
TOGR=$DIR/together-routing.tsv
together_phase tollgate-routing tollgate "$TOGR"

# --- optional profile -----------------------------------------------------------

if [ -n "${BENCH_PERF:-}" ]; then
    command -v perf >/dev/null || die "BENCH_PERF: perf not found (apt-get install linux-perf)"
    perf_target_pid=$(target_pid "$PERF_TARGET")
    echo "profiling $PERF_TARGET (pid $perf_target_pid) during a 32-connection run" >&2
    perf record -g -o "$DIR/perf.data" -p "$perf_target_pid" -- sleep "$SECONDS_RUN" >"$DIR/perf-record.log" 2>&1 &
    perf_pid=$!
    PIDS+=("$perf_pid")
    sleep 0.2
    wrk_run "$(target_port "$PERF_TARGET")" 32 "$SECONDS_RUN" "$DIR/wrk-perf.txt"
    if ! wait "$perf_pid"; then
        cat "$DIR/perf-record.log" >&2
        echo "bench: perf record failed (kernel.perf_event_paranoid?); no profile written." \
            "valgrind --tool=callgrind on a short run is the fallback" >&2
    else
        {
            echo "# $PERF_TARGET, 32 connections, $(field rps "$DIR/wrk-perf.txt") rps under perf"
            echo "# perf report --no-children --sort dso"
            perf report -i "$DIR/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep .
            echo "# perf report --no-children --sort symbol"
            perf report -i "$DIR/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep .
            echo "# perf report --no-children --sort pid (one line per thread: workers, the ledger)"
            perf report -i "$DIR/perf.data" --no-children --sort pid --stdio -g none 2>/dev/null | grep -v '^#' | grep .
        } >"$BENCH_PERF"
        echo "perf report written to $BENCH_PERF ($(field rps "$DIR/wrk-perf.txt") rps under perf)" >&2
    fi
fi

# --- report ---------------------------------------------------------------------

# med TARGET CONNS COLUMN: median over the runs of one results.tsv column.
med() { awk -F'\t' -v t="$1" -v c="$2" -v k="$3" '$2 == t && $3 == c {print $k}' "$RESULTS" | median; }
errsum() { awk -F'\t' -v t="$1" -v c="$2" '$2 == t && $3 == c {s += $10} END {print s + 0}' "$RESULTS"; }
# per_run EXPR TARGET_A TARGET_B CONNS COLUMN: per-run a/b ("ratio") or a-b
# ("diff"), median over the runs (the runs are interleaved, so drift cancels).
per_run() {
    awk -F'\t' -v op="$1" -v a="$2" -v b="$3" -v c="$4" -v k="$5" '
        $3 == c && $2 == a {va[$1] = $k}
        $3 == c && $2 == b {vb[$1] = $k}
        END {for (r in va) if (r in vb) print ((op == "ratio") ? ((vb[r] > 0) ? va[r] / vb[r] : 0) : va[r] - vb[r])}' \
        "$RESULTS" | median
}

# ab_cycles TSV ON OFF OP CONNS COLUMN: per-cycle ON/OFF ratio or
# difference of an A/B column (4 requests, 5 CPU us/req), one line per cycle.
ab_cycles() {
    awk -F'\t' -v a="$2" -v b="$3" -v op="$4" -v c="$5" -v k="$6" '
        $3 == c && $2 == a {va[$1] = $k}
        $3 == c && $2 == b {vb[$1] = $k}
        END {for (r in va) if (r in vb) print ((op == "ratio") ? ((vb[r] > 0) ? va[r] / vb[r] : 0) : va[r] - vb[r])}' "$1"
}
# tog_cpu TSV CONNS: "on off" CPU us per request over all the at-once cycles
tog_cpu() {
    awk -F'\t' -v c="$2" -v hz="$HZ" '$2 == c {non += $3; noff += $4; ton += $5; toff += $6}
        END {printf "%.2f %.2f", (non > 0) ? ton * 1e6 / hz / non : 0, (noff > 0) ? toff * 1e6 / hz / noff : 0}' "$1"
}
ab_sum_ratio() {
    awk -F'\t' -v a="$2" -v b="$3" -v c="$4" '$3 == c && $2 == a {x += $4} $3 == c && $2 == b {y += $4}
        END {printf "%.2f", (y > 0) ? x / y : 0}' "$1"
}
# compare ON OFF AB TOG WHAT: the A/B and at-once lines of ON against OFF,
# and their bars (ON costs under 10% more than OFF): WHAT names ON's extra.
compare() {
    local on=$1 off=$2 ab=$3 tog=$4 what=$5 c r v con coff
    for c in $CONNS; do
        [ "$c" = 1 ] && continue
        if [ -s "$ab" ]; then
            r=$(ab_cycles "$ab" "$on" "$off" ratio "$c" 4 | median)
            printf -- '- %s A/B at %s connections, %s cycles of %s s: %s / %s RPS %.2f (median; min %.2f, max %.2f; all requests: %s), CPU µs/req %s minus %s %.1f\n' \
                "$what" "$c" "$AB_CYCLES" "$AB_SECONDS" "$on" "$off" "$r" \
                "$(ab_cycles "$ab" "$on" "$off" ratio "$c" 4 | sort -g | head -n1)" \
                "$(ab_cycles "$ab" "$on" "$off" ratio "$c" 4 | sort -g | tail -n1)" \
                "$(ab_sum_ratio "$ab" "$on" "$off" "$c")" "$on" "$off" \
                "$(ab_cycles "$ab" "$on" "$off" diff "$c" 5 | median)" >>"$RATIOS"
            if [ "$c" = 32 ] || [ "$c" = 256 ]; then
                v=$(awk -v r="$r" 'BEGIN {print ((r >= 0.9) ? "PASS" : "FAIL")}')
                printf '%s  %s connections: %s %.3f x %s RPS (A/B, median of %s cycles; bar: >= 0.90, %s costs under 10%%)\n' \
                    "$v" "$c" "$on" "$r" "$off" "$AB_CYCLES" "$what" >>"$BAR"
            fi
        fi
        if [ -s "$tog" ]; then
            read -r con coff <<<"$(tog_cpu "$tog" "$c")"
            r=$(awk -v a="$con" -v b="$coff" 'BEGIN {printf "%.3f", (a > 0) ? b / a : 0}')
            printf -- '- %s at once at %s connections, %s cycles of %s s: CPU µs/req %s %s, %s %s (%s / %s %s); requests %s / %s %s (median; the scheduler favours the target with more threads)\n' \
                "$what" "$c" "$TOG_CYCLES" "$AB_SECONDS" "$on" "$con" "$off" "$coff" "$off" "$on" "$r" "$on" "$off" \
                "$(awk -F'\t' -v c="$c" '$2 == c && $4 > 0 {print $3 / $4}' "$tog" | median | awk '{printf "%.3f", $1}')" >>"$RATIOS"
            if [ "$c" = 32 ] || [ "$c" = 256 ]; then
                v=$(awk -v r="$r" 'BEGIN {print ((r >= 0.9) ? "PASS" : "FAIL")}')
                printf '%s  %s connections: %s and %s at once, CPU per request %s / %s %.3f (%s cycles; bar: >= 0.90)\n' \
                    "$v" "$c" "$on" "$off" "$off" "$on" "$r" "$TOG_CYCLES" >>"$BAR"
            fi
        fi
    done
}

TABLE=$DIR/table.md
{
    echo "| target | conns | RPS | p50 µs | p99 µs | CPU µs/req | RSS MiB | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for c in $CONNS; do
        for t in $TARGETS; do
            [ "$t" = direct-x ] && [ "$c" != 1 ] && continue
            printf '| %s | %s | %.0f | %.0f | %.0f | %.1f | %.1f | %s |\n' "$t" "$c" \
                "$(med "$t" "$c" 5)" "$(med "$t" "$c" 6)" "$(med "$t" "$c" 7)" \
                "$(med "$t" "$c" 8)" "$(awk -v k="$(med "$t" "$c" 9)" 'BEGIN {print k / 1024}')" \
                "$(errsum "$t" "$c")"
        done
    done
} >"$TABLE"

RATIOS=$DIR/ratios.txt
BAR=$DIR/bar.txt
: >"$RATIOS"
: >"$BAR"
if has nginx && has tollgate; then
    for c in $CONNS; do
        r=$(per_run ratio tollgate nginx "$c" 5)
        printf -- '- tollgate RPS / nginx RPS at %s connections: %.2f\n' "$c" "$r" >>"$RATIOS"
        if [ "$c" = 32 ] || [ "$c" = 256 ]; then
            v=$(awk -v r="$r" 'BEGIN {print ((r >= 0.7) ? "PASS" : "FAIL")}')
            printf '%s  %s connections: tollgate %.3f x nginx RPS (bar: >= 0.70)\n' "$v" "$c" "$r" >>"$BAR"
        fi
    done
fi
if has nginx && has tollgate-nometer; then
    for c in $CONNS; do
        printf -- '- tollgate-nometer RPS / nginx RPS at %s connections: %.2f\n' "$c" \
            "$(per_run ratio tollgate-nometer nginx "$c" 5)" >>"$RATIOS"
    done
fi
if has tollgate && has tollgate-nometer; then
    for c in $CONNS; do
        r=$(per_run ratio tollgate tollgate-nometer "$c" 5)
        printf -- '- tollgate (metering on) RPS / tollgate (metering off) RPS at %s connections: %.2f\n' "$c" "$r" >>"$RATIOS"
        printf -- '- tollgate CPU µs/req, metering on minus off, at %s connections: %.1f µs (on / off: %.2f)\n' "$c" \
            "$(per_run diff tollgate tollgate-nometer "$c" 8)" "$(per_run ratio tollgate tollgate-nometer "$c" 8)" >>"$RATIOS"
        printf -- '- tollgate (metering on) idle again %.2f s after the load stopped at %s connections (ledger caught up)\n' \
            "$(med tollgate "$c" 11)" "$c" >>"$RATIOS"
        if [ ! -s "$AB" ] && { [ "$c" = 32 ] || [ "$c" = 256 ]; }; then
            v=$(awk -v r="$r" 'BEGIN {print ((r >= 0.9) ? "PASS" : "FAIL")}')
            printf '%s  %s connections: metering on %.3f x metering off RPS (median of %s runs; bar: >= 0.90, metering costs under 10%%)\n' \
                "$v" "$c" "$r" "$RUNS" >>"$BAR"
        fi
    done
    compare tollgate tollgate-nometer "$AB" "$TOG" metering
    if case " $CONNS " in *" 1 "*) true ;; *) false ;; esac; then
        printf -- '- tollgate p50, metering on minus off, at 1 connection: %.0f µs\n' \
            "$(per_run diff tollgate tollgate-nometer 1 6)" >>"$RATIOS"
    fi
fi
if has tollgate-plans && has tollgate; then
    for c in $CONNS; do
        printf -- '- tollgate-plans (plans, reservations, rate limits) RPS / tollgate (metering only) RPS at %s connections: %.2f\n' \
            "$c" "$(per_run ratio tollgate-plans tollgate "$c" 5)" >>"$RATIOS"
        printf -- '- tollgate-plans CPU µs/req minus tollgate at %s connections: %.1f µs\n' "$c" \
            "$(per_run diff tollgate-plans tollgate "$c" 8)" >>"$RATIOS"
    done
    compare tollgate-plans tollgate "$ABP" "$TOGP" plans
fi
if has tollgate-routing && has tollgate; then
    for c in $CONNS; do
        printf -- '- tollgate-routing (3 offerings, cheapest, a breaker open) RPS / tollgate (1 offering) RPS at %s connections: %.2f\n' \
            "$c" "$(per_run ratio tollgate-routing tollgate "$c" 5)" >>"$RATIOS"
        printf -- '- tollgate-routing CPU µs/req minus tollgate at %s connections: %.1f µs\n' "$c" \
            "$(per_run diff tollgate-routing tollgate "$c" 8)" >>"$RATIOS"
    done
    compare tollgate-routing tollgate "$ABR" "$TOGR" routing
fi
if has tollgate-bg && has tollgate-nometer; then
    for c in $CONNS; do
        r=$(per_run ratio tollgate-bg tollgate-nometer "$c" 5)
        printf -- '- tollgate-bg (metering on, background threads on any core) RPS / metering off RPS at %s connections: %.2f\n' "$c" "$r" >>"$RATIOS"
        printf -- '- tollgate-bg CPU µs/req (all its threads), metering on minus off, at %s connections: %.1f µs\n' "$c" \
            "$(per_run diff tollgate-bg tollgate-nometer "$c" 8)" >>"$RATIOS"
        if [ "$c" = 32 ] || [ "$c" = 256 ]; then
            v=$(awk -v r="$r" 'BEGIN {print ((r >= 0.9) ? "PASS" : "FAIL")}')
            printf '%s  %s connections: metering on (background threads on any core) %.3f x metering off RPS (bar: >= 0.90)\n' \
                "$v" "$c" "$r" >>"$BAR"
        fi
    done
fi
if has direct && case " $CONNS " in *" 1 "*) true ;; *) false ;; esac; then
    for t in direct-x nginx tollgate tollgate-nometer; do
        has "$t" || continue
        d=$(per_run diff "$t" direct 1 6)
        printf -- '- added p50 over direct at 1 connection, %s: %.0f µs\n' "$t" "$d" >>"$RATIOS"
        # The latency bar is judged with everything on one core: split over
        # two, each hop pays a cross-core wake-up that dwarfs any proxy.
        if [ "$t" = tollgate ] && [ "$CORE_LOAD" = "$CORE_PROXY" ]; then
            v=$(awk -v d="$d" 'BEGIN {print ((d < 50) ? "PASS" : "FAIL")}')
            printf '%s  1 connection: tollgate adds %.0f µs to p50 over direct (bar: < 50 µs)\n' "$v" "$d" >>"$BAR"
        elif [ "$t" = tollgate ]; then
            printf 'n/a   1 connection latency: judged in the one-core layout (BENCH_CORE_LOAD=%s)\n' "$CORE_PROXY" >>"$BAR"
        fi
    done
    if has direct-x; then
        printf -- '  (direct-x is the sim on the proxies'"'"' core: one cross-core round trip; a proxy makes two)\n' >>"$RATIOS"
    fi
    if has nginx && has tollgate; then
        printf -- '- tollgate p50 minus nginx p50 at 1 connection: %.0f µs\n' \
            "$(per_run diff tollgate nginx 1 6)" >>"$RATIOS"
    fi
fi

echo
echo "medians of $RUNS runs:"
echo
awk -F'|' 'NR != 2 {
    for (i = 2; i <= 9; i++) { gsub(/^ +| +$/, "", $i); gsub(/µ/, "u", $i) }
    printf "%-16s %5s %8s %8s %8s %10s %8s %6s\n", $2, $3, $4, $5, $6, $7, $8, $9
}' "$TABLE"
echo
echo "ratios (median of per-run values):"
sed 's/^- /  /' "$RATIOS"
echo
cat "$BAR"

TOTAL_ERRORS=$(awk -F'\t' '{s += $10} END {print s + 0}' "$RESULTS")
TOTAL_ERRORS=$((TOTAL_ERRORS + $(cat "$AB" "$ABP" "$ABR" | awk -F'\t' '{s += $6} END {print s + 0}')))
TOTAL_ERRORS=$((TOTAL_ERRORS + $(cat "$TOG" "$TOGP" "$TOGR" | awk -F'\t' '{s += $7} END {print s + 0}')))
if [ "$TOTAL_ERRORS" -gt 0 ]; then
    echo
    echo "ERRORS: $TOTAL_ERRORS failed requests (status >= 400, connect, read, write, timeout):"
    awk -F'\t' '$10 > 0 {printf "  run %s %s c=%s: %s errors\n", $1, $2, $3, $10}' "$RESULTS"
    cat "$AB" "$ABP" "$ABR" | awk -F'\t' '$6 > 0 {printf "  A/B cycle %s %s c=%s: %s errors\n", $1, $2, $3, $6}'
    cat "$TOG" "$TOGP" "$TOGR" | awk -F'\t' '$7 > 0 {printf "  at-once cycle %s c=%s: %s errors\n", $1, $2, $7}' 
fi

if [ -n "${BENCH_OUT:-}" ]; then
    {
        echo '```'
        cat "$DIR/machine.txt"
        echo '```'
        echo
        echo "Medians of $RUNS interleaved runs:"
        echo
        cat "$TABLE"
        echo
        echo "Ratios (median of the per-run values):"
        echo
        cat "$RATIOS"
        echo
        echo '```'
        cat "$BAR"
        echo '```'
    } >"$BENCH_OUT"
    echo "markdown written to $BENCH_OUT" >&2
fi

[ "$TOTAL_ERRORS" -eq 0 ] || exit 1
