//! Root and HTTP contexts. The root context owns the compiled rules; each HTTP context shares them (`Rc`)
//! and holds only its own request's state.

use std::rc::Rc;

use log::{error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};

use super::abi;
use crate::engine::{Flow, Host, RequestState};
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
}

impl Context for Root {}

impl RootContext for Root {
    /// Compiles the configuration; `false` makes Envoy refuse it (and keep the previous one, if any).
    fn on_configure(&mut self, _size: usize) -> bool {
        follow_proxy_log_level();
        let text = match abi::plugin_configuration() {
            Ok(Some(bytes)) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    error!("configuration rejected: it is not UTF-8 text");
                    return false;
                }
            },
            Ok(None) => String::new(),
            Err(status) => {
                error!("configuration rejected: the proxy did not hand it over (status {})", status.0);
                return false;
            }
        };
        if text.trim().is_empty() {
            info!("no rules configured; passing all traffic through");
            self.rules = Rc::new(RuleSet::default());
            return true;
        }
        match crate::compile::parse(&text) {
            Ok(rules) => {
                if rules.logs(log::Level::Info) {
                    info!(
                        "loaded {} request and {} response rules",
                        rules.rule_count(crate::Phase::Request),
                        rules.rule_count(crate::Phase::Response)
                    );
                }
                self.rules = Rc::new(rules);
                true
            }
            Err(errors) => {
                for problem in &errors.0 {
                    error!("invalid configuration: {problem}");
                }
                error!("configuration rejected ({} problems)", errors.0.len());
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let state = self.rules.new_request();
        Some(Box::new(Exchange { rules: Rc::clone(&self.rules), state }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
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
    state: RequestState,
}

impl Context for Exchange {}

impl HttpContext for Exchange {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let flow = self.rules.on_request_headers(&mut self.state, &mut Envoy);
        action(flow)
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let flow = self.rules.on_response_headers(&mut self.state, &mut Envoy);
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

/// The engine's view of Envoy, through host calls that report errors instead of panicking.
struct Envoy;

fn map_type(map: HeaderMap) -> MapType {
    match map {
        HeaderMap::Request => MapType::HttpRequestHeaders,
        HeaderMap::Response => MapType::HttpResponseHeaders,
    }
}

impl Host for Envoy {
    fn header(&mut self, map: HeaderMap, name: &str) -> Option<String> {
        // `get_header_map_value` returns only a header's first value. The `request.headers.<name>` property
        // joins every value with `,`, which is what Envoy's own header matchers compare; pseudo-headers have
        // one value, and the plain call is cheaper.
        let value = if name.starts_with(':') {
            abi::header(map_type(map), name)
        } else {
            abi::property(&[map.key(), "headers", name])
        };
        match value {
            // Header values may be any bytes; rules compare text, so odd bytes become U+FFFD.
            Ok(value) => value.map(|bytes| {
                String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
            }),
            Err(status) => {
                warn!("cannot read header {name:?} (status {}); treating it as absent", status.0);
                None
            }
        }
    }

    fn header_names(&mut self, map: HeaderMap) -> Vec<String> {
        abi::header_names(map_type(map)).unwrap_or_else(|status| {
            warn!("cannot list headers (status {})", status.0);
            Vec::new()
        })
    }

    fn source_address(&mut self) -> Option<String> {
        match abi::property(&["source", "address"]) {
            Ok(value) => value.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
            Err(status) => {
                warn!("cannot read source.address (status {}); treating it as absent", status.0);
                None
            }
        }
    }

    fn set_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        if let Err(status) = abi::set_header(map_type(map), name, value) {
            warn!("cannot set header {name:?} (status {})", status.0);
        }
    }

    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        if let Err(status) = abi::add_header(map_type(map), name, value) {
            warn!("cannot add header {name:?} (status {})", status.0);
        }
    }

    fn remove_header(&mut self, map: HeaderMap, name: &str) {
        if let Err(status) = abi::remove_header(map_type(map), name) {
            warn!("cannot remove header {name:?} (status {})", status.0);
        }
    }

    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str) -> bool {
        match abi::send_response(status, headers, body.as_bytes()) {
            Ok(()) => true,
            Err(host_status) => {
                warn!("cannot send the {status} response (status {})", host_status.0);
                false
            }
        }
    }
}
