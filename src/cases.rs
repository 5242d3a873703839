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
//!     expect: {status: 503, headers: {retry-after: "3600"}, upstream: false}
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
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub request: CaseRequest,
    /// The upstream's response, when the request reaches it.
    #[serde(default)]
    pub upstream: Option<CaseUpstream>,
    pub expect: Expect,
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
    /// Header name → value, or a list of values for a repeated header.
    #[serde(default)]
    pub headers: BTreeMap<String, OneOrMany<String>>,
    /// The address the client connects from: an IPv4 loopback address (`127.0.0.1` by default), so the e2e
    /// suite can connect from it. Remote clients are modelled with `x-forwarded-for`, as proxies in front
    /// report them.
    #[serde(default = "default_source")]
    pub source: String,
    /// The request body (sent with a `content-length`); none by default.
    #[serde(default)]
    pub body: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseUpstream {
    pub status: Option<Integer>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
}

/// What must be observed. Only what is listed is checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The status the client receives.
    pub status: Option<Integer>,
    /// Response headers (first value) the client receives.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
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
    /// Request headers (first value) the upstream receives.
    #[serde(default)]
    pub upstream_headers: BTreeMap<String, String>,
    /// Request headers the upstream must not receive.
    #[serde(default)]
    pub upstream_headers_absent: Vec<String>,
    /// The request body the upstream receives.
    pub upstream_body: Option<String>,
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
        let file: CaseFile = serde_yaml::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
        for case in &file.cases {
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
    /// The request the simulated proxy receives: over plain HTTP, from port 40000 of `source`.
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
            scheme: "http".into(),
            headers,
            source: simulate::client_address(&self.source),
            body: self.body.clone(),
        }
    }

    /// Headers in order, repeated headers as several entries, names lower-case.
    pub fn header_list(&self) -> Headers {
        self.headers
            .iter()
            .flat_map(|(name, values)| values.0.iter().map(move |v| (name.to_ascii_lowercase(), v.clone())))
            .collect()
    }
}

impl CaseUpstream {
    pub fn response(&self) -> Response {
        Response {
            status: self.status.and_then(|s| u16::try_from(s.0).ok()).unwrap_or(200),
            headers: self.headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.clone())).collect(),
            body: self.body.clone(),
        }
    }
}

/// Runs a case on the simulated proxy.
pub fn simulate(rules: &RuleSet, case: &Case) -> Observed {
    let outcome = simulate::run(rules, &case.request.to_request(), &case.upstream_response());
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

/// Adds a line for each header whose first value is not the wanted one, and for each present one that must
/// be absent.
fn compare_headers(
    what: &str,
    wanted: &BTreeMap<String, String>,
    absent: &[String],
    observed: &Headers,
    differences: &mut Vec<String>,
) {
    let first = |name: &str| observed.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    for (name, want) in wanted {
        let got = first(name);
        if got.as_deref() != Some(want.as_str()) {
            differences.push(format!("{what} {name}: expected {want:?}, got {got:?}"));
        }
    }
    for name in absent {
        if let Some(got) = first(name) {
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
