//! Rule test cases: a request (and optionally the upstream's answer) with the outcome a rules document must
//! produce. The same cases run offline on the simulated proxy and, in the e2e suite, through a real Envoy;
//! both are judged by [`check`], so the offline engine and the module cannot disagree unnoticed.
//!
//! ```yaml
//! rules: maintenance.yaml        # the document, relative to this file
//! env: {REGION: eu}              # the plugin's vmConfig.env, if the rules use ${env.*}
//! cases:
//!   - name: visitors get the maintenance page
//!     request: {method: GET, path: /shop, host: shop.example.com, headers: {x-forwarded-for: 192.0.2.1}}
//!     upstream: {status: 200, headers: {content-type: text/html}}   # optional; default 200, no headers
//!     expect: {status: 503, headers: {retry-after: "3600", vary: [origin, accept]}, upstream: false}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{Integer, OneOrMany};
use crate::simulate::{self, Headers, Request, Response};
use crate::RuleSet;

/// A file of test cases for one rules document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The rules document, relative to the case file.
    pub rules: PathBuf,
    /// Environment variables for `${env.*}`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A `jwt_authn` filter in front of the rules, as Istio's `RequestAuthentication` puts it there.
    pub jwt_authn: Option<JwtAuthnSpec>,
    pub cases: Vec<Case>,
}

/// The `jwt_authn` filter of a case file: tokens of `issuer` are verified against the JWKS in `jwks`
/// (relative to the case file), and their claims reach the rules. The simulated proxy checks the issuer and
/// expiry but not the signature; the e2e replay runs Envoy's real filter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtAuthnSpec {
    pub issuer: String,
    pub jwks: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub request: CaseRequest,
    /// The upstream's response, when the request reaches it.
    #[serde(default)]
    pub upstream: Option<CaseUpstream>,
    /// Send the request this many times (default 1); `expect` judges the last answer. For rate limits.
    pub repeat: Option<Integer>,
    /// When the case runs, in seconds after the file's first case (default: right after the previous case).
    /// The simulated proxy's clock is set to it; through Envoy the replay waits until then. Cases run in file
    /// order, so `at` never goes back. Rate limits count in a proxy's shared data, which lives as long as the
    /// proxy: the cases of one file share it, as they share one Envoy.
    pub at: Option<f64>,
    pub expect: Expect,
}

/// The most a case may repeat its request, and the latest `at`: the e2e suite sends and waits for real.
pub const MAX_REPEAT: u64 = 1000;
pub const MAX_AT_SECONDS: f64 = 30.0;

impl Case {
    /// How many times the request is sent.
    pub fn repeat(&self) -> u64 {
        self.repeat.map_or(1, |r| r.0)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRequest {
    #[serde(default = "default_method")]
    pub method: String,
    /// Path with query.
    pub path: String,
    #[serde(default = "default_host")]
    pub host: String,
    /// `http` (default) or `https`: the scheme of the listener the request arrives on. The Envoy replay sends an
    /// `https` case over TLS to a second listener that terminates it, as a gateway's HTTPS listener does.
    #[serde(default)]
    pub scheme: Scheme,
    /// Header name → value, or a list of values for a repeated header.
    #[serde(default)]
    pub headers: BTreeMap<String, OneOrMany<String>>,
    /// The address the client connects from: an IPv4 loopback address (`127.0.0.1` by default), so the e2e
    /// suite can connect from it. Remote clients are modelled with `x-forwarded-for`, as proxies in front
    /// report them.
    #[serde(default = "default_source")]
    pub source: String,
    /// The issuer of the file's `jwt_authn`, copied here when the file is read.
    #[serde(skip)]
    pub jwt_issuer: Option<String>,
    /// The request body (sent with a `content-length`); none by default.
    #[serde(default)]
    pub body: String,
}

/// The scheme a case's request arrives with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseUpstream {
    pub status: Option<Integer>,
    /// Header name → value, or a list of values for a repeated header (`set-cookie`).
    #[serde(default)]
    pub headers: BTreeMap<String, OneOrMany<String>>,
    #[serde(default)]
    pub body: String,
}

/// What must be observed. Only what is listed is checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The status the client receives.
    pub status: Option<Integer>,
    /// Response headers the client receives: a value, or the values of a repeated header in order.
    #[serde(default)]
    pub headers: BTreeMap<String, Expected>,
    /// Response headers the client must not receive.
    #[serde(default)]
    pub headers_absent: Vec<String>,
    pub body: Option<String>,
    pub body_contains: Option<String>,
    /// Whether the upstream is called.
    pub upstream: Option<bool>,
    /// The path (with query) the upstream receives.
    pub upstream_path: Option<String>,
    /// The host the upstream receives.
    pub upstream_host: Option<String>,
    /// Request headers the upstream receives: a value, or the values of a repeated header in order.
    #[serde(default)]
    pub upstream_headers: BTreeMap<String, Expected>,
    /// Request headers the upstream must not receive.
    #[serde(default)]
    pub upstream_headers_absent: Vec<String>,
    /// The request body the upstream receives.
    pub upstream_body: Option<String>,
}

