//! Root and HTTP contexts. The root context owns the compiled rules; each HTTP context shares them (`Rc`)
//! and holds only its own request's state.

use std::rc::Rc;

use log::{error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use super::abi;
use super::counters::{self, Counters};
use crate::body::{self, Fill};
use crate::engine::{Flow, RequestState};
use crate::error::Phase;
use crate::metrics::{self, CounterId};
use crate::proxy_host::{HostCalls, HostStatus, ProxyHost};
use crate::ruleset::{HeaderMap, RuleSet};

#[allow(unsafe_code)] // the SDK's entry-point macro runs the Wasm constructors
mod entry {
    use super::*;

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
    }}
}

/// One per plugin configuration per worker.
#[derive(Default)]
struct Root {
    rules: Rc<RuleSet>,
    counters: Rc<Counters>,
}

impl Context for Root {
    /// The plugin is going away: hand over what was counted since the last tick.
    fn on_done(&mut self) -> bool {
        self.counters.flush();
        true
    }
}

impl RootContext for Root {
    /// Compiles the configuration; `false` makes Envoy refuse it (and keep the previous one, if any).
    fn on_configure(&mut self, _size: usize) -> bool {
        follow_proxy_log_level();
        let bytes = match abi::plugin_configuration() {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                error!("configuration rejected: the proxy did not hand it over (status {})", status.0);
                return false;
            }
        };
        let plugin = plugin_label();
        let started = hostcalls::get_current_time().ok();
        match crate::document::load_bytes(&bytes, &crate::compile::ProcessEnvironment) {
            Ok(rules) if rules.is_empty() => {
                info!("no rules configured; passing all traffic through");
                self.install(rules, &plugin);
                true
            }
            Ok(rules) => {
                log_compile_time(&rules, started);
                if rules.logs(log::Level::Info) {
                    info!(
                        "loaded {} request and {} response rules",
                        rules.rule_count(crate::Phase::Request),
                        rules.rule_count(crate::Phase::Response)
                    );
                }
                self.install(rules, &plugin);
                true
            }
            Err(errors) => {
                for problem in &errors.0 {
                    error!("invalid configuration: {problem}");
                }
                error!("configuration rejected ({} problems)", errors.0.len());
                counters::count_config_error(&plugin);
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let state = self.rules.new_request();
        Some(Box::new(Exchange { rules: Rc::clone(&self.rules), counters: Rc::clone(&self.counters), state }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn on_tick(&mut self) {
        self.counters.flush();
    }
}

impl Root {
    /// Serves `rules` from now on, with their counters; what the previous rules counted is flushed first.
    fn install(&mut self, mut rules: RuleSet, plugin: &str) {
        self.counters.flush();
        rules.set_shared_data_namespace(&shared_data_namespace(plugin));
        self.counters = Rc::new(Counters::define(plugin, &rules));
        self.rules = Rc::new(rules);
        if let Err(status) = abi::set_tick_period(counters::FLUSH_PERIOD_MS) {
            warn!("cannot start the metrics timer (status {}); counts reach Envoy only on reload", status.0);
        }
    }
}

/// The `plugin` label of this plugin's metrics: Envoy's filter config name, shortened as Istio names it.
fn plugin_label() -> String {
    match abi::property("plugin_name") {
        Ok(Some(name)) => metrics::plugin_label(&String::from_utf8_lossy(&name)),
        Ok(None) | Err(_) => metrics::plugin_label(""),
    }
}

/// `rulefilter/<plugin>/`: rate-limit buckets of this plugin, apart from other plugins' shared data (Istio
/// sets no `vm_id`, so every WasmPlugin on a proxy shares one namespace).
fn shared_data_namespace(plugin: &str) -> String {
    format!("rulefilter/{plugin}/")
}

/// One debug line with the time the document took to compile (parse, validation, regexes, indexes) and its
/// rule count: `on_configure` runs in every worker, so this is paid per VM (issue 14: at most 50 ms for 1,000
/// rules). Envoy's clock is wall time in nanoseconds; a clock that steps back gives no number.
fn log_compile_time(rules: &RuleSet, started: Option<std::time::SystemTime>) {
    if !rules.logs(log::Level::Debug) || !log::log_enabled!(log::Level::Debug) {
        return;
    }
    let now = hostcalls::get_current_time().ok();
    let took = started.zip(now).and_then(|(started, now)| now.duration_since(started).ok());
    let rule_count = rules.rule_count(crate::Phase::Request) + rules.rule_count(crate::Phase::Response);
    let indexed = rules.indexed_rules(crate::Phase::Request) + rules.indexed_rules(crate::Phase::Response);
    match took {
        Some(took) => {
            log::debug!("compiled {rule_count} rules in {:.3} ms ({indexed} indexed)", took.as_secs_f64() * 1000.0)
        }
        None => log::debug!("compiled {rule_count} rules ({indexed} indexed); the clock gave no time"),
    }
}

/// Formats log lines only at the level Envoy would print them (its `wasm` logger's level when the
/// configuration arrives), so debug lines cost nothing on a proxy logging at info.
fn follow_proxy_log_level() {
    let filter = match abi::log_level() {
        Ok(0) => log::LevelFilter::Trace,
        Ok(1) => log::LevelFilter::Debug,
        Ok(2) | Err(_) => log::LevelFilter::Info,
        Ok(3) => log::LevelFilter::Warn,
        Ok(4) => log::LevelFilter::Error,
        Ok(_) => log::LevelFilter::Off,
    };
    log::set_max_level(filter);
}

/// One per HTTP request.
struct Exchange {
    rules: Rc<RuleSet>,
    counters: Rc<Counters>,
    state: RequestState,
}

impl Context for Exchange {}

impl HttpContext for Exchange {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let flow = self.rules.on_request_headers(&mut self.state, &mut Envoy::new(&self.counters));
        self.after_headers(Phase::Request, flow, end_of_stream)
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let flow = self.rules.on_response_headers(&mut self.state, &mut Envoy::new(&self.counters));
        self.after_headers(Phase::Response, flow, end_of_stream)
    }

    /// Returns at once unless a body rule waits for this body (a document without body rules never holds).
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.on_body(Phase::Request, body_size, end_of_stream)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.on_body(Phase::Response, body_size, end_of_stream)
    }

    /// Trailers end a body without `end_of_stream` on it: the rules waiting for it let it go unread.
    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        self.body_ended_by_trailers(Phase::Request)
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        self.body_ended_by_trailers(Phase::Response)
    }

    /// An exchange that outlived its plugin's configuration flushes its counts itself: nobody else will.
    fn on_log(&mut self) {
        if Rc::strong_count(&self.counters) == 1 {
            self.counters.flush();
        }
    }
}

impl Exchange {
    /// After a headers phase: the headers always go on (pausing them would hold the body back too: Envoy's
    /// proxy-wasm host turns a headers `Pause` into StopAllIteration, and no body callback comes until the
    /// stream is resumed). A body some rule waits for is then held piece by piece in the body callbacks; a
    /// message that ends with its headers is decided now, on an empty body.
    fn after_headers(&mut self, phase: Phase, flow: Flow, end_of_stream: bool) -> Action {
        if flow == Flow::Continue && end_of_stream && self.state.body_hold(phase).is_some() {
            return self.decide_body(phase, Fill::Complete, None);
        }
        action(flow)
    }

