//! `make soak`: the edge document under a bounded full-speed load. Fails on any status the mix does not
//! predict, on any socket error or timeout, on module counters that do not add up, and on memory growth.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rulefilter::metrics::{self, Counter, CounterId};

use crate::mix::{self, Plan, EDGE_MIX};
use crate::wrk::{Load, Report, Script};
use crate::{echo_upstream, mib, millis, start_envoy, stats, Document, Memory, Options};

/// Memory may end at most this much above where it started (see [`memory_bound`]).
const GROWTH_RATIO: f64 = 1.10;
const RSS_SLACK: u64 = 8 << 20;
const ALLOCATED_SLACK: u64 = 4 << 20;
/// The module hands its counts to Envoy once a second; wait a little longer before reading them.
const FLUSH_WAIT: Duration = Duration::from_millis(2200);
/// wrk threads: one keeps a core free for Envoy's single worker on a two-core machine.
const THREADS: u32 = 1;

pub fn run(options: &Options) -> Result<bool, String> {
    let document = Document::load("edge")?;
    let plan = Plan::new(EDGE_MIX, &document.rules)?;
    let upstream = echo_upstream()?;
    let mut envoy = start_envoy(options, "soak-edge", Some(document.plugin()), upstream.addr)?;
    let script = Script::write(&crate::scratch_dir(), "soak", &mix::wrk_lines(EDGE_MIX, &plan.order))?;
    let seconds = options.seconds;
    let warm_up = Duration::from_secs((seconds / 6).clamp(2, 10));
    let rules =
        document.rules.rule_count(rulefilter::Phase::Request) + document.rules.rule_count(rulefilter::Phase::Response);
    println!(
        "soak: rules/edge.yaml ({rules} rules) through Envoy (one worker, as the e2e suite starts it) in front of \
         an echo upstream;\n      wrk, {THREADS} thread, {} connections, {seconds} s after a {} s warm-up",
        options.connections,
        warm_up.as_secs()
    );
    println!(
        "mix: {} requests per cycle of {} kinds, {:.0}% answered by the proxy; checked on the simulated proxy first",
        plan.cycle(),
        EDGE_MIX.len(),
        100.0 * plan.counters.get(&metrics::DIRECT_RESPONSES).copied().unwrap_or(0) as f64 / plan.cycle() as f64
    );
    let load = |duration| Load { threads: THREADS, connections: options.connections, duration };
    let mut failures = Vec::new();

    let warm = script.run(envoy.listener, load(warm_up))?;
    check_statuses_seen("warm-up", &warm, &plan, &mut failures);
    std::thread::sleep(FLUSH_WAIT);
    let start = Memory::read(&envoy)?;
    let stats_before = stats(&envoy)?;

    // Memory while the load runs, about a dozen samples.
    let interval = Duration::from_secs((seconds / 12).clamp(1, 10));
    let samples = Mutex::new(Vec::new());
    let running = AtomicBool::new(true);
    let report = std::thread::scope(|scope| {
        scope.spawn(|| {
            let begun = Instant::now();
            while running.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let due = samples.lock().map(|s| s.len() as u32).unwrap_or(0) + 1;
                if begun.elapsed() >= interval * due {
                    if let (Ok(memory), Ok(mut samples)) = (Memory::read(&envoy), samples.lock()) {
                        samples.push((begun.elapsed(), memory));
                    }
                }
            }
        });
        let report = script.run(envoy.listener, load(Duration::from_secs(seconds)));
        running.store(false, Ordering::Relaxed);
        report
    })?;
    std::thread::sleep(FLUSH_WAIT);
    let end = Memory::read(&envoy)?;
    let stats_after = stats(&envoy)?;
    if let Ok(Some(exit)) = envoy.try_wait() {
        failures.push(format!("Envoy exited during the soak ({exit})"));
    }

    println!();
    println!(
        "throughput: {:.0} requests/s ({} requests in {:.1} s)",
        report.per_second(),
        report.requests,
        report.duration.as_secs_f64()
    );
    println!(
        "latency: p50 {}, p99 {}, p99.9 {}, max {}",
        millis(report.p50),
        millis(report.p99),
        millis(report.p999),
        millis(report.max)
    );
    check_statuses_seen("soak", &report, &plan, &mut failures);
    report_statuses(&report, &plan, options.connections, &mut failures);
    let counted = |name: &str| {
        stats_after.get(name).copied().unwrap_or(0).saturating_sub(stats_before.get(name).copied().unwrap_or(0))
    };
    check_counters(&document, &plan, &report, options.connections, &counted, &mut failures);
    let samples = samples.into_inner().unwrap_or_default();
    check_memory(envoy.pid(), start, end, &samples, report.requests, &mut failures);

    println!();
    if failures.is_empty() {
        println!("soak: ok");
        Ok(true)
    } else {
        println!("soak: FAILED");
        for failure in &failures {
            println!("  {failure}");
        }
        println!("Envoy's files: {}", envoy.dir.display());
        Ok(false)
    }
}

