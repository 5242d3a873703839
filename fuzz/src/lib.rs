//! What the fuzz targets share: the environment documents are compiled with, a logger, and the invariants
//! every exchange must keep, whatever the rules and the request.

use std::collections::HashMap;
use std::sync::OnceLock;

use rulefilter::simulate::{self, Headers, Request, Response};
use rulefilter::RuleSet;
use serde_yaml::Value;

/// `vmConfig.env` for `${env.*}`: what the shipped documents read, plus one more.
pub fn env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        [
            ("REGION", "eu"),
            ("MAINTENANCE_RETRY_AFTER", "120"),
            ("CLUSTER", "eu-west-1"),
            ("INITECH_API_KEY", "initech-live-Tn5cR2wY8e"),
            ("PAYMENTS_WEBHOOK_KEY", "whsec-9fK3mQ7zLx2B"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    })
}

/// Formats every log line at every level into nothing: in Envoy the lines are formatted, so their formatting
/// is fuzzed too (without the cost of writing them out).
pub fn init_logging() {
    struct Sink;
    impl log::Log for Sink {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            use std::io::Write;
            let _ = write!(std::io::sink(), "{}", record.args());
        }
        fn flush(&self) {}
    }
    static SINK: Sink = Sink;
    if log::set_logger(&SINK).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

/// The same document with `mode: dry_run` for the whole of it, and without its `debug_header` (which still
/// lists matched rules in a dry run, by design); `None` when it is no mapping.
pub fn dry_run_variant(text: &str) -> Option<RuleSet> {
    let mut document: Value = serde_yaml::from_str(text).ok()?;
    let mapping = document.as_mapping_mut()?;
    mapping.insert("mode".into(), "dry_run".into());
    mapping.remove("debug_header");
    // As the tools hand a YAML document to the module: istiod's JSON of it.
    let json = rulefilter::local::istio::document_json(&document).ok()?;
    rulefilter::document::load(&json, env()).ok()
}

/// A document's rules, the same rules without indexes, and in dry-run mode.
pub struct Compiled {
    pub rules: RuleSet,
    /// Evaluated rule by rule (`RuleSet::without_indexes`): the indexed evaluation must agree with it.
    pub plain: RuleSet,
    pub dry_run: Option<RuleSet>,
}

impl Compiled {
    /// `rules`, compiled from `text`, with their plain and dry-run variants.
    pub fn new(text: &str, rules: RuleSet) -> Compiled {
        let plain = rulefilter::parse_with_env(text, env()).map(RuleSet::without_indexes).unwrap_or_default();
        Compiled { rules, plain, dry_run: dry_run_variant(text) }
    }
}

/// Runs one exchange every way there is and checks what must hold whatever the rules and the request:
/// - the engine never touches a header map outside its phase, nor answers twice (host errors);
/// - the indexes change nothing: plain evaluation gives the same outcome;
/// - tracing changes nothing but the trace;
/// - with no CR, LF or NUL in what the client and the upstream sent (Envoy's codecs refuse them), none is in
///   any header the upstream or the client receives: the engine refuses such rendered values;
/// - a reply the rules made has a status from 200 to 599;
/// - a path that started with `/` still does upstream;
/// - the document in dry-run mode changes nothing at all.
pub fn check_exchange(compiled: &Compiled, request: &Request, upstream: &Response) {
    let plain = simulate::run(&compiled.rules, request, upstream);
    assert!(plain.host_errors.is_empty(), "host calls out of place: {:?}", plain.host_errors);

    let unindexed = simulate::run(&compiled.plain, request, upstream);
    assert_eq!(plain, unindexed, "the indexes changed the outcome");

    let mut traced = simulate::run_traced(&compiled.rules, request, upstream);
    for event in &traced.trace {
        // How `rulefilter trace` says why a rule did not match.
        if let rulefilter::trace::Event::Rule { miss: Some(miss), .. } = event {
            let _ = miss.to_string();
        }
    }
    traced.trace.clear();
    assert_eq!(plain, traced, "tracing changed the outcome");

    if is_clean(request, upstream) {
        let sent = plain.upstream_request.iter().flatten().chain(&plain.response.headers);
        for (name, value) in sent {
            assert!(is_header_value(value), "header {name:?} got {value:?}: CR, LF or NUL reached a header");
        }
        if request.path.starts_with('/') {
            if let Some(path) = plain.upstream_request.as_ref().and_then(|h| first(h, ":path")) {
                assert!(path.starts_with('/'), "the upstream path {path:?} lost its leading /");
            }
        }
    }
    if plain.responded_locally {
        assert!((200..=599).contains(&plain.response.status), "a rule answered {}", plain.response.status);
    }

    if let Some(dry_run) = &compiled.dry_run {
        let mut dry = simulate::run(dry_run, request, upstream);
        assert!(dry.host_errors.is_empty(), "host calls out of place in dry run: {:?}", dry.host_errors);
        let mut untouched = simulate::run(&RuleSet::default(), request, upstream);
        // A dry run counts what its rules would have done, but never a response it did not send.
        assert!(!dry.counted.contains(&rulefilter::metrics::DIRECT_RESPONSES), "a dry run counted a direct response");
        dry.trace.clear();
        untouched.trace.clear();
        dry.counted.clear();
        untouched.counted.clear();
        assert_eq!(dry, untouched, "a dry run changed the exchange");
    }
}

fn first<'h>(headers: &'h Headers, name: &str) -> Option<&'h str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn is_header_value(text: &str) -> bool {
    !text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// Whether an exchange holds only what Envoy's codecs let through in header names and values.
fn is_clean(request: &Request, upstream: &Response) -> bool {
    let fields = [&request.method, &request.path, &request.authority, &request.scheme, &request.source];
    fields.into_iter().all(|f| is_header_value(f))
        && request.headers.iter().chain(&upstream.headers).all(|(n, v)| is_header_value(n) && is_header_value(v))
}
