//! `make bench`: what the filter costs, as ratios against baselines measured in the same run.
//!
//! - Envoy: the same requests through (a) no Wasm filter, (b) the module with an empty document, (c) the module
//!   with rules/edge.yaml; three Envoys side by side, their legs interleaved round by round (each round in
//!   another order) so that a neighbour's load on the machine falls on all three alike. At full speed (wrk):
//!   throughput, p99 and Envoy's CPU time per request; at a fixed rate over HTTP/2 (h2load, when installed):
//!   latency without queueing.
//! - The native engine on the simulated proxy: the soak mix through the empty, hello and edge documents.
//! - Instructions per request under callgrind, when valgrind is installed: deterministic, unlike time.
//! - The module's size.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use rulefilter::header_block::encode;
use rulefilter::local::envoy::Envoy;
use rulefilter::metrics::CounterId;
use rulefilter::proxy_host::{HostCalls, HostStatus, ProxyHost};
use rulefilter::ruleset::HeaderMap;
use rulefilter::{simulate, Flow};

use crate::large;
use crate::mix::{self, Plan, API_CALL, EDGE_MIX};
use crate::wrk::{Load, Script};
use crate::{
    echo_upstream, h2, interleaved, median, millis, size_of, start_envoy, start_envoy_with, Document, Memory, Options,
};

pub const THREADS: u32 = 1;
/// Native timing: repetitions per document, each at least this long.
const REPETITIONS: usize = 7;
const BATCH: Duration = Duration::from_millis(100);

pub fn run(options: &Options) -> Result<bool, String> {
    let mut ok = true;
    let size = size_of(&options.module)?;
    println!("module: {} ({size} bytes)", options.module.display());
    println!();
    if let Some(compare) = &options.compare {
        // The native figures do not depend on the module: an A/B of two modules needs only Envoy's.
        println!("leg (d): edge.yaml with {} ({} bytes); native figures skipped", compare.display(), size_of(compare)?);
    } else {
        native_engine()?;
        println!();
        instructions()?;
    }
    println!();
    ok &= envoy_legs(options)?;
    Ok(ok)
}

/// One leg of the Envoy comparison: its Envoy, and one figure per round for each measure.
struct Leg {
    tag: &'static str,
    what: &'static str,
    envoy: Envoy,
    /// wrk at full speed: requests a second, and p99 in seconds.
    throughput: Vec<f64>,
    p99: Vec<f64>,
    /// Envoy's CPU seconds per completed request.
    cpu: Vec<f64>,
    /// h2load at a fixed rate: p50 and p99 in seconds.
    fixed_p50: Vec<f64>,
    fixed_p99: Vec<f64>,
}

impl Leg {
    fn new(tag: &'static str, what: &'static str, envoy: Envoy) -> Leg {
        Leg { tag, what, envoy, throughput: vec![], p99: vec![], cpu: vec![], fixed_p50: vec![], fixed_p99: vec![] }
    }
}

/// h2load's fixed rate: below what any leg can serve, so latency is the request's own cost.
const H2_CLIENTS: u32 = 4;
const H2_RATE: u32 = 250;