    fn on_body(&mut self, phase: Phase, body_size: usize, end_of_stream: bool) -> Action {
        let Some(hold) = self.state.body_hold(phase) else { return Action::Continue };
        match body::limit::fill(body_size, hold, end_of_stream) {
            // Envoy keeps the pieces (StopIterationAndBuffer) until the body is whole or too long.
            Fill::Waiting => Action::Pause,
            fill => self.decide_body(phase, fill, Some(body_size)),
        }
    }

    fn body_ended_by_trailers(&mut self, phase: Phase) -> Action {
        if self.state.body_hold(phase).is_some() {
            return self.decide_body(phase, Fill::Over, None);
        }
        Action::Continue
    }

    /// Runs the waiting rules; `body_size` is what Envoy holds when called from a body callback.
    fn decide_body(&mut self, phase: Phase, fill: Fill, body_size: Option<usize>) -> Action {
        let mut envoy = ProxyHost::in_body(Envoy { counters: &self.counters }, body_size);
        let flow = match phase {
            Phase::Request => self.rules.on_request_body(&mut self.state, &mut envoy, fill),
            Phase::Response => self.rules.on_response_body(&mut self.state, &mut envoy, fill),
        };
        action(flow)
    }
}

/// A local reply takes effect after the callback returns; pausing keeps the request from going on meanwhile.
fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Responded => Action::Pause,
    }
}

/// The proxy-wasm calls the engine makes, through the ABI wrappers; counters are kept in the VM.
struct Envoy<'c> {
    counters: &'c Counters,
}

impl<'c> Envoy<'c> {
    fn new(counters: &'c Counters) -> ProxyHost<Envoy<'c>> {
        ProxyHost::new(Envoy { counters })
    }
}

fn map_type(map: HeaderMap) -> MapType {
    match map {
        HeaderMap::Request => MapType::HttpRequestHeaders,
        HeaderMap::Response => MapType::HttpResponseHeaders,
    }
}

fn body_buffer(message: HeaderMap) -> BufferType {
    match message {
        HeaderMap::Request => BufferType::HttpRequestBody,
        HeaderMap::Response => BufferType::HttpResponseBody,
    }
}

impl HostCalls for Envoy<'_> {
    fn header_pairs(&mut self, map: HeaderMap) -> Result<Vec<u8>, HostStatus> {
        abi::header_pairs(map_type(map))
    }

    fn set_header(&mut self, map: HeaderMap, name: &str, value: &str) -> Result<(), HostStatus> {
        abi::set_header(map_type(map), name, value)
    }

    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str) -> Result<(), HostStatus> {
        abi::add_header(map_type(map), name, value)
    }

    fn remove_header(&mut self, map: HeaderMap, name: &str) -> Result<(), HostStatus> {
        abi::remove_header(map_type(map), name)
    }

    fn property(&mut self, path: &str) -> Result<Option<Vec<u8>>, HostStatus> {
        abi::property(path)
    }

    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostStatus> {
        abi::send_response(status, headers, body)
    }

    fn shared_data(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostStatus> {
        abi::shared_data(key)
    }

    fn set_shared_data(&mut self, key: &str, value: &[u8], cas: u32) -> Result<bool, HostStatus> {
        abi::set_shared_data(key, value, cas)
    }

    fn now_nanos(&mut self) -> Result<u64, HostStatus> {
        abi::current_time_nanos()
    }

    fn body(&mut self, message: HeaderMap, size: usize) -> Result<Option<Vec<u8>>, HostStatus> {
        abi::buffer(body_buffer(message), size)
    }

    fn set_body(&mut self, message: HeaderMap, replaced: usize, body: &[u8]) -> Result<(), HostStatus> {
        abi::set_buffer(body_buffer(message), replaced, body)
    }

    fn count(&mut self, counter: CounterId) {
        self.counters.add(counter);
    }
}