/// No socket errors or timeouts, and only statuses the mix predicts.
fn check_statuses_seen(run: &str, report: &Report, plan: &Plan, failures: &mut Vec<String>) {
    if report.socket_errors() > 0 {
        failures.push(format!("{run}: socket errors ({})", report.socket_error_text()));
    }
    let expected = plan.expected_statuses();
    for (status, count) in &report.statuses {
        if !expected.contains(status) {
            failures.push(format!("{run}: {count} unexpected {status} responses"));
        }
    }
    let tallied: u64 = report.statuses.values().sum();
    if tallied != report.requests {
        failures.push(format!("{run}: wrk completed {} requests but tallied {tallied} statuses", report.requests));
    }
}

/// The mix goes out round robin, so each status comes back in its share of the mix, give or take the requests
/// of an unfinished cycle and those still in flight when wrk stopped.
fn report_statuses(report: &Report, plan: &Plan, connections: u32, failures: &mut Vec<String>) {
    let n = report.requests as f64;
    let cycle = plan.cycle() as f64;
    let margin = f64::from(connections) + f64::from(THREADS) * cycle;
    println!("statuses (expected: the mix's share of {} requests, ± {margin:.0}):", report.requests);
    let mut all: BTreeMap<u16, (u64, u64)> = plan.statuses.iter().map(|(s, k)| (*s, (*k, 0))).collect();
    for (status, count) in &report.statuses {
        all.entry(*status).or_insert((0, 0)).1 = *count;
    }
    for (status, (per_cycle, seen)) in all {
        let expected = n * per_cycle as f64 / cycle;
        let verdict = if per_cycle == 0 {
            "UNEXPECTED"
        } else if (seen as f64 - expected).abs() > margin {
            failures.push(format!("{seen} responses {status}, expected {expected:.0} ± {margin:.0}"));
            "OFF"
        } else {
            "ok"
        };
        println!("  {status}  {seen:>9}  expected {expected:>11.0}  ({per_cycle:>2}/{cycle:.0} of the mix)  {verdict}");
    }
    println!(
        "socket errors: {}",
        if report.socket_errors() == 0 { "none".to_owned() } else { report.socket_error_text() }
    );
}

