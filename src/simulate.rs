//! A simulated proxy for running rules without Envoy: native tests now, the command-line tool later.
//!
//! It behaves like Envoy where the engine could notice: header names are case-insensitive, a repeated header
//! reads as its values joined with `,`, the client address follows `x-forwarded-for` as Envoy's connection
//! manager does by default, and touching a header map outside its phase is recorded as a host error (Envoy
//! answers such calls with an error status).

use crate::body::limit;
use crate::engine::{Flow, Host, RequestState};
use crate::error::Phase;
use crate::metrics::CounterId;
use crate::ratelimit::{MemoryData, SharedData};
use crate::ruleset::{HeaderMap, RuleSet};
use crate::trace::Event;

mod jwt_authn;
mod proxy;

/// Headers in order, names lower-case, repeats allowed.
pub type Headers = Vec<(String, String)>;

/// A request as the client sends it; pseudo-headers are filled in from the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Path with query, e.g. `/search?q=x`.
    pub path: String,
    pub authority: String,
    pub scheme: String,
    pub headers: Headers,
    /// The downstream peer, `ip:port`.
    pub source: String,
    /// Attribute values the simulated connection has beyond plain HTTP, by name (`source.principal`,
    /// `connection.requested_server_name`, `connection.mtls`…); see [`SimulatedHost::property`].
    pub attributes: Vec<(String, String)>,
    /// The issuer a `jwt_authn` filter in front verifies tokens of (Istio's `RequestAuthentication`); see
    /// [`crate::simulate::jwt_authn`].
    pub jwt_issuer: Option<String>,
    /// The request body (empty: none).
    pub body: String,
}

impl Request {
    pub fn get(path: &str) -> Self {
        Request {
            method: "GET".into(),
            path: path.into(),
            authority: "example.com".into(),
            scheme: "http".into(),
            headers: Vec::new(),
            source: "127.0.0.1:50000".into(),
            attributes: Vec::new(),
            jwt_issuer: None,
            body: String::new(),
        }
    }

    /// Gives the simulated connection an attribute's value (`source.principal`, `connection.mtls` …).
    pub fn attribute(mut self, name: &str, value: &str) -> Self {
        self.attributes.push((name.into(), value.into()));
        self
    }

    /// Puts a `jwt_authn` filter verifying tokens of `issuer` in front of the rules.
    pub fn jwt_issuer(mut self, issuer: &str) -> Self {
        self.jwt_issuer = Some(issuer.into());
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = body.into();
        self
    }

    pub fn method(mut self, method: &str) -> Self {
        self.method = method.into();
        self
    }

    pub fn authority(mut self, authority: &str) -> Self {
        self.authority = authority.into();
        self
    }

    pub fn from(mut self, source: &str) -> Self {
        self.source = source.into();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }
}

/// The peer address (`ip:port`) of a client at `ip`, from port 40000; IPv6 in brackets. Text that is no IP
/// address is kept as it is.
pub fn client_address(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, 40000).to_string(),
        Err(_) => ip.to_owned(),
    }
}

/// A response: from the upstream, or made by a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    pub body: String,
}

impl Response {
    pub fn ok() -> Self {
        Response { status: 200, headers: Vec::new(), body: String::new() }
    }

    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        first(&self.headers, name)
    }
}

/// What happened to one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The request headers the upstream received (pseudo-headers included), or `None` if it was not called.
    pub upstream_request: Option<Headers>,
    /// The request body the upstream received (empty if it was not called).
    pub upstream_body: String,
    /// What the client received.
    pub response: Response,
    /// Whether a rule made the response (in either phase).
    pub responded_locally: bool,
    /// Host calls the proxy would have refused.
    pub host_errors: Vec<String>,
    /// What the rules did, step by step, for [`run_traced`]; empty for [`run`].
    pub trace: Vec<Event>,
    /// The counters the engine added one to, in order (see [`RuleSet::counters`]).
    pub counted: Vec<CounterId>,
}