fn envoy_legs(options: &Options) -> Result<bool, String> {
    let edge = Document::load("edge")?;
    let plan = Plan::new(EDGE_MIX, &edge.rules)?;
    // Only requests the service answers 200: answered by the proxy, a request would cost (c) less than (a), and a
    // failure asked of the echo upstream would differ between the legs.
    let served = |i: &usize| {
        !plan.answered_by_proxy.get(*i).copied().unwrap_or(true) && EDGE_MIX.get(*i).is_some_and(|e| e.status == 200)
    };
    let order: Vec<usize> = plan.order.iter().copied().filter(served).collect();
    let kinds = EDGE_MIX.iter().enumerate().filter(|(i, _)| order.contains(i)).count();
    let script = Script::write(&crate::scratch_dir(), "bench", &mix::wrk_lines(EDGE_MIX, &order))?;
    let upstream = echo_upstream()?;
    let empty = Document::load("empty")?;
    let mut legs = vec![
        Leg::new("(a)", "no Wasm filter", start_envoy(options, "bench-none", None, upstream.addr)?),
        Leg::new("(b)", "empty document", start_envoy(options, "bench-empty", Some(empty.plugin()), upstream.addr)?),
        Leg::new("(c)", "edge.yaml, 50 rules", start_envoy(options, "bench-edge", Some(edge.plugin()), upstream.addr)?),
    ];
    if let Some(compare) = &options.compare {
        let envoy = start_envoy_with(options, compare, "bench-edge-compare", Some(edge.plugin()), upstream.addr)?;
        legs.push(Leg::new("(d)", "edge.yaml, --compare", envoy));
    }
    let seconds = Duration::from_secs(options.seconds);
    println!(
        "Envoy (one worker, as the e2e suite starts it) + echo upstream; {} rounds of {} s per leg and measure, \
         legs interleaved (each round in another order)",
        options.rounds,
        seconds.as_secs()
    );
    println!(
        "full speed: wrk, {THREADS} thread, {} connections, HTTP/1.1; the {kinds} kinds of the soak mix that reach \
         the service ({} per cycle), answered 200 by every leg",
        options.connections,
        order.len()
    );
    let load = |duration| Load { threads: THREADS, connections: options.connections, duration };
    let mut failures = Vec::new();
    for leg in &legs {
        let warm = script.run(leg.envoy.listener, load(Duration::from_secs(2)))?;
        check(leg.what, &warm.statuses, warm.socket_errors(), &mut failures);
    }
    let rounds = options.rounds as usize;
    let count = legs.len();
    for index in interleaved(rounds, count) {
        let Some(leg) = legs.get_mut(index) else { continue };
        let cpu_before = cpu_time(&leg.envoy)?;
        let report = script.run(leg.envoy.listener, load(seconds))?;
        let cpu = cpu_time(&leg.envoy)?.saturating_sub(cpu_before);
        check(leg.what, &report.statuses, report.socket_errors(), &mut failures);
        leg.throughput.push(report.per_second());
        leg.p99.push(report.p99.as_secs_f64());
        leg.cpu.push(cpu.as_secs_f64() / report.requests.max(1) as f64);
    }
    let fixed_rate = h2::available();
    if fixed_rate {
        let log = crate::scratch_dir().join("h2load.log");
        for index in interleaved(rounds, count) {
            let Some(leg) = legs.get_mut(index) else { continue };
            let latency =
                h2::run(leg.envoy.listener, API_CALL.path, API_CALL.headers, H2_CLIENTS, H2_RATE, seconds, &log)?;
            check(leg.what, &latency.statuses, 0, &mut failures);
            // A rate not held means the leg saturated, and its latency measures a queue again.
            let planned = u64::from(H2_CLIENTS * H2_RATE) * seconds.as_secs();
            if latency.requests * 10 < planned * 9 {
                failures.push(format!("{}: h2load sent {} of {planned} requests", leg.what, latency.requests));
            }
            leg.fixed_p50.push(latency.p50.as_secs_f64());
            leg.fixed_p99.push(latency.p99.as_secs_f64());
        }
    }
    let memory: Vec<Memory> = legs.iter().map(|leg| Memory::read(&leg.envoy)).collect::<Result<_, _>>()?;

    println!();
    let ms = |seconds: f64| millis(Duration::from_secs_f64(seconds));
    println!("  {:<24} {:^20} {:^33} {:^19}", "", "full speed (wrk)", "Envoy", "fixed rate (h2load)");
    println!(
        "  {:<24} {:>10} {:>9} {:>13} {:>7} {:>10} {:>9} {:>9}",
        "", "requests/s", "p99", "CPU/request", "RSS MiB", "allocated", "p50", "p99"
    );
    for (leg, memory) in legs.iter().zip(&memory) {
        println!(
            "  {} {:<20} {:>10.0} {:>9} {:>10.1} µs {:>7.0} {:>6.1} MiB {:>9} {:>9}",
            leg.tag,
            leg.what,
            median(&leg.throughput),
            ms(median(&leg.p99)),
            median(&leg.cpu) * 1e6,
            memory.rss as f64 / 1048576.0,
            memory.allocated as f64 / 1048576.0,
            if fixed_rate { ms(median(&leg.fixed_p50)) } else { "-".into() },
            if fixed_rate { ms(median(&leg.fixed_p99)) } else { "-".into() },
        );
    }
    println!("  (medians over the rounds; latencies as the clients measure them)");
    if fixed_rate {
        println!(
            "  fixed rate: {H2_CLIENTS} HTTP/2 connections × {H2_RATE} requests/s, one stream each: {} {} with the \
             app's headers",
            API_CALL.method, API_CALL.path
        );
    } else {
        println!("  fixed rate: skipped (h2load is not installed; Debian: apt-get install nghttp2-client)");
    }
    println!();
    println!("ratios against (a), each the median over the rounds of that round's ratio:");
    println!(
        "  {:<28} {:>10} {:>9} {:>13} {:>7} {:>20} {:>9}",
        "", "requests/s", "p99", "CPU/request", "RSS", "fixed p50", "fixed p99"
    );
    let (baseline, others) = legs.split_first().ok_or("no legs")?;
    let (baseline_memory, others_memory) = memory.split_first().ok_or("no legs")?;
    for (leg, memory) in others.iter().zip(others_memory) {
        let fixed = |values: &[f64], base: &[f64]| {
            if fixed_rate {
                format!("{:.2}", ratio(values, base))
            } else {
                "-".into()
            }
        };
        println!(
            "  {}/(a) {:<20} {:>10.2} {:>9.2} {:>13.2} {:>7.2} {:>20} {:>9}",
            leg.tag,
            leg.what,
            ratio(&leg.throughput, &baseline.throughput),
            ratio(&leg.p99, &baseline.p99),
            ratio(&leg.cpu, &baseline.cpu),
            memory.rss as f64 / baseline_memory.rss.max(1) as f64,
            fixed(&leg.fixed_p50, &baseline.fixed_p50),
            fixed(&leg.fixed_p99, &baseline.fixed_p99),
        );
    }
    if let [.., edge, compare] = legs.as_slice() {
        if options.compare.is_some() {
            let ratios: Vec<f64> = edge.cpu.iter().zip(&compare.cpu).map(|(c, d)| c / d.max(1e-12)).collect();
            let (least, greatest) = ratios.iter().fold((f64::MAX, f64::MIN), |(l, g), r| (l.min(*r), g.max(*r)));
            println!(
                "A/B, Envoy CPU per request (c)/(d): {:.3} (rounds {least:.3}–{greatest:.3}); (c) {} µs, (d) {} µs by round",
                median(&ratios),
                rounds_text(&edge.cpu),
                rounds_text(&compare.cpu)
            );
        }
    }
    Ok(crate::verdict("bench", &failures))
}

