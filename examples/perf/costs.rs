//! `make bench-costs`: what each part of a rule costs inside Envoy, so that authors know what to keep off hot
//! paths. Each part is used ten times in one document (ten rules, or ten edits in one rule). A document's cost
//! per use is its Envoy CPU time per request less a baseline document's (ten rules that stop at their first
//! condition; its own cost is measured against the empty document), divided by ten: the median over rounds of
//! that round's difference, printed with the range the rounds spanned, so a run shows its own noise (a busy
//! machine widens it far beyond a quiet one's). Every leg gets the same
//! request (the app's signed-in API call, which every document passes to the service) from wrk at full speed;
//! legs are interleaved round by round as in the bench.

use std::fmt::Write as _;
use std::time::Duration;

use crate::bench::{check, cpu_time, THREADS};
use crate::mix::{self, API_CALL};
use crate::wrk::{Load, Script};
use crate::{echo_upstream, interleaved, median, start_envoy, Document, Options};

/// How many times each document uses its part.
const USES: usize = 10;

struct Part {
    label: &'static str,
    document: String,
}

/// Ten rules of `phase`, each written by `rule(i)` as the YAML of a list item's fields after its name.
fn rules(phase: &str, rule: impl Fn(usize) -> String) -> String {
    let mut text = format!("{phase}:\n");
    for i in 0..USES {
        let _ = writeln!(text, "  - name: r{i}\n    {}", rule(i));
    }
    text
}

/// One rule with no condition and one action, written in flow style.
fn one_rule(phase: &str, action: &str) -> String {
    format!("{phase}:\n  - name: all\n    actions: [{action}]\n")
}

/// The ten uses of a part, comma-separated, for a flow mapping or list.
fn uses(item: impl Fn(usize) -> String) -> String {
    (0..USES).map(item).collect::<Vec<_>>().join(", ")
}

fn parts() -> Vec<Part> {
    let part = |label, document| Part { label, document };
    vec![
        part("the module with an empty document", String::new()),
        part("baseline: a rule that fails its first condition (path exact)", {
            rules("request", |_| "match: {path: /never}\n    actions: [respond: {status: 404}]".into())
        }),
        part("a header condition, the header absent (10 different headers)", {
            rules("request", |i| {
                format!(
                    "match: {{headers: {{x-absent-{i}: {{present: true}}}}}}\n    actions: [respond: {{status: 404}}]"
                )
            })
        }),
        part("a regex condition that fails", {
            rules("request", |_| {
                "match: {headers: {user-agent: {regex: 'OtherApp/[0-9]+\\.[0-9]+.*'}}}\n    actions: [respond: {status: 404}]".into()
            })
        }),
        part("a rule that matches (prefix test), its action a debug log line (not written)", {
            rules("request", |_| {
                "match: {headers: {user-agent: {prefix: ShopApp/}}}\n    actions: [log: {level: debug, message: x}]"
                    .into()
            })
        }),
        part("the same, matched by a regex with two named captures", {
            rules("request", |_| {
                "match: {headers: {user-agent: {regex: 'ShopApp/(?P<major>[0-9]+)\\.(?P<minor>[0-9]+).*'}}}\n    actions: [log: {level: debug, message: x}]".into()
            })
        }),
        part("set a request header, a fixed value", {
            one_rule("request", &format!("request_headers: {{set: {{{}}}}}", uses(|i| format!("x-fixed-{i}: value"))))
        }),
        part("set a request header from a template (${header.user-agent})", {
            let value = |i| format!("x-copied-{i}: \"${{header.user-agent}}\"");
            one_rule("request", &format!("request_headers: {{set: {{{}}}}}", uses(value)))
        }),
        part("remove a request header that is absent", {
            one_rule("request", &format!("request_headers: {{remove: [{}]}}", uses(|i| format!("x-absent-{i}"))))
        }),
        part("set a response header, a fixed value", {
            one_rule("response", &format!("response_headers: {{set: {{{}}}}}", uses(|i| format!("x-fixed-{i}: value"))))
        }),
        part("write a log line at info (Envoy's log)", {
            one_rule("request", &uses(|i| format!("log: {{level: info, message: line {i}}}")))
        }),
        part("a rate limit that allows (key ${header.user-agent}, buckets in shared data)", {
            // A limit no load reaches: every request reads its bucket and writes it back by compare-and-swap.
            rules("request", |_| {
                "actions: [rate_limit: {key: \"${header.user-agent}\", requests: 1000000000, per: second}]".into()
            })
        }),
        // The echo upstream answers the API call with its JSON (about 600 bytes): each rule holds that
        // response body and tests a field; the body is read from Envoy and parsed once for all ten.
        part("a response body rule testing a JSON field (body held, read and parsed once)", {
            rules("response", |_| {
                "body: {content_types: [application/json], json: {/method: GET}}
    actions: [log: {level: debug, message: x}]"
                    .into()
            })
        }),
        part("set a field in the JSON response body (json_set; held, parsed, written back once)", {
            let field = |i| format!("/edited/f{i}: true");
            one_rule("response", &format!("response_body: {{json_set: {{{}}}}}", uses(field)))
        }),
    ]
}