/// What outlives one exchange in a proxy: its shared data (rate-limit buckets) and its clock. The clock only
/// moves when told ([`Proxy::set_clock_seconds`]), so runs are deterministic.
#[derive(Debug, Default, Clone)]
pub struct Proxy {
    pub shared: MemoryData,
    /// Seconds after [`CLOCK_START`], in nanoseconds.
    elapsed_ns: u64,
}

/// The simulated wall clock's start, nanoseconds since the Unix epoch (2026-01-01): far from 0, as Envoy's is.
pub const CLOCK_START: u64 = 1_767_225_600 * 1_000_000_000;

impl Proxy {
    /// Sets the clock to `seconds` after its start (it never goes back).
    pub fn set_clock_seconds(&mut self, seconds: f64) {
        // Whole nanoseconds; a negative or NaN time reads as the start.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let elapsed = (seconds.max(0.0) * 1e9) as u64;
        self.elapsed_ns = self.elapsed_ns.max(elapsed);
    }

    pub fn now_ns(&self) -> u64 {
        CLOCK_START.saturating_add(self.elapsed_ns)
    }
}

/// Runs one exchange through `rules`: request phase, then (unless a rule answered) the upstream's `upstream`
/// response through the response phase. On a proxy of its own: nothing is shared with other runs.
pub fn run(rules: &RuleSet, request: &Request, upstream: &Response) -> Outcome {
    run_in(&mut Proxy::default(), rules, request, upstream)
}

/// As [`run`], on `proxy`: rate limits count in its shared data, at its clock.
pub fn run_in(proxy: &mut Proxy, rules: &RuleSet, request: &Request, upstream: &Response) -> Outcome {
    exchange(proxy, rules, rules.new_request(), request, upstream)
}

/// As [`run`], recording in [`Outcome::trace`] each rule's verdict, why unmatched rules failed, and every change.
pub fn run_traced(rules: &RuleSet, request: &Request, upstream: &Response) -> Outcome {
    run_traced_in(&mut Proxy::default(), rules, request, upstream)
}

/// As [`run_traced`], on `proxy` (see [`run_in`]).
pub fn run_traced_in(proxy: &mut Proxy, rules: &RuleSet, request: &Request, upstream: &Response) -> Outcome {
    exchange(proxy, rules, rules.new_traced_request(), request, upstream)
}

fn exchange(
    proxy: &mut Proxy,
    rules: &RuleSet,
    mut state: RequestState,
    request: &Request,
    upstream: &Response,
) -> Outcome {
    let mut host = SimulatedHost::new(request, proxy);
    if let Some(issuer) = &request.jwt_issuer {
        match jwt_authn::verify(&mut host.request, issuer) {
            Ok(claims) => host.claims = claims.map(|claims| crate::claims::metadata_for(issuer, &claims)),
            Err(refusal) => {
                return Outcome {
                    upstream_request: None,
                    upstream_body: String::new(),
                    response: refusal,
                    responded_locally: false,
                    host_errors: Vec::new(),
                    trace: state.into_trace(),
                    counted: Vec::new(),
                }
            }
        }
    }
    let mut flow = rules.on_request_headers(&mut state, &mut host);
    if flow == Flow::Continue {
        flow = body_phase(rules, &mut state, &mut host, Phase::Request);
    }
    if flow == Flow::Responded {
        // Envoy passes the filter's own answer through the filter's response callback, as any response.
        let local = host.local.take().unwrap_or_else(Response::ok);
        host.phase = Some(HeaderMap::Response);
        host.response = vec![(":status".to_owned(), local.status.to_string())];
        host.response.extend(local.headers);
        rules.on_response_headers(&mut state, &mut host);
        host.phase = None;
        let headers = host.response.iter().filter(|(n, _)| !n.starts_with(':')).cloned().collect();
        let response = Response { status: local.status, headers, body: local.body };
        return Outcome {
            upstream_request: None,
            upstream_body: String::new(),
            response,
            responded_locally: true,
            host_errors: host.errors,
            trace: state.into_trace(),
            counted: host.counted,
        };
    }
    let upstream_request = host.request.clone();
    let upstream_body = String::from_utf8_lossy(&host.request_body).into_owned();
    host.phase = Some(HeaderMap::Response);
    let mut response_headers = vec![(":status".to_owned(), upstream.status.to_string())];
    response_headers.extend(upstream.headers.iter().cloned());
    host.response = response_headers;
    host.response_body = upstream.body.clone().into_bytes();
    let mut flow = rules.on_response_headers(&mut state, &mut host);
    if flow == Flow::Continue {
        flow = body_phase(rules, &mut state, &mut host, Phase::Response);
    }
    let response = match host.local.take() {
        Some(local) if flow == Flow::Responded => local,
        _ => {
            let status = first(&host.response, ":status").and_then(|s| s.parse().ok()).unwrap_or(upstream.status);
            let headers = host.response.iter().filter(|(n, _)| !n.starts_with(':')).cloned().collect();
            Response { status, headers, body: String::from_utf8_lossy(&host.response_body).into_owned() }
        }
    };
    Outcome {
        upstream_request: Some(upstream_request),
        upstream_body,
        response,
        responded_locally: flow == Flow::Responded,
        host_errors: host.errors,
        trace: state.into_trace(),
        counted: host.counted,
    }
}

