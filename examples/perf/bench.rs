//! `make bench`: what the filter costs, as ratios against baselines measured in the same run.
//!
//! - Envoy: the same requests through (a) no Wasm filter, (b) the module with an empty document, (c) the module
//!   with rules/edge.yaml; three Envoys side by side, their legs interleaved round by round (each round in
//!   another order) so that a neighbour's load on the machine falls on all three alike.
//! - The native engine on the simulated proxy: the soak mix through the empty, hello and edge documents.
//! - Instructions per request under callgrind, when valgrind is installed: deterministic, unlike time.
//! - The module's size.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use rulefilter::local::envoy::Envoy;
use rulefilter::simulate;

use crate::mix::{self, Plan, EDGE_MIX};
use crate::wrk::{Load, Report, Script};
use crate::{echo_upstream, median, mib, millis, size_of, start_envoy, Document, Memory, Options};

const THREADS: u32 = 1;
/// Native timing: repetitions per document, each at least this long.
const REPETITIONS: usize = 7;
const BATCH: Duration = Duration::from_millis(100);

pub fn run(options: &Options) -> Result<bool, String> {
    let mut ok = true;
    let size = size_of(&options.module)?;
    println!("module: {} ({size} bytes)", options.module.display());
    println!();
    native_engine()?;
    println!();
    instructions()?;
    println!();
    ok &= envoy_legs(options)?;
    Ok(ok)
}

/// One leg of the Envoy comparison.
struct Leg {
    tag: &'static str,
    what: &'static str,
    envoy: Envoy,
    reports: Vec<Report>,
    /// Envoy's CPU time per completed request, per round.
    cpu_per_request: Vec<Duration>,
}

fn envoy_legs(options: &Options) -> Result<bool, String> {
    let edge = Document::load("edge")?;
    let plan = Plan::new(EDGE_MIX, &edge.rules)?;
    // Only requests that reach the service: answered by the proxy, a request would cost (c) less than (a).
    let order: Vec<usize> =
        plan.order.iter().copied().filter(|&i| !plan.answered_by_proxy.get(i).copied().unwrap_or(true)).collect();
    let kinds = EDGE_MIX.iter().enumerate().filter(|(i, _)| order.contains(i)).count();
    let script = Script::write(&crate::scratch_dir(), "bench", &mix::wrk_lines(EDGE_MIX, &order))?;
    let upstream = echo_upstream()?;
    let empty = Document::load("empty")?;
    let mut legs = vec![
        Leg {
            tag: "(a)",
            what: "no Wasm filter",
            envoy: start_envoy(options, "bench-none", None, upstream.addr)?,
            reports: Vec::new(),
            cpu_per_request: Vec::new(),
        },
        Leg {
            tag: "(b)",
            what: "empty document",
            envoy: start_envoy(options, "bench-empty", Some(empty.plugin()), upstream.addr)?,
            reports: Vec::new(),
            cpu_per_request: Vec::new(),
        },
        Leg {
            tag: "(c)",
            what: "edge.yaml, 50 rules",
            envoy: start_envoy(options, "bench-edge", Some(edge.plugin()), upstream.addr)?,
            reports: Vec::new(),
            cpu_per_request: Vec::new(),
        },
    ];
    let seconds = Duration::from_secs(options.seconds);
    println!(
        "Envoy (one worker, as the e2e suite starts it) + echo upstream, wrk {THREADS} thread {} connections; \
         {} rounds of {} s per leg, legs interleaved",
        options.connections,
        options.rounds,
        seconds.as_secs()
    );
    println!(
        "requests: the {kinds} kinds of the soak mix that reach the service ({} per cycle), answered 200 by every leg",
        order.len()
    );
    let load = |duration| Load { threads: THREADS, connections: options.connections, duration };
    let mut failures = Vec::new();
    for leg in &legs {
        let warm = script.run(leg.envoy.listener, load(Duration::from_secs(2)))?;
        check(leg.what, &warm, &mut failures);
    }
    for round in 0..options.rounds as usize {
        for turn in 0..legs.len() {
            let count = legs.len();
            let Some(leg) = legs.get_mut((round + turn) % count) else { continue };
            let cpu_before = cpu_time(&leg.envoy)?;
            let report = script.run(leg.envoy.listener, load(seconds))?;
            let cpu = cpu_time(&leg.envoy)?.saturating_sub(cpu_before);
            check(leg.what, &report, &mut failures);
            leg.cpu_per_request.push(cpu / u32::try_from(report.requests.max(1)).unwrap_or(u32::MAX));
            leg.reports.push(report);
        }
    }
    let memory: Vec<Memory> = legs.iter().map(|leg| Memory::read(&leg.envoy)).collect::<Result<_, _>>()?;

    println!();
    println!("                            requests/s        p99   Envoy CPU/request   Envoy RSS   allocated");
    for (leg, memory) in legs.iter().zip(&memory) {
        let rps: Vec<f64> = leg.reports.iter().map(Report::per_second).collect();
        let p99: Vec<f64> = leg.reports.iter().map(|r| r.p99.as_secs_f64()).collect();
        let cpu: Vec<f64> = leg.cpu_per_request.iter().map(Duration::as_secs_f64).collect();
        println!(
            "  {} {:<20} {:>12.0} {:>10} {:>16.1} µs {:>11} {:>11}",
            leg.tag,
            leg.what,
            median(&rps),
            millis(Duration::from_secs_f64(median(&p99))),
            median(&cpu) * 1e6,
            mib(memory.rss),
            mib(memory.allocated)
        );
    }
    println!("  (medians over the rounds; p99 as wrk measures it, from the client)");
    println!();
    println!("ratios against (a), each the median over the rounds of that round's ratio:");
    println!("                            throughput    p99   CPU/request   RSS");
    let (baseline, others) = legs.split_first().ok_or("no legs")?;
    let (baseline_memory, others_memory) = memory.split_first().ok_or("no legs")?;
    for (leg, memory) in others.iter().zip(others_memory) {
        let ratio = |f: &dyn Fn(&Report) -> f64| {
            let ratios: Vec<f64> = leg.reports.iter().zip(&baseline.reports).map(|(x, a)| f(x) / f(a)).collect();
            median(&ratios)
        };
        let cpu: Vec<f64> = leg
            .cpu_per_request
            .iter()
            .zip(&baseline.cpu_per_request)
            .map(|(x, a)| x.as_secs_f64() / a.as_secs_f64().max(1e-12))
            .collect();
        let rss = memory.rss as f64 / baseline_memory.rss.max(1) as f64;
        println!(
            "  {}/(a) {:<18} {:>8.2} {:>8.2} {:>10.2} {:>8.2}",
            leg.tag,
            leg.what,
            ratio(&Report::per_second),
            ratio(&|r| r.p99.as_secs_f64()),
            median(&cpu),
            rss
        );
    }
    if failures.is_empty() {
        Ok(true)
    } else {
        println!();
        println!("bench: FAILED");
        for failure in &failures {
            println!("  {failure}");
        }
        Ok(false)
    }
}