/// Every counter of the module moved by what the simulator predicts for the requests sent; requests exactly
/// as many as Envoy's own count.
fn check_counters(
    document: &Document,
    plan: &Plan,
    report: &Report,
    connections: u32,
    counted: &dyn Fn(&str) -> u64,
    failures: &mut Vec<String>,
) {
    let plugin = document.plugin();
    let plugin = metrics::plugin_label(&format!("{}.{}", plugin.namespace, plugin.name));
    let name = |counter: &Counter| format!("wasmcustom.{}", counter.stat_name(&plugin));
    let counters = document.rules.counters();
    let n = report.requests;
    let requests = counted(&name(&Counter::Requests));
    let envoy_requests = counted("http.ingress.downstream_rq_total");
    let in_flight = u64::from(connections);
    println!("module counters (after the last flush):");
    println!(
        "  rulefilter_requests_total +{requests}; wrk completed {n}, at most {in_flight} more in flight; Envoy's \
         downstream_rq_total +{envoy_requests}"
    );
    if requests < n || requests > n + in_flight {
        failures.push(format!("rulefilter_requests_total +{requests}, wrk completed {n} (+ ≤ {in_flight} in flight)"));
    }
    if requests != envoy_requests {
        failures.push(format!("rulefilter_requests_total +{requests} but Envoy counted {envoy_requests} requests"));
    }
    let cycle = plan.cycle() as f64;
    let (mut checked, mut off, mut worst) = (0, 0, 0.0_f64);
    let mut never = Vec::new();
    for (id, counter) in counters.iter().enumerate() {
        let id = CounterId(u32::try_from(id).unwrap_or(u32::MAX));
        if id == metrics::REQUESTS {
            continue;
        }
        let per_cycle = plan.counters.get(&id).copied().unwrap_or(0);
        let per_request = plan.counter_max.get(&id).copied().unwrap_or(1) as f64;
        let seen = counted(&name(counter));
        let expected = n as f64 * per_cycle as f64 / cycle;
        let margin = (in_flight as f64 + f64::from(THREADS) * cycle) * per_request;
        let deviation = (seen as f64 - expected).abs();
        worst = worst.max(deviation / margin);
        checked += 1;
        if deviation > margin {
            off += 1;
            failures.push(format!("{}: +{seen}, expected {expected:.0} ± {margin:.0}", name(counter)));
        }
        if let (Counter::RuleMatched { rule, .. }, 0) = (counter, per_cycle) {
            never.push(*rule);
        }
        if id == metrics::DIRECT_RESPONSES {
            println!("  rulefilter_direct_responses_total +{seen}, expected {expected:.0} ± {margin:.0}");
        }
    }
    println!(
        "  {checked} more counters (every rule's matches and actions) against the simulator: {} off; the largest \
         deviation used {:.0}% of its margin",
        off,
        worst * 100.0
    );
    if !never.is_empty() {
        failures.push(format!("rules the mix never matches, so the soak does not exercise them: {}", never.join(", ")));
    }
}

/// Allowed growth from start to end: 10% (allocator caches, fragmentation) plus a constant (buffers and pools
/// that a few connections more or less leave behind). The warm-up ran the same mix, so every code path and
/// pool exists before the start is measured; what grows with the number of requests beyond this is a leak.
fn memory_bound(start: u64, slack: u64) -> u64 {
    (start as f64 * GROWTH_RATIO) as u64 + slack
}

fn check_memory(
    pid: u32,
    start: Memory,
    end: Memory,
    samples: &[(Duration, Memory)],
    requests: u64,
    failures: &mut Vec<String>,
) {
    println!("Envoy's memory (pid {pid}), after the warm-up and after the soak:");
    let rows = [
        ("RSS (/proc VmRSS)", start.rss, end.rss, RSS_SLACK),
        ("allocated (admin /memory)", start.allocated, end.allocated, ALLOCATED_SLACK),
    ];
    for (what, before, after, slack) in rows {
        let bound = memory_bound(before, slack);
        let change = after as i64 - before as i64;
        let verdict = if after > bound { "GREW" } else { "ok" };
        println!(
            "  {what:<26} {:>10} -> {:>10}  ({:+.1} MiB; bound {}: a leak of {:.0} bytes per request would cross it)  {verdict}",
            mib(before),
            mib(after),
            change as f64 / (1024.0 * 1024.0),
            mib(bound),
            (bound - before) as f64 / requests.max(1) as f64
        );
        if after > bound {
            failures.push(format!("{what} grew from {} to {} (bound {})", mib(before), mib(after), mib(bound)));
        }
    }
    println!("  heap (admin /memory heap_size) {} -> {}", mib(start.heap), mib(end.heap));
    let series: Vec<String> = samples
        .iter()
        .map(|(at, m)| {
            format!("{}s {:.1}/{:.1}", at.as_secs(), m.rss as f64 / 1048576.0, m.allocated as f64 / 1048576.0)
        })
        .collect();
    println!("  during the soak (RSS/allocated MiB): {}", series.join(", "));
}