/// The value a header must have: one value, or a list for a repeated header. Compared as HTTP combines a
/// repeated field (RFC 9110, 5.3): every value, in order, joined with `,`. So `[accept, origin]` holds whether
/// the proxy sends two `vary` lines or one `accept,origin` (Envoy joins repeated headers it keeps inline, such
/// as `vary`, and keeps others, such as `set-cookie`, apart), and a single value fails when more were sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Expected {
    One(String),
    Each(Vec<String>),
}

impl Expected {
    /// The field value the header must combine to.
    fn combined(&self) -> String {
        match self {
            Expected::One(value) => value.clone(),
            Expected::Each(values) => values.join(","),
        }
    }
}

fn default_method() -> String {
    "GET".into()
}
fn default_host() -> String {
    "example.com".into()
}
fn default_source() -> String {
    "127.0.0.1".into()
}

/// What a run produced, however it was run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub status: u16,
    pub headers: Headers,
    pub body: String,
    pub upstream: Option<UpstreamRequest>,
}

/// A request as the upstream received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    pub method: String,
    pub path: String,
    pub host: String,
    /// Without pseudo-headers and without `host`.
    pub headers: Headers,
    pub body: String,
}

impl CaseFile {
    pub fn load(path: &Path) -> Result<CaseFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        CaseFile::parse(&text, path)
    }

    /// Reads the text of a case file; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<CaseFile, String> {
        let mut file: CaseFile = serde_yaml::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(jwt_authn) = &file.jwt_authn {
            for case in &mut file.cases {
                case.request.jwt_issuer = Some(jwt_authn.issuer.clone());
            }
        }
        let mut previous_at = 0.0;
        for case in &file.cases {
            if let Some(at) = case.at {
                if !(previous_at..=MAX_AT_SECONDS).contains(&at) {
                    return Err(format!(
                        "{}: case {:?}: at: {at} must be from {previous_at} (the previous case's) to {MAX_AT_SECONDS} seconds: cases run in order, and the e2e replay waits for real",
                        path.display(),
                        case.name
                    ));
                }
                previous_at = at;
            }
            if !(1..=MAX_REPEAT).contains(&case.repeat()) {
                return Err(format!(
                    "{}: case {:?}: repeat: {} must be 1 to {MAX_REPEAT}",
                    path.display(),
                    case.name,
                    case.repeat()
                ));
            }
            let loopback = case.request.source.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(format!(
                    "{}: case {:?}: request.source {:?} is not an IPv4 loopback address (127.x.x.x); model a remote client with x-forwarded-for",
                    path.display(),
                    case.name,
                    case.request.source
                ));
            }
        }
        Ok(file)
    }

    /// The rules document's path.
    pub fn rules_path(&self, case_file: &Path) -> PathBuf {
        case_file.parent().unwrap_or_else(|| Path::new(".")).join(&self.rules)
    }

    /// The issuer and the JWKS text of the file's `jwt_authn`, if it has one.
    pub fn jwt_authn(&self, case_file: &Path) -> Result<Option<(String, String)>, String> {
        let Some(spec) = &self.jwt_authn else { return Ok(None) };
        let path = case_file.parent().unwrap_or_else(|| Path::new(".")).join(&spec.jwks);
        let jwks = std::fs::read_to_string(&path).map_err(|e| format!("jwt_authn.jwks {}: {e}", path.display()))?;
        Ok(Some((spec.issuer.clone(), jwks)))
    }
}