/// Every bench request is answered 200; anything else, or a socket error, voids the figures.
fn check(label: &str, report: &Report, failures: &mut Vec<String>) {
    if report.socket_errors() > 0 {
        failures.push(format!("{label}: socket errors ({})", report.socket_error_text()));
    }
    for (status, count) in &report.statuses {
        if *status != 200 {
            failures.push(format!("{label}: {count} responses {status}"));
        }
    }
}

/// The CPU time all of Envoy's threads have used (each thread's /proc schedstat, in nanoseconds).
fn cpu_time(envoy: &Envoy) -> Result<Duration, String> {
    let dir = format!("/proc/{}/task", envoy.pid());
    let mut total = 0_u64;
    for task in std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    }
    Ok(Duration::from_nanos(total))
}

/// The documents the native figures compare, the soak mix's requests, and the echo upstream's answer.
fn native_inputs() -> Result<(Vec<Document>, Vec<simulate::Request>, simulate::Response), String> {
    let documents = ["empty", "hello", "edge"].iter().map(|name| Document::load(name)).collect::<Result<_, _>>()?;
    let edge = Document::load("edge")?;
    let plan = Plan::new(EDGE_MIX, &edge.rules)?;
    let requests = plan.order.iter().filter_map(|&i| EDGE_MIX.get(i)).map(mix::Entry::request).collect();
    Ok((documents, requests, mix::echo_response()))
}

/// Nanoseconds per request of the soak mix on the simulated proxy, per document.
fn native_engine() -> Result<(), String> {
    let (documents, requests, upstream) = native_inputs()?;
    let batch = |document: &Document| {
        let started = Instant::now();
        let mut count = 0_u64;
        while started.elapsed() < BATCH {
            for request in &requests {
                black_box(simulate::run(&document.rules, black_box(request), &upstream));
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
    println!("instructions per request (callgrind, the same mix; deterministic):");
    let mut floor = None;
    for document in ["empty", "hello", "edge"] {
        let per_request = (count(document, long)?.saturating_sub(count(document, short)?)) / (long - short);
        let base = *floor.get_or_insert(per_request.max(1));
        println!("  {document:<6} {per_request:>8} instructions  {:>6.2} × empty", per_request as f64 / base as f64);
    }
    Ok(())
}

/// `perf engine-loop DOCUMENT N`: N requests of the soak mix through one document, for callgrind to count.
pub fn engine_loop(document: &str, requests: u64) -> Result<(), String> {
    let (documents, mix, upstream) = native_inputs()?;
    let document = documents.iter().find(|d| d.name == document).ok_or("unknown document")?;
    for request in mix.iter().cycle().take(usize::try_from(requests).unwrap_or(usize::MAX)) {
        black_box(simulate::run(&document.rules, black_box(request), &upstream));
    }
    Ok(())
}
