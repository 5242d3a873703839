//! `rulefilter trace`: runs one request through a rules document on the simulated proxy and tells, rule by
//! rule, whether it matched, which condition failed if not, and what each matched rule changed.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lexopt::ValueExt;
use serde::Deserialize;

use rulefilter::cases::{CaseFile, CaseRequest, CaseUpstream, Session};
use rulefilter::credentials::{self, SecretPlace};
use rulefilter::simulate::{self, Outcome, Request, Response};
use rulefilter::trace::{Edit, Event, SkipReason};
use rulefilter::{Phase, RuleSet};

use crate::args::{env_pair, header};
use crate::report::compile_first;

const HELP: &str = "\
rulefilter trace: show which rules a request matches, why the others do not, and what changes

Usage: rulefilter trace [OPTIONS] <RULES>
       rulefilter trace --case <NAME> <CASES>

RULES is a rules document or a WasmPlugin manifest. The request is built from the options below, or read
with --request from a YAML file holding `request:` and optionally `upstream:`, written as in a test case.
With a test-case file (CASES) and --case, the case's request runs through the document the file names, after
the file's earlier cases (and the case's own earlier repeats), so rate limits stand where the case finds them.
For each phase, every rule is listed: matched (with the changes it made), not matched (with the first
condition that failed, its value and what it wanted), or not evaluated (an earlier rule answered or
stopped). Then what the upstream and the client receive.

Request options:
  -X, --method METHOD           The method (default GET)
      --path PATH               The path with its query (default /)
      --host HOST               The host, :authority (default example.com)
      --scheme SCHEME           http (default) or https
  -H, --header 'NAME: VALUE'    A request header; repeat it for more, or for a repeated header
      --source IP               The client's address (default 127.0.0.1). As in Envoy's default setup, the
                                rightmost x-forwarded-for address, when there is one, takes its place
      --attribute NAME=VALUE    What Envoy would say about the connection (docs/attributes.md), e.g.
                                source.principal=spiffe://td/ns/prod/sa/web, connection.mtls=true,
                                connection.requested_server_name=a.example.com; repeatable
  -d, --body TEXT               The request body (sent with its content-length), for body rules
Upstream options (how the upstream answers, for the response phase):
      --status CODE             Its status (default 200)
      --response-header 'NAME: VALUE'
                                A header it answers with; repeatable
      --response-body TEXT      The body it answers with
Other options:
      --request FILE            Read the request (and upstream answer) from FILE instead
      --case NAME               The case to run, from the test-case file given in place of RULES
      --env NAME=VALUE          A value for ${env.NAME} (vmConfig.env); repeatable
  -h, --help                    Print this help

Examples:
  rulefilter trace rules/canary.yaml --path /api/orders -H 'cookie: canary=yes'
  rulefilter trace rules/errors.yaml --path /shop --status 503
  rulefilter trace rules/json-guard.yaml -X POST --path /api/users -H 'content-type: application/json' \
      -H 'x-forwarded-for: 203.0.113.9' -d '{\"user\": {\"role\": \"admin\"}}'
  rulefilter trace --env REGION=eu --env MAINTENANCE_RETRY_AFTER=60 rules/maintenance.yaml --path /api/x
  rulefilter trace rules/maintenance.test.yaml --case 'API clients get JSON'

Exit status: 0 the request was traced, 1 the document is invalid, 2 the command itself failed.
";

/// A `--request` file: a test case's `request` and `upstream`, without a name or expectations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFile {
    request: CaseRequest,
    #[serde(default)]
    upstream: Option<CaseUpstream>,
}

#[derive(Default)]
struct Options {
    file: Option<PathBuf>,
    case: Option<String>,
    request_file: Option<PathBuf>,
    method: Option<String>,
    path: Option<String>,
    host: Option<String>,
    scheme: Option<String>,
    headers: Vec<(String, String)>,
    source: Option<String>,
    attributes: Vec<(String, String)>,
    status: Option<u16>,
    response_headers: Vec<(String, String)>,
    body: Option<String>,
    response_body: Option<String>,
    env: HashMap<String, String>,
}

impl Options {
    /// Whether any option describes the request or the upstream's answer (which --request and --case replace).
    fn describes_exchange(&self) -> bool {
        self.method.is_some()
            || self.path.is_some()
            || self.host.is_some()
            || self.scheme.is_some()
            || !self.headers.is_empty()
            || self.source.is_some()
            || !self.attributes.is_empty()
            || self.status.is_some()
            || !self.response_headers.is_empty()
            || self.body.is_some()
            || self.response_body.is_some()
    }
}

