//! Reload and failure through a real Envoy, the filter delivered by ECDS from a file as Istio delivers it
//! (one worker: the launcher runs Envoy with `--concurrency 1`):
//!
//! - a valid new document takes effect without a restart, and without failing one request of a running load;
//! - an invalid one is refused (NACKed) and the old rules keep serving; an invalid *first* one fails requests;
//! - what each Istio `failStrategy` does when a module traps at run time, measured with the test-only module
//!   of tests/fixtures/crasher (the real module has no way to trap on purpose).
//!
//! Run with `--nocapture` to see the measured numbers the README quotes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{
    crasher_module, echo, get, options, options_with_module, start, EchoUpstream, Envoy, KeepAlive, Plugin, Reload,
};

/// A rules document that tags every response `x-rules: <tag>`.
fn tagging(tag: &str) -> String {
    format!(r#"{{"response":[{{"name":"tag","actions":[{{"response_headers":{{"set":{{"x-rules":"{tag}"}}}}}}]}}]}}"#)
}

/// Refused by the module's validator, so its `on_configure` returns false.
const INVALID: &str =
    r#"{"request":[{"name":"hello","match":{"path":{"regex":"(unclosed"}},"actions":[{"respond":{"status":200.0}}]}]}"#;

// ---------------------------------------------------------------------------------------------------------------
// Reload under load

/// Keep-alive clients, each sending GETs back to back on its connection until stopped.
const CLIENTS: usize = 4;
/// Bounds each client however long the test runs.
const CAP: usize = 10_000;

/// One request of the load.
struct Sample {
    sent: Instant,
    received: Instant,
    /// Status and `x-rules`, or what went wrong.
    outcome: Result<(u16, Option<String>), String>,
}

impl Sample {
    fn tag(&self) -> Option<&str> {
        self.outcome.as_ref().ok().and_then(|(_, tag)| tag.as_deref())
    }
}

/// An Envoy serving `tagging("a")`, and the load running through it.
struct UnderLoad {
    envoy: Envoy,
    pid: u32,
    _upstream: EchoUpstream,
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<(Vec<Sample>, u32)>>,
    started: Instant,
}

impl UnderLoad {
    /// Returns once the load has run for 200 ms.
    fn start(name: &str) -> UnderLoad {
        let upstream = echo();
        let envoy = start(options(Plugin::new(name, Some(tagging("a"))), &upstream));
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..CLIENTS).map(|client| client_thread(client, envoy.listener, Arc::clone(&stop))).collect();
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(200));
        UnderLoad { pid: envoy.pid(), envoy, _upstream: upstream, stop, clients, started }
    }

    /// Stops the load and checks what every run must show: each request answered 200 with one of `tags`, by the
    /// same Envoy process on the same listener (no client had to reconnect, Envoy accepted no other connection,
    /// and counted as many 2xx). Returns the samples in the order sent.
    fn finish(&mut self, tags: &[&str]) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let (mut samples, mut connections) = (Vec::new(), 0);
        for client in std::mem::take(&mut self.clients) {
            let (more, opened) = client.join().unwrap();
            samples.extend(more);
            connections += opened;
        }
        samples.sort_by_key(|s| s.sent);
        let failed: Vec<String> = samples
            .iter()
            .filter_map(|s| match &s.outcome {
                Ok((200, Some(tag))) if tags.contains(&tag.as_str()) => None,
                Ok((status, tag)) => Some(format!("{status} x-rules {tag:?}")),
                Err(e) => Some(e.clone()),
            })
            .collect();
        assert!(
            failed.is_empty(),
            "{} of {} requests failed: {:?}",
            failed.len(),
            samples.len(),
            &failed[..5.min(failed.len())]
        );
        assert!(self.envoy.try_wait().unwrap().is_none(), "Envoy exited");
        assert_eq!(self.envoy.pid(), self.pid);
        assert_eq!(connections, CLIENTS as u32, "a client had to reconnect");
        assert_eq!(self.envoy.stat("http.ingress.downstream_cx_total"), Some(CLIENTS as u64));
        assert_eq!(self.envoy.stat("http.ingress.downstream_rq_2xx"), Some(samples.len() as u64));
        samples
    }
}

