//! Rate limits through a real Envoy with four workers (`--concurrency 4`), each with its own Wasm VM: the
//! workers share one limit through the proxy's shared data, under wrk load from many connections; the 429s
//! carry their headers; the counts reach `/stats/prometheus`; random client keys leave memory flat; an ECDS
//! reload keeps the buckets of an unchanged limit and starts a changed one fresh.
//!
//! Tolerance: a limit of `requests` per second with a `burst` allows `burst + requests × seconds` in a window of
//! `seconds` that starts with full buckets. Allowed counts must be within 15% of that (four workers counting on
//! their own would allow up to four times as much); the window is wrk's own measured duration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{
    document_json, echo, fresh_dir, get, options, progress, prometheus, request, start, Envoy, Plugin, Reload,
};

const WORKERS: u32 = 4;
const TOLERANCE: f64 = 0.15;
/// wrk's connections.
const CONNECTIONS: u64 = 64;

const DOCUMENT: &str = r#"
request:
  - name: one-key
    match: {path: /one}
    actions: [{rate_limit: {key: "${source.ip}", requests: 200, per: second, burst: 50}}]
  - name: many-keys
    match: {path: /many}
    actions: [{rate_limit: {key: "${header.x-api-key}", requests: 20, per: second, burst: 5}}]
  - name: hourly
    match: {path: /hourly}
    actions: [{rate_limit: {requests: 5, per: hour}}]
  - name: random-keys
    match: {path: /random}
    actions: [{rate_limit: {key: "${header.x-client}", requests: 1, per: hour, max_keys: 1000}}]
  - name: random-keys-uncapped
    match: {path: /uncapped}
    actions: [{rate_limit: {key: "${header.x-client}", requests: 1, per: hour, max_keys: 1000000}}]
"#;

fn start_workers(name: &str, document: &str) -> (support::EchoUpstream, Envoy) {
    let upstream = echo();
    let document: serde_yaml::Value = serde_yaml::from_str(document).unwrap();
    let plugin = Plugin::new(name, Some(document_json(&document)));
    let envoy = start(options(plugin, &upstream).concurrency(WORKERS));
    (upstream, envoy)
}

/// What one wrk run reported.
#[derive(Debug)]
struct Load {
    requests: u64,
    /// Answers other than 2xx/3xx: here, the 429s.
    limited: u64,
    seconds: f64,
}

impl Load {
    fn allowed(&self) -> u64 {
        self.requests - self.limited
    }
}