/// Each round's figure in µs, in round order.
fn rounds_text(seconds: &[f64]) -> String {
    seconds.iter().map(|s| format!("{:.1}", s * 1e6)).collect::<Vec<_>>().join(" ")
}

/// The median of each round's ratio of `values` to `baseline`.
fn ratio(values: &[f64], baseline: &[f64]) -> f64 {
    let ratios: Vec<f64> = values.iter().zip(baseline).map(|(x, a)| x / a.max(1e-12)).collect();
    median(&ratios)
}

/// Every bench request is answered 200; anything else, or a socket error, voids the figures.
pub fn check(label: &str, statuses: &BTreeMap<u16, u64>, socket_errors: u64, failures: &mut Vec<String>) {
    if socket_errors > 0 {
        failures.push(format!("{label}: {socket_errors} socket errors or timeouts"));
    }
    for (status, count) in statuses {
        if *status != 200 {
            failures.push(format!("{label}: {count} responses {status}"));
        }
    }
}

/// The CPU time all of Envoy's threads have used (each thread's /proc schedstat, in nanoseconds).
pub fn cpu_time(envoy: &Envoy) -> Result<Duration, String> {
    cpu_time_of(envoy.pid())
}

/// The CPU time all threads of process `pid` have used.
pub fn cpu_time_of(pid: u32) -> Result<Duration, String> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0_u64;
    for task in std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    }
    Ok(Duration::from_nanos(total))
}

/// A request of the mix with what the echo upstream answers it.
type Exchange = (simulate::Request, simulate::Response);

/// The documents the native figures compare, and the soak mix's exchanges.
fn native_inputs() -> Result<(Vec<Document>, Vec<Exchange>), String> {
    let documents = ["empty", "hello", "edge"].iter().map(|name| Document::load(name)).collect::<Result<_, _>>()?;
    let edge = Document::load("edge")?;
    let plan = Plan::new(EDGE_MIX, &edge.rules)?;
    let exchanges = plan
        .order
        .iter()
        .filter_map(|&i| EDGE_MIX.get(i))
        .map(|entry| {
            let request = entry.request();
            let response = mix::echo_response(&request);
            (request, response)
        })
        .collect();
    Ok((documents, exchanges))
}