impl Case {
    /// What the upstream answers: the case's `upstream`, or 200 with no headers and no body.
    pub fn upstream_response(&self) -> Response {
        self.upstream.as_ref().map_or_else(Response::ok, CaseUpstream::response)
    }
}

/// Where a rules document's test cases are: `<name>.test.yaml` beside it.
pub fn case_file_beside(rules: &Path) -> PathBuf {
    let stem = rules.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    rules.with_file_name(format!("{stem}.test.yaml"))
}

impl CaseRequest {
    /// The request the simulated proxy receives, from port 40000 of `source`.
    pub fn to_request(&self) -> Request {
        let mut headers = self.header_list();
        // As the e2e client sends a body: with its length.
        if !self.body.is_empty() && !headers.iter().any(|(n, _)| n == "content-length") {
            headers.push(("content-length".into(), self.body.len().to_string()));
        }
        Request {
            method: self.method.clone(),
            path: self.path.clone(),
            authority: self.host.clone(),
            scheme: self.scheme.as_str().into(),
            headers,
            source: simulate::client_address(&self.source),
            attributes: Vec::new(),
            jwt_issuer: self.jwt_issuer.clone(),
            body: self.body.clone(),
        }
    }

    /// Headers in order, repeated headers as several entries, names lower-case.
    pub fn header_list(&self) -> Headers {
        flatten(&self.headers)
    }
}

impl CaseUpstream {
    pub fn response(&self) -> Response {
        Response {
            status: self.status.and_then(|s| u16::try_from(s.0).ok()).unwrap_or(200),
            headers: flatten(&self.headers),
            body: self.body.clone(),
        }
    }
}

/// Headers in order, repeated headers as several entries, names lower-case.
fn flatten(headers: &BTreeMap<String, OneOrMany<String>>) -> Headers {
    headers
        .iter()
        .flat_map(|(name, values)| values.0.iter().map(move |v| (name.to_ascii_lowercase(), v.clone())))
        .collect()
}

/// Runs a case on a simulated proxy of its own.
pub fn simulate(rules: &RuleSet, case: &Case) -> Observed {
    Session::default().simulate(rules, case)
}

/// The cases of one file on one simulated proxy: its shared data (rate-limit buckets) and its clock carry from
/// case to case, as they do in the one Envoy the e2e suite replays the file through.
#[derive(Debug, Default)]
pub struct Session {
    proxy: simulate::Proxy,
}

impl Session {
    /// Runs a case (its request `repeat` times, at its `at`); the last exchange is what it observed.
    pub fn simulate(&mut self, rules: &RuleSet, case: &Case) -> Observed {
        let proxy = self.prepare(rules, case);
        observed(simulate::run_in(proxy, rules, &case.request.to_request(), &case.upstream_response()))
    }

    /// Brings the proxy to where `case`'s last request runs: the clock at its `at`, its earlier repeats sent.
    /// `rulefilter trace --case` traces that last request after running the file's earlier cases.
    pub fn prepare(&mut self, rules: &RuleSet, case: &Case) -> &mut simulate::Proxy {
        if let Some(at) = case.at {
            self.proxy.set_clock_seconds(at);
        }
        let (request, upstream) = (case.request.to_request(), case.upstream_response());
        for _ in 1..case.repeat() {
            simulate::run_in(&mut self.proxy, rules, &request, &upstream);
        }
        &mut self.proxy
    }
}

fn observed(outcome: simulate::Outcome) -> Observed {
    let upstream = outcome.upstream_request.map(|headers| {
        let pseudo = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
        UpstreamRequest {
            method: pseudo(":method"),
            path: pseudo(":path"),
            host: pseudo(":authority"),
            headers: headers.iter().filter(|(n, _)| !n.starts_with(':') && n != "host").cloned().collect(),
            body: outcome.upstream_body.clone(),
        }
    });
    Observed {
        status: outcome.response.status,
        headers: outcome.response.headers,
        body: outcome.response.body,
        upstream,
    }
}