fn options(mut args: lexopt::Parser) -> Result<Option<Options>, lexopt::Error> {
    use lexopt::Arg::{Long, Short, Value};
    let mut o = Options::default();
    while let Some(arg) = args.next()? {
        match arg {
            Long("method") | Short('X') => o.method = Some(args.value()?.string()?),
            Long("path") => {
                let path = args.value()?.string()?;
                if !path.starts_with('/') {
                    return Err(format!("--path starts with /, not {path:?}").into());
                }
                o.path = Some(path);
            }
            Long("host") => o.host = Some(args.value()?.string()?),
            Long("scheme") => {
                let scheme = args.value()?.string()?.to_ascii_lowercase();
                if scheme != "http" && scheme != "https" {
                    return Err(format!("--scheme is http or https, not {scheme:?}").into());
                }
                o.scheme = Some(scheme);
            }
            Long("header") | Short('H') => o.headers.push(header(&args.value()?.string()?, "--header")?),
            Long("source") => {
                let source = args.value()?.string()?;
                if source.parse::<std::net::IpAddr>().is_err() {
                    return Err(format!("--source takes an IP address, not {source:?}").into());
                }
                o.source = Some(source);
            }
            Long("status") => {
                let status: u16 = args.value()?.parse()?;
                if !(100..=599).contains(&status) {
                    return Err(format!("--status is an HTTP status, 100-599, not {status}").into());
                }
                o.status = Some(status);
            }
            Long("response-header") => {
                o.response_headers.push(header(&args.value()?.string()?, "--response-header")?);
            }
            Long("body") | Short('d') => o.body = Some(args.value()?.string()?),
            Long("response-body") => o.response_body = Some(args.value()?.string()?),
            Long("request") => o.request_file = Some(args.value()?.into()),
            Long("case") => o.case = Some(args.value()?.string()?),
            Long("attribute") => {
                let pair = args.value()?.string()?;
                let (name, value) =
                    pair.split_once('=').ok_or(format!("--attribute takes NAME=VALUE, not {pair:?}"))?;
                rulefilter::attributes::resolve(name).map_err(|e| format!("--attribute: {e}"))?;
                o.attributes.push((name.to_owned(), value.to_owned()));
            }
            Long("env") => {
                let (name, value) = env_pair(&args.value()?.string()?)?;
                o.env.insert(name, value);
            }
            Long("help") | Short('h') => {
                out!("{HELP}");
                return Ok(None);
            }
            Value(file) if o.file.is_none() => o.file = Some(file.into()),
            other => return Err(other.unexpected()),
        }
    }
    if o.file.is_none() {
        return Err("give a rules document (or a test-case file with --case); see `rulefilter trace --help`".into());
    }
    if (o.request_file.is_some() || o.case.is_some()) && o.describes_exchange() {
        return Err("the request comes from options, --request or --case: give only one of them".into());
    }
    if o.request_file.is_some() && o.case.is_some() {
        return Err("give --request or --case, not both".into());
    }
    Ok(Some(o))
}

pub fn run(args: lexopt::Parser) -> Result<ExitCode, String> {
    let Some(options) = options(args).map_err(|e| e.to_string())? else { return Ok(ExitCode::SUCCESS) };
    let file = options.file.clone().unwrap_or_default();
    let (rules_path, env, request, upstream) = match &options.case {
        Some(name) => from_case(&file, name, &options.env)?,
        None => {
            let (request, upstream) = match &options.request_file {
                Some(path) => from_request_file(path)?,
                None => from_options(&options),
            };
            (file.clone(), options.env.clone(), request, upstream)
        }
    };
    let text =
        std::fs::read_to_string(&rules_path).map_err(|e| format!("cannot read {}: {e}", rules_path.display()))?;
    let rules = match compile_first(&rules_path, &text, &env) {
        Some(Ok((_, rules))) => rules,
        Some(Err(problems)) => {
            for problem in problems {
                eprintln!("{}", problem.text());
            }
            eprintln!("rulefilter: {} is not valid; fix it first (see `rulefilter validate`)", rules_path.display());
            return Ok(ExitCode::from(1));
        }
        None => return Err(format!("{} holds no rules document", rules_path.display())),
    };
    let outcome = match &options.case {
        // The file's earlier cases run first, untraced, on the same simulated proxy: rate-limit buckets and
        // the clock are then as the case finds them in `rulefilter test` and in Envoy.
        Some(name) => {
            let cases = CaseFile::load(&file)?;
            let mut session = Session::default();
            let mut proxy = None;
            for case in &cases.cases {
                if case.name == *name {
                    proxy = Some(session.prepare(&rules, case));
                    break;
                }
                session.simulate(&rules, case);
            }
            match proxy {
                Some(proxy) => simulate::run_traced_in(proxy, &rules, &request, &upstream),
                None => simulate::run_traced(&rules, &request, &upstream),
            }
        }
        None => simulate::run_traced(&rules, &request, &upstream),
    };
    out!("{}", report(&rules_path, &rules, &request, &upstream, &outcome));
    Ok(ExitCode::SUCCESS)
}