/// One keep-alive client: its samples, and how many connections it opened.
fn client_thread(client: usize, addr: SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<(Vec<Sample>, u32)> {
    std::thread::spawn(move || {
        let (mut samples, mut connections, mut connection) = (Vec::new(), 0, None);
        while !stop.load(Ordering::Relaxed) && samples.len() < CAP {
            if connection.is_none() {
                connections += 1;
                connection = KeepAlive::connect(addr).ok();
            }
            let path = format!("/load/{client}/{}", samples.len());
            let sent = Instant::now();
            let result = match connection.as_mut() {
                Some(connection) => connection.get(&path, &[]),
                None => Err(format!("GET {path}: cannot connect")),
            };
            let received = Instant::now();
            let outcome = match result {
                Ok(response) => {
                    if response.header("connection") == Some("close") {
                        connection = None;
                    }
                    Ok((response.status, response.header("x-rules").map(str::to_owned)))
                }
                Err(e) => {
                    connection = None;
                    Err(e)
                }
            };
            samples.push(Sample { sent, received, outcome });
        }
        (samples, connections)
    })
}

#[test]
fn a_new_document_takes_effect_under_load_without_a_restart_or_a_failed_request() {
    let mut run = UnderLoad::start("reload-load");
    // Alternating documents, ending with b.
    let first_push = Instant::now();
    let mut last_applied = first_push;
    for tag in ["b", "a", "b", "a", "b"] {
        assert_eq!(run.envoy.push_config(Some(tagging(tag))).unwrap(), Reload::Applied);
        last_applied = Instant::now();
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let samples = run.finish(&["a", "b"]);

    assert!(samples.iter().filter(|s| s.sent < first_push).all(|s| s.tag() == Some("a")));
    let pushed: Vec<&Sample> = samples.iter().filter(|s| s.sent >= first_push && s.sent < last_applied).collect();
    assert!(pushed.iter().any(|s| s.tag() == Some("a")) && pushed.iter().any(|s| s.tag() == Some("b")));
    // Settled: once one request sent after the last push answered b, every later one answers b.
    let settled = samples
        .iter()
        .filter(|s| s.sent >= last_applied && s.tag() == Some("b"))
        .map(|s| s.received)
        .min()
        .expect("no response with the last document");
    let after: Vec<&Sample> = samples.iter().filter(|s| s.sent >= settled).collect();
    assert!(after.iter().all(|s| s.tag() == Some("b")), "the previous document answered after the last one");
    assert!(after.len() >= 50, "only {} requests after the last push settled", after.len());
    assert_eq!(run.envoy.ecds_updates(), (6, 0), "the first document and five pushes, all applied");
    eprintln!(
        "reload under load: {} requests, 0 failed, by {CLIENTS} keep-alive clients in {} ms; {} sent during the 5 \
         pushes ({} ms); {} after the last one settled",
        samples.len(),
        samples.last().unwrap().received.duration_since(run.started).as_millis(),
        pushed.len(),
        last_applied.duration_since(first_push).as_millis(),
        after.len(),
    );
}

#[test]
fn an_invalid_document_is_refused_under_load_and_the_old_rules_keep_serving() {
    let mut run = UnderLoad::start("refuse-load");
    assert_eq!(run.envoy.push_config(Some(INVALID.into())).unwrap(), Reload::Refused);
    let prefix = run.envoy.ecds_stat_prefix();
    // Exactly what Envoy 1.40 counts for a NACKed ECDS update (`config_reload` counts it too).
    for (counter, value) in [
        ("update_attempt", 2),
        ("update_success", 1),
        ("update_rejected", 1),
        ("update_failure", 0),
        ("config_fail", 1),
        ("config_reload", 2),
    ] {
        assert_eq!(run.envoy.stat(&format!("{prefix}.{counter}")), Some(value), "{prefix}.{counter}");
    }
    std::thread::sleep(Duration::from_millis(300));

    // Refusing one does not stop the next from applying.
    let valid_push = Instant::now();
    assert_eq!(run.envoy.push_config(Some(tagging("b"))).unwrap(), Reload::Applied);
    std::thread::sleep(Duration::from_millis(200));
    let samples = run.finish(&["a", "b"]);

    let old: Vec<&Sample> = samples.iter().filter(|s| s.sent < valid_push).collect();
    assert!(old.iter().all(|s| s.tag() == Some("a")), "the old rules stopped");
    assert_eq!(samples.last().unwrap().tag(), Some("b"));
    assert_eq!(run.envoy.ecds_updates(), (2, 1));
    let log = run.envoy.log();
    for line in [
        r#"wasm log rulefilter: invalid configuration: request[0] "hello": match.path.regex: invalid regex"#,
        "config update rejected: Unable to create Wasm plugin default.refuse-load~istio-translated-wasmplugin",
    ] {
        assert!(log.contains(line), "log lacks {line:?}:\n{log}");
    }
    eprintln!("invalid document under load: {} requests, 0 failed, {} by the old rules", samples.len(), old.len());
}

#[test]
fn an_invalid_first_document_fails_every_request_until_a_valid_one_arrives() {
    // Through ECDS Envoy starts anyway (inline, it would not start: see tests/e2e.rs); the filter has no
    // configuration, and Envoy answers 500 rather than skip it.
    let upstream = echo();
    let plugin = Plugin::new("first-invalid", Some(INVALID.into()));
    let mut envoy = start(options(plugin, &upstream).require_filter(false));
    assert_eq!(envoy.ecds_updates(), (0, 1));
    for _ in 0..3 {
        let response = get(envoy.listener, "/first");
        assert_eq!(response.status, 500, "{response:?}");
    }
    assert!(upstream.seen_paths().is_empty(), "{:?}", upstream.seen_paths());

    assert_eq!(envoy.push_config(Some(tagging("a"))).unwrap(), Reload::Applied);
    let response = get(envoy.listener, "/first");
    assert_eq!((response.status, response.header("x-rules")), (200, Some("a")), "{response:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// Run-time failure: each failStrategy, with a module that traps on `x-crash`

/// What one request through the crasher module saw.
#[derive(Debug)]
struct Exchange {
    sent: Instant,
    received: Instant,
    status: u16,
    /// The crasher's `x-crasher-seq` on the response: the filter ran, as the N-th request of its VM (a fresh VM
    /// counts from 1).
    seq: Option<u64>,
    /// The upstream received the request.
    upstream: bool,
    /// The upstream received it tagged by the filter.
    filtered_upstream: bool,
}

impl Exchange {
    /// Answered 200 by the upstream with the filter skipped.
    fn bypassed(&self) -> bool {
        self.status == 200 && self.upstream && !self.filtered_upstream && self.seq.is_none()
    }

    /// Answered 200 by the upstream through a working filter.
    fn filtered(&self) -> bool {
        self.status == 200 && self.upstream && self.filtered_upstream && self.seq.is_some()
    }

    /// A 503 from Envoy, the upstream never asked.
    fn refused(&self) -> bool {
        self.status == 503 && !self.upstream
    }
}

/// An Envoy with the crasher module, configured as istiod configures a `WasmPlugin` with this policy, and one
/// keep-alive client.
struct Crasher {
    envoy: Envoy,
    upstream: EchoUpstream,
    client: KeepAlive,
    sent: usize,
}

/// Between the requests of a series.
const SPACING: Duration = Duration::from_millis(50);

impl Crasher {
    fn start(failure_policy: &'static str) -> Crasher {
        let upstream = echo();
        let mut plugin = Plugin::new(&format!("crasher-{}", failure_policy.to_lowercase()), None);
        plugin.plugin_name = "crasher".into();
        plugin.failure_policy = failure_policy;
        let envoy = start(options_with_module(crasher_module(), plugin, upstream.addr));
        let client = KeepAlive::connect(envoy.listener).unwrap();
        Crasher { envoy, upstream, client, sent: 0 }
    }

    /// One request; `crash`: `request` or `response`, the phase in which the module traps.
    fn send(&mut self, crash: Option<&str>) -> Exchange {
        self.sent += 1;
        let path = format!("/crash/{}", self.sent);
        let headers: Vec<(&str, &str)> = crash.map(|phase| ("x-crash", phase)).into_iter().collect();
        let sent = Instant::now();
        let response = self.client.get(&path, &headers).unwrap_or_else(|e| panic!("{e}"));
        let received = Instant::now();
        assert_ne!(response.header("connection"), Some("close"), "{response:?}");
        let seen = self.upstream.received().into_iter().find(|r| r.path == path);
        Exchange {
            sent,
            received,
            status: response.status,
            seq: response.header("x-crasher-seq").map(|s| s.parse().unwrap()),
            upstream: seen.is_some(),
            filtered_upstream: seen.is_some_and(|r| r.header("x-crasher-seq").is_some()),
        }
    }

    /// `n` ordinary requests, [`SPACING`] apart.
    fn series(&mut self, n: usize) -> Vec<Exchange> {
        (0..n)
            .map(|_| {
                std::thread::sleep(SPACING);
                self.send(None)
            })
            .collect()
    }

    /// `wasm.<config.name>.<counter>`: the reload counters of this plugin.
    fn wasm_stat(&self, counter: &str) -> u64 {
        let plugin = self.envoy.plugin();
        let name = format!("wasm.{}.{}~istio-translated-wasmplugin.{counter}", plugin.namespace, plugin.name);
        self.envoy.stat(&name).unwrap_or(0)
    }

    /// Any update of the plugin (here its `pluginConfig`, as an edit of the `WasmPlugin` would) builds its VMs anew.
    fn push_update(&mut self) {
        assert_eq!(self.envoy.push_config(Some(r#"{"edited":true}"#.into())).unwrap(), Reload::Applied);
    }

    /// Starts Envoy, sends three requests through a working filter (the first of its VM), then one that traps in
    /// the request phase: under every policy that request gets a 503 and never reaches the upstream.
    fn trapped(failure_policy: &'static str) -> (Crasher, Exchange) {
        let mut crasher = Crasher::start(failure_policy);
        let first = crasher.series(3);
        assert!(first.iter().all(Exchange::filtered), "{first:?}");
        assert_eq!(first.iter().map(|e| e.seq.unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
        let crash = crasher.send(Some("request"));
        assert!(crash.refused(), "{crash:?}");
        (crasher, crash)
    }

    /// An update of the plugin, and the request after it (filtered again, whatever the policy). Then a trap in
    /// the response phase: the upstream has already answered, yet the client gets a 503.
    fn update_then_trap_in_the_response_phase(&mut self) -> Exchange {
        self.push_update();
        let recovered = self.send(None);
        assert!(recovered.filtered(), "{recovered:?}");
        let late = self.send(Some("response"));
        assert_eq!((late.status, late.upstream), (503, true), "{late:?}");
        recovered
    }
}

/// Ordinary requests after the crash, [`SPACING`] apart: 1.6 s, past FAIL_RELOAD's longest backoff (1.5 s).
const AFTER_CRASH: usize = 32;

#[test]
fn fail_closed_answers_503_to_every_request_once_the_module_trapped() {
    let (mut crasher, _) = Crasher::trapped("FAIL_CLOSED");
    let after = crasher.series(AFTER_CRASH);
    assert!(after.iter().all(Exchange::refused), "{after:?}");
    assert_eq!(crasher.wasm_stat("vm_reload_success"), 0);
    // Only an update of the plugin (or a restart) brings it back: a fresh VM, counting from 1.
    let recovered = crasher.update_then_trap_in_the_response_phase();
    assert_eq!(recovered.seq, Some(1), "{recovered:?}");
    eprintln!("FAIL_CLOSED: the trapping request 503; {AFTER_CRASH}/{AFTER_CRASH} later requests 503 over 1.6 s");
}

#[test]
fn fail_open_skips_the_filter_once_the_module_trapped_but_fails_the_trapping_request() {
    // The request in flight when the VM traps is failed all the same; only later ones pass.
    let (mut crasher, _) = Crasher::trapped("FAIL_OPEN");
    let after = crasher.series(AFTER_CRASH);
    assert!(after.iter().all(Exchange::bypassed), "{after:?}");
    // A request that would trap again now passes unfiltered too.
    assert!(crasher.send(Some("request")).bypassed());
    let recovered = crasher.update_then_trap_in_the_response_phase();
    assert_eq!(recovered.seq, Some(1), "{recovered:?}");
    eprintln!(
        "FAIL_OPEN: the trapping request 503; {AFTER_CRASH}/{AFTER_CRASH} later requests 200 from the upstream with \
         the filter skipped"
    );
}

#[test]
fn fail_reload_answers_503_until_a_fresh_vm_is_loaded_at_least_a_second_after_the_last() {
    let (mut crasher, crash) = Crasher::trapped("FAIL_RELOAD");
    let after = crasher.series(AFTER_CRASH);
    // A run of 503s (each a `vm_reload_backoff`), then a fresh VM filters every request.
    let refused = after.iter().take_while(|e| e.refused()).count();
    let reloaded = &after[refused..];
    assert!(!reloaded.is_empty(), "no reload within 1.6 s: {after:?}");
    assert!(reloaded.iter().all(Exchange::filtered), "{after:?}");
    assert_eq!(reloaded[0].seq, Some(1), "not a fresh VM: {:?}", reloaded[0]);
    assert_eq!(crasher.wasm_stat("vm_reload_backoff"), refused as u64);
    assert_eq!(crasher.wasm_stat("vm_reload_success"), 1);
    let first_window = reloaded[0].sent.duration_since(crash.sent);

    // The backoff counts from the last load, 1 s base jittered up to 1.5 s (drawn anew at each request): trap
    // again right after the reload, and the next fresh VM comes no sooner than 1 s after it, nor later than 1.5 s.
    let reload = &reloaded[0];
    let crash = crasher.send(Some("request"));
    assert!(crash.refused(), "{crash:?}");
    let mut second = Vec::new();
    while second.last().is_none_or(|e: &Exchange| e.refused()) {
        assert!(second.len() < 60, "no reload within 3 s: {second:?}");
        second.extend(crasher.series(1));
    }
    let back = second.last().unwrap();
    assert!(back.filtered() && back.seq == Some(1), "{back:?}");
    assert!(back.received.duration_since(reload.sent) >= Duration::from_millis(1000), "reloaded too soon");
    let last_refused = second.iter().rev().nth(1).unwrap_or(&crash);
    assert!(last_refused.sent.duration_since(reload.received) < Duration::from_millis(1500), "backoff over 1.5 s");
    assert_eq!(crasher.wasm_stat("vm_reload_success"), 2);
    let second_window = back.sent.duration_since(reload.sent);

    // A healthy VM survives an update (its count goes on).
    let updated = crasher.update_then_trap_in_the_response_phase();
    assert!(updated.seq > Some(1), "{updated:?}");
    eprintln!(
        "FAIL_RELOAD: the trapping request 503; then {refused} requests 503 for {} ms until a fresh VM (the VM was \
         loaded as Envoy started); trapping again right after a reload: {} requests 503, a fresh VM {} ms after \
         the previous one",
        first_window.as_millis(),
        second.len() - 1,
        second_window.as_millis(),
    );
}