/// Every way `observed` differs from `expect`, one line each; empty when the case passes.
pub fn check(expect: &Expect, observed: &Observed) -> Vec<String> {
    let mut differences = Vec::new();
    if let Some(status) = expect.status {
        if u64::from(observed.status) != status.0 {
            differences.push(format!("status: expected {}, got {}", status.0, observed.status));
        }
    }
    compare_headers("response header", &expect.headers, &expect.headers_absent, &observed.headers, &mut differences);
    if let Some(body) = &expect.body {
        if observed.body != *body {
            differences.push(format!("body: expected {body:?}, got {:?}", observed.body));
        }
    }
    if let Some(part) = &expect.body_contains {
        if !observed.body.contains(part.as_str()) {
            differences.push(format!("body: expected it to contain {part:?}, got {:?}", observed.body));
        }
    }
    if let Some(called) = expect.upstream {
        if observed.upstream.is_some() != called {
            let what = if called { "called" } else { "not called" };
            differences.push(format!("upstream: expected it to be {what}"));
        }
    }
    let upstream_expected = expect.upstream_path.is_some()
        || expect.upstream_host.is_some()
        || !expect.upstream_headers.is_empty()
        || !expect.upstream_headers_absent.is_empty()
        || expect.upstream_body.is_some();
    match &observed.upstream {
        None if upstream_expected => differences.push("upstream: expected a request upstream, there was none".into()),
        None => {}
        Some(upstream) => {
            if let Some(path) = &expect.upstream_path {
                if upstream.path != *path {
                    differences.push(format!("upstream path: expected {path:?}, got {:?}", upstream.path));
                }
            }
            if let Some(host) = &expect.upstream_host {
                if upstream.host != *host {
                    differences.push(format!("upstream host: expected {host:?}, got {:?}", upstream.host));
                }
            }
            if let Some(body) = &expect.upstream_body {
                if upstream.body != *body {
                    differences.push(format!("upstream body: expected {body:?}, got {:?}", upstream.body));
                }
            }
            let (wanted, absent) = (&expect.upstream_headers, &expect.upstream_headers_absent);
            compare_headers("upstream header", wanted, absent, &upstream.headers, &mut differences);
        }
    }
    differences
}

/// Adds a line for each header whose values are not the wanted ones, and for each present one that must be
/// absent.
fn compare_headers(
    what: &str,
    wanted: &BTreeMap<String, Expected>,
    absent: &[String],
    observed: &Headers,
    differences: &mut Vec<String>,
) {
    let values = |name: &str| -> Vec<&str> {
        observed.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    };
    for (name, want) in wanted {
        let got = values(name);
        if got.is_empty() || got.join(",") != want.combined() {
            let expected = match want {
                Expected::One(value) => format!("{value:?}"),
                Expected::Each(values) => format!("{values:?}"),
            };
            let got = match got.as_slice() {
                [] => "nothing".to_owned(),
                [one] => format!("{one:?}"),
                several => format!("{several:?} (a repeated header: expect it as a list)"),
            };
            differences.push(format!("{what} {name}: expected {expected}, got {got}"));
        }
    }
    for name in absent {
        let got = values(name);
        if !got.is_empty() {
            differences.push(format!("{what} {name}: expected absent, got {got:?}"));
        }
    }
}

/// The case files under a folder (`*.test.yaml`), sorted.
pub fn case_files(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".test.yaml")))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn differences(wanted: &[(&str, Expected)], observed: &[(&str, &str)]) -> Vec<String> {
        let wanted = wanted.iter().map(|(n, e)| ((*n).to_owned(), e.clone())).collect();
        let observed = observed.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        let mut out = Vec::new();
        compare_headers("header", &wanted, &[], &observed, &mut out);
        out
    }

    #[test]
    fn a_repeated_header_is_compared_by_all_its_values() {
        let both = Expected::Each(vec!["a".into(), "b".into()]);
        // Two lines or one joined line: the same field value.
        assert!(differences(&[("x", both.clone())], &[("x", "a"), ("x", "b")]).is_empty());
        assert!(differences(&[("x", both.clone())], &[("x", "a,b")]).is_empty());
        assert_eq!(
            differences(&[("x", Expected::One("a".into()))], &[("x", "a"), ("X", "b")]),
            [r#"header x: expected "a", got ["a", "b"] (a repeated header: expect it as a list)"#]
        );
        assert_eq!(differences(&[("x", both)], &[("x", "b"), ("x", "a")]).len(), 1, "order counts");
        assert_eq!(differences(&[("x", Expected::One(String::new()))], &[]), [r#"header x: expected "", got nothing"#]);
        assert!(differences(&[("x", Expected::One(String::new()))], &[("x", "")]).is_empty());
    }
}