fn from_options(o: &Options) -> (Request, Response) {
    let mut request = Request::get(o.path.as_deref().unwrap_or("/"));
    if let Some(method) = &o.method {
        request.method = method.clone();
    }
    if let Some(host) = &o.host {
        request.authority = host.clone();
    }
    if let Some(scheme) = &o.scheme {
        request.scheme = scheme.clone();
    }
    if let Some(source) = &o.source {
        request.source = simulate::client_address(source);
    }
    request.headers = o.headers.clone();
    request.attributes = o.attributes.clone();
    if let Some(body) = &o.body {
        if !request.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
            request.headers.push(("content-length".into(), body.len().to_string()));
        }
        request.body = body.clone();
    }
    let body = o.response_body.clone().unwrap_or_default();
    let upstream = Response { status: o.status.unwrap_or(200), headers: o.response_headers.clone(), body };
    (request, upstream)
}

fn from_request_file(path: &Path) -> Result<(Request, Response), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: RequestFile = serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let upstream = file.upstream.as_ref().map_or_else(Response::ok, CaseUpstream::response);
    Ok((file.request.to_request(), upstream))
}

type Exchange = (PathBuf, HashMap<String, String>, Request, Response);

/// The rules, environment, request and upstream answer of case `name` in a test-case file.
fn from_case(path: &Path, name: &str, extra_env: &HashMap<String, String>) -> Result<Exchange, String> {
    let cases = CaseFile::load(path)?;
    let Some(case) = cases.cases.iter().find(|c| c.name == name) else {
        let names: Vec<String> = cases.cases.iter().map(|c| format!("  {}", c.name)).collect();
        return Err(format!("{}: no case named {name:?}; the cases are:\n{}", path.display(), names.join("\n")));
    };
    let mut env: HashMap<String, String> = cases.env.clone().into_iter().collect();
    env.extend(extra_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok((cases.rules_path(path), env, case.request.to_request(), case.upstream_response()))
}

/// The whole trace as text.
fn report(rules_path: &Path, rules: &RuleSet, request: &Request, upstream: &Response, outcome: &Outcome) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "rules: {}", rules_path.display());
    let client = request.source.parse::<std::net::SocketAddr>().map_or(request.source.clone(), |a| a.ip().to_string());
    let _ = writeln!(
        out,
        "request: {} {}://{}{} from {client}",
        request.method, request.scheme, request.authority, request.path
    );
    let secret_places = rules.secret_places();
    for (name, value) in &request.headers {
        let hidden = secret_places.contains(&SecretPlace::Header(name.as_str().into()));
        let _ = writeln!(out, "  {name}: {}", if hidden { "(hidden)" } else { value });
    }
    for (name, value) in &request.attributes {
        let _ = writeln!(out, "  (attribute) {name} = {value}");
    }
    let mut seen_response_phase = false;
    // Credential checks happen while a rule's conditions run: shown under that rule, after its verdict.
    let mut checks: Vec<&str> = Vec::new();
    for event in &outcome.trace {
        if !matches!(event, Event::Rule { .. } | Event::Credentials(_)) {
            checks.drain(..).for_each(|check| {
                let _ = writeln!(out, "        {check}");
            });
        }
        match event {
            Event::Phase(phase) => {
                seen_response_phase |= *phase == Phase::Response;
                if *phase == Phase::Response && outcome.upstream_request.is_none() {
                    let _ =
                        writeln!(out, "\nresponse phase, on the proxy's own answer (response rules do not run on it)");
                    continue;
                }
                let count = rules.rule_count(*phase);
                let _ = writeln!(out, "\n{} phase: {count} {}", phase.key(), if count == 1 { "rule" } else { "rules" });
                if *phase == Phase::Response {
                    let _ = writeln!(out, "  (the upstream answered {})", upstream.status);
                }
            }
            Event::Rule { index, name, miss } => {
                let _ = match miss {
                    None => writeln!(out, "  [{index}] {name}: matched"),
                    Some(_) => writeln!(out, "  [{index}] {name}: no match"),
                };
                checks.drain(..).for_each(|check| {
                    let _ = writeln!(out, "        {check}");
                });
                if let Some(miss) = miss {
                    let _ = writeln!(out, "        {}", miss.to_string().replace('\n', "\n        "));
                }
            }
            Event::Credentials(check) => checks.push(check),
            Event::Skipped { index, name, by, reason } => {
                let because = match reason {
                    SkipReason::Answered => format!("{by} answered"),
                    SkipReason::Stopped => format!("{by} matched and stops the phase"),
                };
                let _ = writeln!(out, "  [{index}] {name}: not evaluated ({because})");
            }
            Event::Header { map, name, edit } => {
                let which = map.key();
                let _ = match edit {
                    Edit::Set(value) => writeln!(out, "        set {which} header {name}: {value:?}"),
                    Edit::Add(value) => writeln!(out, "        add {which} header {name}: {value:?}"),
                    Edit::Remove => writeln!(out, "        remove {which} header {name}"),
                };
            }
            Event::Url { change, value } => {
                let _ = writeln!(out, "        {change} {value:?}");
            }
            Event::Deferred => {
                let _ = writeln!(out, "        response_headers: applied when the response arrives");
            }
            Event::ApplyDeferred { rule } => {
                let _ = writeln!(out, "  response_headers of request rule {rule}:");
            }
            Event::Responded { status, headers, .. } => {
                // The response itself is shown in full at the end.
                let _ = match headers.iter().find(|(name, _)| name == "location") {
                    Some((_, location)) => writeln!(out, "        redirect {status} to {location}"),
                    None => writeln!(out, "        respond {status}"),
                };
            }
            Event::Carried { kept, removed } => {
                if !kept.is_empty() {
                    let _ = writeln!(out, "        carries the response headers edits wrote: {}", kept.join(", "));
                }
                if !removed.is_empty() {
                    let _ =
                        writeln!(out, "        leaves out the response headers edits removed: {}", removed.join(", "));
                }
            }
            Event::Logged { level, message } => {
                let _ = writeln!(out, "        log {}: {message}", level.as_str().to_ascii_lowercase());
            }
            Event::WouldDo(what) => {
                let _ = writeln!(out, "        would {what} (dry run: nothing changed)");
            }
            Event::Refused(message) => {
                let _ = writeln!(out, "        REFUSED: {message}");
            }
            Event::RateLimit { key, verdict } => {
                let _ = writeln!(out, "        rate limit (key {key}): {verdict}");
            }
            Event::LeftOut(message) => {
                let _ = writeln!(out, "        {message}");
            }
            Event::AwaitsBody { map, max_bytes } => {
                let _ = writeln!(out, "        waits for the {} body (held up to {max_bytes} bytes)", map.key());
            }
            Event::BodyArrived { map, bytes: Some(bytes) } => {
                let _ = writeln!(out, "\n{} body: {bytes} bytes; the rules waiting for it:", map.key());
            }
            Event::BodyArrived { map, bytes: None } => {
                let _ = writeln!(
                    out,
                    "\n{} body: past every waiting rule's limit, not read; it went on unmodified:",
                    map.key()
                );
            }
            Event::BodyEdited { map, bytes } => {
                let _ = writeln!(out, "  {} body edited: {bytes} bytes go on", map.key());
            }
        }
    }
    if !seen_response_phase && outcome.responded_locally {
        let _ = writeln!(out, "\nresponse phase: not run (the proxy answered the request itself)");
    }
    out.push('\n');
    out.push_str(&result(outcome));
    // Keys and passwords never reach the output, wherever a rule or the request put them.
    let secrets = credentials::presented_secrets(&secret_places, &request.headers, &request.path);
    credentials::hide(&out, &secrets)
}