/// Nanoseconds per request of the soak mix on the simulated proxy, per document.
fn native_engine() -> Result<(), String> {
    let (documents, requests) = native_inputs()?;
    let batch = |document: &Document| {
        let started = Instant::now();
        let mut count = 0_u64;
        while started.elapsed() < BATCH {
            for (request, upstream) in &requests {
                black_box(simulate::run(&document.rules, black_box(request), upstream));
            }
            count += requests.len() as u64;
        }
        started.elapsed().as_secs_f64() * 1e9 / count as f64
    };
    for document in &documents {
        batch(document);
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); documents.len()];
    for _ in 0..REPETITIONS {
        for (document, times) in documents.iter().zip(&mut times) {
            times.push(batch(document));
        }
    }
    let medians: Vec<f64> = times.iter().map(|t| median(t)).collect();
    let floor = medians.first().copied().unwrap_or(1.0);
    println!(
        "native engine on the simulated proxy, the soak mix ({} requests a cycle); median of {REPETITIONS} × {} ms:",
        requests.len(),
        BATCH.as_millis()
    );
    for (document, ns) in documents.iter().zip(&medians) {
        println!(
            "  {:<6} {:>8.2} µs/request  {:>6.2} × empty  (the rules alone: {:.2} µs)",
            document.name,
            ns / 1000.0,
            ns / floor,
            (ns - floor) / 1000.0
        );
    }
    println!("  (the empty document's time is the simulated proxy's own: building and recording each exchange)");
    Ok(())
}

/// Callgrind's instruction count per request for each document: two runs of different lengths, so that start-up
/// (parsing and compiling the document) cancels out.
fn instructions() -> Result<(), String> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("instructions per request: skipped (valgrind is not installed; Debian: apt-get install valgrind)");
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let cycle = native_inputs()?.1.len() as u64;
    let (short, long) = (10 * cycle, 60 * cycle);
    let count = |document: &str, requests: u64| -> Result<u64, String> {
        let output = Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(&exe)
            .args(["engine-loop", document, &requests.to_string()])
            .output()
            .map_err(|e| format!("valgrind: {e}"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        stderr
            .lines()
            .find_map(|l| l.split("Collected :").nth(1).and_then(|n| n.trim().parse().ok()))
            .ok_or_else(|| format!("no instruction count from callgrind:\n{stderr}"))
    };
    println!("instructions per request, the same mix on the simulated proxy (callgrind; deterministic):");
    let mut floor = None;
    for document in ["empty", "hello", "edge"] {
        let per_request = (count(document, long)?.saturating_sub(count(document, short)?)) / (long - short);
        let base = *floor.get_or_insert(per_request.max(1));
        println!("  {document:<6} {per_request:>8} instructions  {:>6.2} × empty", per_request as f64 / base as f64);
    }
    Ok(())
}

/// Besides the native documents, the loops take the 1,000-rule ones of examples/perf/large.rs by shape
/// (`exact-paths`, `prefix-header`, `host-lists`, `regex-paths`, `cidr-lists`).
fn large_document(name: &str) -> Result<Option<Document>, String> {
    match large::SHAPES.iter().find(|shape| shape.name == name) {
        Some(shape) => Ok(Some(large::document(shape)?)),
        None => Ok(None),
    }
}

/// `perf engine-loop DOCUMENT N`: N requests of the soak mix through one document, for callgrind to count.
pub fn engine_loop(document: &str, requests: u64) -> Result<(), String> {
    let (documents, mix) = native_inputs()?;
    let large = large_document(document)?;
    let document =
        large.as_ref().or_else(|| documents.iter().find(|d| d.name == document)).ok_or("unknown document")?;
    for (request, upstream) in mix.iter().cycle().take(usize::try_from(requests).unwrap_or(usize::MAX)) {
        black_box(simulate::run(&document.rules, black_box(request), upstream));
    }
    Ok(())
}

/// `perf module-loop DOCUMENT N`: N requests of the soak mix through one document on the module's own `Host`
/// (`ProxyHost`), over stand-in host calls that hand over fixed header maps and accept every edit at no cost:
/// what callgrind counts is then the module's own work per request, as V8 runs it inside Envoy, without the
/// simulated proxy's.
pub fn module_loop(document: &str, requests: u64) -> Result<(), String> {
    let (documents, mix) = native_inputs()?;
    let large = large_document(document)?;
    let document =
        large.as_ref().or_else(|| documents.iter().find(|d| d.name == document)).ok_or("unknown document")?;
    let maps: Vec<FixedMaps> = mix.iter().map(|(request, upstream)| FixedMaps::of(request, upstream)).collect();
    for maps in maps.iter().cycle().take(usize::try_from(requests).unwrap_or(usize::MAX)) {
        let mut state = document.rules.new_request();
        let flow = document.rules.on_request_headers(&mut state, &mut ProxyHost::new(maps.phase(HeaderMap::Request)));
        let flow = match flow {
            Flow::Continue => {
                document.rules.on_response_headers(&mut state, &mut ProxyHost::new(maps.phase(HeaderMap::Response)))
            }
            Flow::Responded => flow,
        };
        black_box(flow);
    }
    Ok(())
}

/// One exchange's header maps in proxy-wasm's encoding, as Envoy would hand them over.
struct FixedMaps {
    request: Vec<u8>,
    response: Vec<u8>,
    source: Vec<u8>,
}

impl FixedMaps {
    fn of(request: &simulate::Request, upstream: &simulate::Response) -> Self {
        let pseudo = [
            (":method", request.method.as_str()),
            (":path", request.path.as_str()),
            (":authority", request.authority.as_str()),
            (":scheme", request.scheme.as_str()),
        ];
        let headers = request.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let status = upstream.status.to_string();
        let response = upstream.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        FixedMaps {
            request: encode(pseudo.into_iter().chain(headers)),
            response: encode([(":status", status.as_str())].into_iter().chain(response)),
            source: request.source.clone().into_bytes(),
        }
    }

    fn phase(&self, map: HeaderMap) -> PhaseCalls<'_> {
        PhaseCalls { maps: self, map }
    }
}