/// The body phase as Envoy runs it: only when a rule waits for the body, which arrives whole (or, longer than
/// the rules hold, is passed on unread).
fn body_phase(rules: &RuleSet, state: &mut RequestState, host: &mut SimulatedHost, phase: Phase) -> Flow {
    let Some(hold) = state.body_hold(phase) else { return Flow::Continue };
    let length = match phase {
        Phase::Request => host.request_body.len(),
        Phase::Response => host.response_body.len(),
    };
    host.in_body = true;
    let fill = limit::fill(length, hold, true);
    let flow = match phase {
        Phase::Request => rules.on_request_body(state, host, fill),
        Phase::Response => rules.on_response_body(state, host, fill),
    };
    host.in_body = false;
    flow
}

/// The client address as Envoy's connection manager with its defaults (`use_remote_address: false`, no trusted
/// hops) decides it, before any filter runs: the rightmost `x-forwarded-for` entry when that is an IP address,
/// otherwise the connection's peer. A rule that edits `x-forwarded-for` later does not change it.
fn client_of(headers: &[(String, String)], peer: &str) -> String {
    let forwarded = headers.iter().filter(|(n, _)| n == "x-forwarded-for").map(|(_, v)| v.as_str());
    let rightmost = forwarded.flat_map(|v| v.split(',')).last().map(str::trim);
    match rightmost.and_then(|entry| entry.parse::<std::net::IpAddr>().ok()) {
        Some(ip) => std::net::SocketAddr::new(ip, 0).to_string(),
        None => peer.to_owned(),
    }
}

fn first<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

struct SimulatedHost<'p> {
    proxy: &'p mut Proxy,
    /// The phase whose maps are accessible; `None` once the exchange is over.
    phase: Option<HeaderMap>,
    request: Headers,
    response: Headers,
    local: Option<Response>,
    errors: Vec<String>,
    source: String,
    counted: Vec<CounterId>,
    /// The connection, route and node, as Envoy's attributes describe them.
    attributes: Vec<(String, Vec<u8>)>,
    /// The dynamic metadata `jwt_authn` left for a verified token.
    claims: Option<Vec<u8>>,
    request_body: Vec<u8>,
    response_body: Vec<u8>,
    /// Inside a body callback: only then does Envoy offer the body.
    in_body: bool,
}

impl<'p> SimulatedHost<'p> {
    fn new(request: &Request, proxy: &'p mut Proxy) -> Self {
        let mut headers = vec![
            (":method".to_owned(), request.method.clone()),
            (":path".to_owned(), request.path.clone()),
            (":authority".to_owned(), request.authority.clone()),
            (":scheme".to_owned(), request.scheme.clone()),
        ];
        headers.extend(request.headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.clone())));
        let source = client_of(&headers, &request.source);
        let attributes = proxy::attributes(request, &headers, &source);
        SimulatedHost {
            proxy,
            phase: Some(HeaderMap::Request),
            request: headers,
            response: Vec::new(),
            local: None,
            counted: Vec::new(),
            errors: Vec::new(),
            attributes,
            claims: None,
            source,
            request_body: request.body.clone().into_bytes(),
            response_body: Vec::new(),
            in_body: false,
        }
    }

    /// The map, if the proxy would offer it now. The response map can be edited from the request phase only
    /// through deferred edits, which the engine applies in the response phase.
    fn map(&mut self, map: HeaderMap, call: &str) -> Option<&mut Headers> {
        if self.phase != Some(map) {
            self.errors.push(format!("{call} on the {map:?} headers during the {:?} phase", self.phase));
            return None;
        }
        Some(match map {
            HeaderMap::Request => &mut self.request,
            HeaderMap::Response => &mut self.response,
        })
    }
}