/// What the upstream and the client receive.
fn result(outcome: &Outcome) -> String {
    let mut out = String::new();
    match &outcome.upstream_request {
        None => {
            let _ = writeln!(out, "upstream: not called");
        }
        Some(headers) => {
            let pseudo = |name: &str| headers.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str());
            let _ = writeln!(
                out,
                "upstream receives: {} {}://{}{}",
                pseudo(":method"),
                pseudo(":scheme"),
                pseudo(":authority"),
                pseudo(":path")
            );
            write_headers(&mut out, headers);
            if !outcome.upstream_body.is_empty() {
                let _ = writeln!(out, "  body: {}", rulefilter::trace::quote(&outcome.upstream_body));
            }
        }
    }
    let by = if outcome.responded_locally { " (made by the proxy)" } else { "" };
    let _ = writeln!(out, "client receives: {}{by}", outcome.response.status);
    write_headers(&mut out, &outcome.response.headers);
    if !outcome.response.body.is_empty() {
        let _ = writeln!(out, "  body: {}", rulefilter::trace::quote(&outcome.response.body));
    }
    for error in &outcome.host_errors {
        let _ = writeln!(out, "proxy error: {error}");
    }
    out
}

/// Headers sorted by name (pseudo-headers left out), one per line.
fn write_headers(out: &mut String, headers: &[(String, String)]) {
    let mut sorted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in headers.iter().filter(|(n, _)| !n.starts_with(':')) {
        sorted.entry(name).or_default().push(value);
    }
    for (name, values) in sorted {
        for value in values {
            let _ = writeln!(out, "  {name}: {value}");
        }
    }
}