/// The host calls of one phase: its map is read, every edit and answer accepted.
struct PhaseCalls<'m> {
    maps: &'m FixedMaps,
    map: HeaderMap,
}

impl HostCalls for PhaseCalls<'_> {
    fn header_pairs(&mut self, map: HeaderMap) -> Result<Vec<u8>, HostStatus> {
        match (map, self.map) {
            (HeaderMap::Request, HeaderMap::Request) => Ok(self.maps.request.clone()),
            (HeaderMap::Response, HeaderMap::Response) => Ok(self.maps.response.clone()),
            _ => Err(HostStatus(2)),
        }
    }
    fn set_header(&mut self, _: HeaderMap, _: &str, _: &str) -> Result<(), HostStatus> {
        Ok(())
    }
    fn add_header(&mut self, _: HeaderMap, _: &str, _: &str) -> Result<(), HostStatus> {
        Ok(())
    }
    fn remove_header(&mut self, _: HeaderMap, _: &str) -> Result<(), HostStatus> {
        Ok(())
    }
    fn property(&mut self, path: &str) -> Result<Option<Vec<u8>>, HostStatus> {
        Ok((path == "source\0address").then(|| self.maps.source.clone()))
    }
    fn send_response(&mut self, _: u16, _: &[(&str, &str)], _: &[u8]) -> Result<(), HostStatus> {
        Ok(())
    }
    fn shared_data(&mut self, _: &str) -> Result<Option<(Vec<u8>, u32)>, HostStatus> {
        Ok(None)
    }
    fn set_shared_data(&mut self, _: &str, _: &[u8], _: u32) -> Result<bool, HostStatus> {
        Ok(true)
    }
    fn now_nanos(&mut self) -> Result<u64, HostStatus> {
        Ok(simulate::CLOCK_START)
    }
    fn body(&mut self, _: HeaderMap, _: usize) -> Result<Option<Vec<u8>>, HostStatus> {
        Ok(None)
    }
    fn set_body(&mut self, _: HeaderMap, _: usize, _: &[u8]) -> Result<(), HostStatus> {
        Err(HostStatus(2))
    }
    fn count(&mut self, _: CounterId) {}
}