impl Host for SimulatedHost<'_> {
    fn header(&mut self, map: HeaderMap, name: &str) -> Option<String> {
        let headers = self.map(map, "header")?;
        let mut values = headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        let first = values.next()?;
        Some(values.fold(first.to_owned(), |joined, value| joined + "," + value))
    }

    fn header_values(&mut self, map: HeaderMap, name: &str) -> Vec<String> {
        let Some(headers) = self.map(map, "header_values") else { return Vec::new() };
        headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).collect()
    }

    fn header_names(&mut self, map: HeaderMap) -> Vec<String> {
        self.map(map, "header_names").map(|h| h.iter().map(|(n, _)| n.clone()).collect()).unwrap_or_default()
    }

    fn source_address(&mut self) -> Option<String> {
        Some(self.source.clone())
    }

    fn set_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        if let Some(headers) = self.map(map, "set_header") {
            match headers.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some(at) => {
                    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                    headers.insert(at.min(headers.len()), (name.to_owned(), value.to_owned()));
                }
                None => headers.push((name.to_owned(), value.to_owned())),
            }
        }
    }

    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        if let Some(headers) = self.map(map, "add_header") {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }

    fn remove_header(&mut self, map: HeaderMap, name: &str) {
        if let Some(headers) = self.map(map, "remove_header") {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }
    }

    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str) -> bool {
        if self.phase.is_none() || self.local.is_some() {
            self.errors.push("send_response after the exchange was answered".to_owned());
            return false;
        }
        let headers = headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        self.local = Some(Response { status, headers, body: body.to_owned() });
        true
    }

    fn count(&mut self, counter: CounterId) {
        self.counted.push(counter);
    }

    fn shared_data(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        self.proxy.shared.get(key)
    }

    fn set_shared_data(&mut self, key: &str, value: &[u8], cas: u32) -> Result<bool, String> {
        self.proxy.shared.set(key, value, cas)
    }

    fn now_nanos(&mut self) -> Option<u64> {
        Some(self.proxy.now_ns())
    }

    /// What the simulated Envoy knows: see [`proxy::attributes`]; `metadata` holds a verified token's claims.
    /// Response values are only there in the response phase, as in Envoy.
    fn property(&mut self, path: &str) -> Option<Vec<u8>> {
        let dotted = path.replace('\0', ".");
        if dotted == "metadata" {
            return self.claims.clone();
        }
        if dotted == "response.code_details" {
            return (self.phase == Some(HeaderMap::Response)).then(|| b"via_upstream".to_vec());
        }
        self.attributes.iter().find(|(name, _)| *name == dotted).map(|(_, value)| value.clone())
    }

    fn body(&mut self, message: HeaderMap) -> Vec<u8> {
        if !self.in_body || self.phase != Some(message) {
            self.errors.push(format!("body of the {message:?} outside its body callback"));
            return Vec::new();
        }
        match message {
            HeaderMap::Request => self.request_body.clone(),
            HeaderMap::Response => self.response_body.clone(),
        }
    }

    fn set_body(&mut self, message: HeaderMap, body: &[u8]) -> bool {
        if !self.in_body || self.phase != Some(message) {
            self.errors.push(format!("set_body of the {message:?} outside its body callback"));
            return false;
        }
        match message {
            HeaderMap::Request => self.request_body = body.to_vec(),
            HeaderMap::Response => self.response_body = body.to_vec(),
        }
        true
    }
}