/// Runs wrk (4 threads, 64 connections) for `seconds` against `path`, with a Lua script if given. wrk is
/// installed by .ci/run; missing, the test fails.
fn wrk(listener: SocketAddr, path: &str, script: Option<&str>, seconds: u32) -> Load {
    let mut command = Command::new("wrk");
    command.args(["-t4", &format!("-c{CONNECTIONS}"), &format!("-d{seconds}s"), "--timeout", "5s"]);
    if let Some(script) = script {
        let file = fresh_dir("wrk").join("script.lua");
        std::fs::write(&file, script).unwrap();
        command.arg("-s").arg(&file);
    }
    let output = command
        .arg(format!("http://{listener}{path}"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run wrk ({e}): install it (Debian: apt-get install wrk; .ci/run does)"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "wrk failed:\n{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(!text.contains("Socket errors"), "wrk saw socket errors:\n{text}");
    let (requests, seconds) = text
        .lines()
        .find_map(|line| {
            let (count, rest) = line.trim().split_once(" requests in ")?;
            let seconds = rest.split_once('s')?.0.parse::<f64>().ok()?;
            Some((count.parse().ok()?, seconds))
        })
        .unwrap_or_else(|| panic!("cannot read wrk's report:\n{text}"));
    let limited =
        text.lines().find_map(|line| line.trim().strip_prefix("Non-2xx or 3xx responses: ")?.parse().ok()).unwrap_or(0);
    progress(format_args!("wrk {path}: {requests} requests in {seconds:.2} s, {limited} limited"));
    Load { requests, limited, seconds }
}

/// Asserts the allowed count is within the tolerance of `burst + rate × seconds`, and that the load went well
/// past the limit (otherwise nothing was shown).
fn within_tolerance(what: &str, load: &Load, burst: f64, rate: f64) {
    let expected = burst + rate * load.seconds;
    let allowed = load.allowed() as f64;
    println!(
        "{what}: {} allowed of {} in {:.2} s; expected {expected:.0} ± {:.0}%",
        load.allowed(),
        load.requests,
        load.seconds,
        TOLERANCE * 100.0
    );
    assert!(load.requests as f64 > 2.0 * expected, "{what}: the load ({load:?}) did not go well past the limit");
    assert!(
        (allowed - expected).abs() <= TOLERANCE * expected,
        "{what}: {allowed} allowed, expected {expected:.0} ± {:.0}% ({WORKERS} workers counting alone would allow up to {:.0})",
        TOLERANCE * 100.0,
        expected * f64::from(WORKERS)
    );
}

/// Waits (up to 10 s: every worker flushes its counts once a second) until `series` is at least `at_least`, and
/// checks it is at most `at_most`.
fn wait_for_series(envoy: &Envoy, series: &str, at_least: u64, at_most: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = prometheus(envoy).get(series).copied();
        if now.is_some_and(|n| n >= at_least) {
            std::thread::sleep(Duration::from_millis(1200));
            let settled = prometheus(envoy).get(series).copied().unwrap_or_default();
            assert!(settled <= at_most, "{series} is {settled}, expected at most {at_most}");
            return;
        }
        assert!(Instant::now() < deadline, "{series} is {now:?}, expected at least {at_least}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn four_workers_share_one_limit_under_load_and_count_it() {
    let (_upstream, envoy) = start_workers("limits", DOCUMENT);

    // Sequential requests on new connections land on different workers: exactly the limit is allowed.
    let hourly: Vec<u16> = (0..12).map(|_| get(envoy.listener, "/hourly").status).collect();
    assert_eq!(hourly, [[200; 5].as_slice(), [429; 7].as_slice()].concat());
    let limited = get(envoy.listener, "/hourly");
    assert_eq!(limited.header("retry-after"), Some("720"));
    assert_eq!(limited.header("ratelimit-policy"), Some(r#""hourly";q=5;w=3600"#));
    assert_eq!(limited.header("ratelimit"), Some(r#""hourly";r=0;t=3600"#));

    // One key (every wrk connection comes from 127.0.0.1), from 64 connections over 4 workers.
    let one = wrk(envoy.listener, "/one", None, 2);
    within_tolerance("one key", &one, 50.0, 200.0);

    // Twenty keys, spread over every connection.
    let script = r#"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, {["x-api-key"] = "key-" .. (n % 20)})
end
"#;
    let many = wrk(envoy.listener, "/many", Some(script), 2);
    within_tolerance("20 keys", &many, 20.0 * 5.0, 20.0 * 20.0);

    // Every 429 counted under its rule, across all workers: what wrk saw, plus at most one answer per
    // connection that was still on its way when wrk stopped counting.
    let series = |rule: &str| {
        format!(r#"rulefilter_rate_limited_total{{plugin="default.limits",rule="{rule}",mode="enforce"}}"#)
    };
    wait_for_series(&envoy, &series("one-key"), one.limited, one.limited + CONNECTIONS);
    wait_for_series(&envoy, &series("many-keys"), many.limited, many.limited + CONNECTIONS);
    wait_for_series(&envoy, &series("hourly"), 8, 8);
    let failures = r#"rulefilter_rate_limit_failures_total{plugin="default.limits",rule="one-key",mode="enforce"}"#;
    assert_eq!(prometheus(&envoy).get(failures), Some(&0), "compare-and-swap attempts ran out under load");

    // Random client keys: the capped rule's shared data stops growing once its 1,000 slots are taken, while
    // the same load on an uncapped rule shows what a leak would look like.
    let random = r#"
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
request = function()
  return wrk.format(nil, nil, {["x-client"] = tostring(math.random(1, 2000000000)) .. "-" .. tostring(math.random(1, 2000000000))})
end
"#;
    wrk(envoy.listener, "/random", Some(random), 1);
    let before = allocated(&envoy);
    let capped = wrk(envoy.listener, "/random", Some(random), 2);
    let after_capped = allocated(&envoy);
    let uncapped = wrk(envoy.listener, "/uncapped", Some(random), 2);
    let after_uncapped = allocated(&envoy);
    let growth = |from: u64, to: u64| to.saturating_sub(from) as f64 / f64::from(1 << 20);
    println!(
        "memory: {:.2} MiB more after {} random keys on the capped rule; {:.2} MiB more after {} on the uncapped one",
        growth(before, after_capped),
        capped.requests,
        growth(after_capped, after_uncapped),
        uncapped.requests
    );
    assert!(growth(before, after_capped) < 0.5, "the capped rule's memory grew");
    assert!(
        growth(after_capped, after_uncapped) > 2.0 * growth(before, after_capped).max(0.1),
        "the uncapped rule should have shown growth; the measurement cannot tell a leak"
    );
}

/// Bytes allocated through Envoy's allocator (admin `/memory`), where shared data lives.
fn allocated(envoy: &Envoy) -> u64 {
    std::thread::sleep(Duration::from_millis(500));
    let memory = rulefilter::local::http::get(envoy.admin, "/memory").unwrap();
    let json: serde_json::Value = serde_json::from_str(&memory.body).unwrap();
    let field = &json["allocated"];
    field.as_str().and_then(|s| s.parse().ok()).or_else(|| field.as_u64()).unwrap()
}

fn reload_document(tag: &str, requests: u32) -> String {
    let document = format!(
        r#"
request:
  - name: quota
    match: {{path: /quota}}
    actions: [{{rate_limit: {{requests: {requests}, per: hour}}}}]
  - name: tag
    actions: [{{response_headers: {{set: {{x-rules: {tag}}}}}}}]
"#
    );
    document_json(&serde_yaml::from_str(&document).unwrap())
}

/// Waits until every worker serves the rules tagged `tag` (twenty answers in a row carry it).
fn serving(envoy: &Envoy, tag: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut in_a_row = 0;
    while in_a_row < 20 {
        assert!(Instant::now() < deadline, "the workers never all served {tag}");
        in_a_row = if get(envoy.listener, "/other").header("x-rules") == Some(tag) { in_a_row + 1 } else { 0 };
    }
}

#[test]
fn a_reload_keeps_the_buckets_of_an_unchanged_limit_and_a_changed_limit_starts_fresh() {
    let upstream = echo();
    let plugin = Plugin::new("reload-limits", Some(reload_document("a", 2)));
    let mut envoy = start(options(plugin, &upstream).concurrency(2));
    let quota = |envoy: &Envoy| request(envoy.listener, "GET", "/quota", &[]).status;
    assert_eq!([quota(&envoy), quota(&envoy), quota(&envoy)], [200, 200, 429]);

    // Another rule changes; `quota` keeps its name and limit, so its spent bucket stays spent.
    assert_eq!(envoy.push_config(Some(reload_document("b", 2))).unwrap(), Reload::Applied);
    serving(&envoy, "b");
    assert_eq!(quota(&envoy), 429);

    // A new limit is a new table of buckets: the client starts with a full one.
    assert_eq!(envoy.push_config(Some(reload_document("c", 3))).unwrap(), Reload::Applied);
    serving(&envoy, "c");
    assert_eq!([quota(&envoy), quota(&envoy), quota(&envoy), quota(&envoy)], [200, 200, 200, 429]);

    // Back to the first limit: its buckets were never freed, and are spent still.
    assert_eq!(envoy.push_config(Some(reload_document("d", 2))).unwrap(), Reload::Applied);
    serving(&envoy, "d");
    assert_eq!(quota(&envoy), 429);
}