/// The least and greatest of a row's per-round figures, `0.10 to 0.22 µs`.
fn spanned(per_round: &[f64]) -> String {
    let least = per_round.iter().copied().fold(f64::INFINITY, f64::min);
    let greatest = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if least.is_finite() && greatest.is_finite() {
        format!("{least:.2} to {greatest:.2} µs")
    } else {
        String::from("-")
    }
}

pub fn run(options: &Options) -> Result<bool, String> {
    let parts = parts();
    let documents: Vec<Document> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| match part.document.as_str() {
            "" => Document::load("empty"),
            text => {
                Document::from_text(&format!("costs-{i}"), text, Vec::new()).map_err(|e| format!("{}: {e}", part.label))
            }
        })
        .collect::<Result<_, _>>()?;
    let upstream = echo_upstream()?;
    let mut envoys = Vec::new();
    for document in &documents {
        envoys.push(start_envoy(options, &document.name, Some(document.plugin()), upstream.addr)?);
    }
    let script = Script::write(&crate::scratch_dir(), "costs", &mix::wrk_lines(&[API_CALL], &[0]))?;
    let load =
        |seconds| Load { threads: THREADS, connections: options.connections, duration: Duration::from_secs(seconds) };
    println!(
        "Envoy CPU time per request, each part used {USES} times in a document; {} rounds of {} s per document, \
         interleaved; wrk, {} connections: {} {} with the app's headers",
        options.rounds, options.seconds, options.connections, API_CALL.method, API_CALL.path
    );
    let mut failures = Vec::new();
    for (envoy, part) in envoys.iter().zip(&parts) {
        let warm = script.run(envoy.listener, load(1))?;
        check(part.label, &warm.statuses, warm.socket_errors(), &mut failures);
    }
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); envoys.len()];
    for index in interleaved(options.rounds as usize, envoys.len()) {
        let (Some(envoy), Some(part), Some(figures)) = (envoys.get(index), parts.get(index), cpu.get_mut(index)) else {
            continue;
        };
        let before = cpu_time(envoy)?;
        let report = script.run(envoy.listener, load(options.seconds))?;
        let used = cpu_time(envoy)?.saturating_sub(before);
        check(part.label, &report.statuses, report.socket_errors(), &mut failures);
        figures.push(used.as_secs_f64() * 1e6 / report.requests.max(1) as f64);
    }
    let (empty, baseline) = match cpu.as_slice() {
        [empty, baseline, ..] => (empty, baseline),
        _ => return Err("no documents".into()),
    };
    println!();
    println!("  {:<78} {:>12} {:>10} {:>22}", "", "CPU/request", "per use", "rounds spanned");
    for (index, (part, figures)) in parts.iter().zip(&cpu).enumerate() {
        // The baseline's rules cost what they add to the empty document; every other part, what it adds to them.
        let reference = match index {
            0 => None,
            1 => Some(empty),
            _ => Some(baseline),
        };
        let (cost, spread) = match reference {
            None => (String::from("-"), String::new()),
            Some(reference) => {
                let per_round: Vec<f64> =
                    figures.iter().zip(reference).map(|(x, base)| (x - base) / USES as f64).collect();
                (format!("{:.2} µs", median(&per_round)), spanned(&per_round))
            }
        };
        println!("  {:<78} {:>9.1} µs {:>10} {:>22}", part.label, median(figures), cost, spread);
    }
    println!(
        "  (medians over the rounds; per use: the difference from the baseline, or for the baseline from the \
         empty document, over {USES}; rounds spanned: the least and greatest per-use figure of a round, the \
         noise this run saw)"
    );
    Ok(crate::verdict("costs", &failures))
}
