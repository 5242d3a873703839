//! `make soak` and `make bench`: load through a real Envoy started as the e2e suite starts it (the module
//! configured as istiod configures it, one worker, an echo upstream), driven by wrk on loopback, and the native
//! engine timed on its own. The soak asserts what does not depend on the machine (statuses, socket errors,
//! counters, memory growth); the benchmark prints what does as ratios against baselines measured in the same run,
//! and `costs` what each part of a rule adds to a request inside Envoy.
//!
//! ```text
//! cargo run --release --example perf -- soak [--seconds 60] [--connections 16]
//! cargo run --release --example perf -- bench [--seconds 5] [--rounds 3]
//! cargo run --release --example perf -- costs [--seconds 4] [--rounds 3]
//! cargo run --release --example perf -- anchors [--seconds 5] [--rounds 3] [--starts 2]
//! cargo run --release --example perf -- compile [--rounds 3]
//! ```

mod anchors;
mod bench;
mod costs;
mod h2;
mod large;
mod mix;
mod soak;
mod wrk;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Duration;

use lexopt::prelude::*;
use rulefilter::cases::CaseFile;
use rulefilter::local::echo::EchoUpstream;
use rulefilter::local::envoy::{Envoy, EnvoyOptions};
use rulefilter::local::http;
use rulefilter::local::istio::{self, Plugin};
use rulefilter::RuleSet;

const USAGE: &str = "\
Usage: perf soak [--seconds N] [--connections N] [--envoy PATH] [--module PATH]
       perf bench [--seconds N] [--rounds N] [--envoy PATH] [--module PATH] [--compare PATH]
       perf costs [--seconds N] [--rounds N] [--envoy PATH] [--module PATH]
       perf anchors [--seconds N] [--rounds N] [--starts N] [--envoy PATH] [--module PATH] [--handwritten PATH]
       perf compile [--rounds N] [--envoy PATH] [--module PATH]   (on_configure's time per VM, each document)
       perf engine-loop DOCUMENT REQUESTS   (for callgrind: runs the soak mix through one rules/ document;
                                         DOCUMENT may also be a 1,000-rule shape: exact-paths, prefix-header, …)
       perf module-loop DOCUMENT REQUESTS   (the same through the module's Host, over stand-in host calls)";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("perf: {message}");
            ExitCode::from(2)
        }
    }
}

/// Options every command takes.
pub struct Options {
    pub envoy: PathBuf,
    pub module: PathBuf,
    pub seconds: u64,
    pub connections: u32,
    pub rounds: u32,
    /// anchors: Envoy starts per leg and round.
    pub starts: u32,
    /// anchors: the hand-written module of tests/fixtures/handwritten.
    pub handwritten: PathBuf,
    /// bench: another module (say main's) run with edge.yaml as leg (d), interleaved with the others: an A/B.
    pub compare: Option<PathBuf>,
}

fn run() -> Result<bool, String> {
    let mut args = lexopt::Parser::from_env();
    let command = match args.next().map_err(|e| e.to_string())? {
        Some(Value(command)) => command.string().map_err(|e| e.to_string())?,
        _ => return Err(USAGE.into()),
    };
    if command == "engine-loop" || command == "module-loop" {
        let document = args.value().and_then(|v| v.string()).map_err(|e| format!("{e}\n{USAGE}"))?;
        let requests = args.value().and_then(|v| v.parse()).map_err(|e| format!("{e}\n{USAGE}"))?;
        let run = if command == "engine-loop" { bench::engine_loop } else { bench::module_loop };
        return run(&document, requests).map(|()| true);
    }
    let mut options = Options {
        envoy: project_dir().join(".venv/bin/envoy"),
        module: project_dir().join("build/rulefilter.wasm"),
        seconds: match command.as_str() {
            "soak" => 60,
            "costs" => 4,
            _ => 5,
        },
        connections: 16,
        rounds: 3,
        starts: 2,
        handwritten: anchors::handwritten_module(),
        compare: None,
    };
    let mut parse = |args: &mut lexopt::Parser| -> Result<(), lexopt::Error> {
        while let Some(arg) = args.next()? {
            match arg {
                Long("envoy") => options.envoy = args.value()?.into(),
                Long("module") => options.module = args.value()?.into(),
                Long("seconds") => options.seconds = args.value()?.parse()?,
                Long("connections") => options.connections = args.value()?.parse()?,
                Long("rounds") => options.rounds = args.value()?.parse()?,
                Long("starts") => options.starts = args.value()?.parse()?,
                Long("handwritten") => options.handwritten = args.value()?.into(),
                Long("compare") => options.compare = Some(args.value()?.into()),
                other => return Err(other.unexpected()),
            }
        }
        Ok(())
    };
    parse(&mut args).map_err(|e| format!("{e}\n{USAGE}"))?;
    for (path, hint) in [(&options.envoy, "make envoy"), (&options.module, "make build")] {
        if !path.is_file() {
            return Err(format!("{} not found: run `{hint}`", path.display()));
        }
    }
    if let Some(compare) = options.compare.as_ref().filter(|path| !path.is_file()) {
        return Err(format!("--compare {}: no such module", compare.display()));
    }
    if options.seconds == 0 || options.connections == 0 || options.rounds == 0 || options.starts == 0 {
        return Err("--seconds, --connections, --rounds and --starts must be at least 1".into());
    }
    match command.as_str() {
        "soak" => soak::run(&options),
        "bench" => bench::run(&options),
        "costs" => costs::run(&options),
        "anchors" => anchors::run(&options),
        "compile" => anchors::compile(&options),
        _ => Err(USAGE.into()),
    }
}

/// A command that runs `program` on CPU `cpu` if given (through taskset), else anywhere.
pub fn on_cpu(program: impl AsRef<OsStr>, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut taskset = Command::new("taskset");
            taskset.arg("-c").arg(cpu.to_string()).arg(program);
            taskset
        }
        None => Command::new(program),
    }
}

pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A document of rules/ with the `vmConfig.env` its test cases give it.
pub struct Document {
    pub name: String,
    pub rules: RuleSet,
    /// As istiod hands it to the module; `None` for an empty document.
    pub json: Option<String>,
    pub env: Vec<(String, String)>,
}

impl Document {
    /// `rules/<name>.yaml`, or the empty document for `empty`.
    pub fn load(name: &str) -> Result<Document, String> {
        if name == "empty" {
            return Ok(Document { name: name.into(), rules: RuleSet::default(), json: None, env: Vec::new() });
        }
        let path = project_dir().join("rules").join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let cases = CaseFile::load(&path.with_extension("test.yaml"))?;
        Document::from_text(name, &text, cases.env.into_iter().collect())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A document from its text, with the `vmConfig.env` its `${env.…}` references read.
    pub fn from_text(name: &str, text: &str, env: Vec<(String, String)>) -> Result<Document, String> {
        let lookup: HashMap<String, String> = env.iter().cloned().collect();
        let rules = rulefilter::parse_with_env(text, &lookup).map_err(|e| e.to_string())?;
        let yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        Ok(Document { name: name.into(), rules, json: Some(istio::document_json(&yaml)?), env })
    }

    pub fn plugin(&self) -> Plugin {
        let mut plugin = Plugin::new(&self.name, self.json.clone());
        plugin.env.clone_from(&self.env);
        plugin
    }
}

/// An echo upstream that forgets what it received every second, so that a long run holds no more memory than
/// a short one.
pub fn echo_upstream() -> Result<Arc<EchoUpstream>, String> {
    let upstream = Arc::new(EchoUpstream::start().map_err(|e| format!("cannot start the echo upstream: {e}"))?);
    let forgetting = Arc::clone(&upstream);
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        forgetting.clear();
    });
    Ok(upstream)
}

/// Starts Envoy as the e2e suite does, with `plugin` (or no Wasm filter at all), its files in target/perf/<label>.
pub fn start_envoy(
    options: &Options,
    label: &str,
    plugin: Option<Plugin>,
    upstream: SocketAddr,
) -> Result<Envoy, String> {
    start_envoy_with(options, &options.module, label, plugin, upstream)
}

/// [`start_envoy`] with another module.
pub fn start_envoy_with(
    options: &Options,
    module: &Path,
    label: &str,
    plugin: Option<Plugin>,
    upstream: SocketAddr,
) -> Result<Envoy, String> {
    let dir = project_dir().join("target/perf").join(label);
    let with_filter = plugin.is_some();
    let plugin = plugin.unwrap_or_else(|| Plugin::new(label, None));
    let envoy_options =
        EnvoyOptions::new(options.envoy.clone(), module.to_path_buf(), dir, plugin, upstream).wasm_filter(with_filter);
    Envoy::start(envoy_options).map_err(|failure| format!("Envoy ({label}) did not start: {failure}"))
}

/// The order legs run in: `rounds` rounds over `count` legs, each round starting one leg further on, so that a
/// neighbour's load on the machine falls on every leg alike.
pub fn interleaved(rounds: usize, count: usize) -> impl Iterator<Item = usize> {
    (0..rounds).flat_map(move |round| (0..count).map(move |turn| (round + turn) % count))
}

/// Prints `failures` under `command: FAILED`, if any; whether there were none.
pub fn verdict(command: &str, failures: &[String]) -> bool {
    if failures.is_empty() {
        return true;
    }
    println!();
    println!("{command}: FAILED");
    for failure in failures {
        println!("  {failure}");
    }
    false
}

/// Envoy's memory at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// Resident set size of the process (/proc/<pid>/status `VmRSS`): everything, the Wasm VM included.
    pub rss: u64,
    /// Bytes allocated through Envoy's allocator (admin `/memory` `allocated`): not V8's own pages.
    pub allocated: u64,
    /// The allocator's heap (admin `/memory` `heap_size`).
    pub heap: u64,
}

impl Memory {
    pub fn read(envoy: &Envoy) -> Result<Memory, String> {
        let rss = rss_of(envoy.pid())?;
        let memory = http::get(envoy.admin, "/memory").map_err(|e| format!("admin /memory: {e}"))?;
        let json: serde_json::Value = serde_json::from_str(&memory.body).map_err(|e| format!("admin /memory: {e}"))?;
        // Envoy prints these 64-bit numbers as strings.
        let field = |name: &str| -> Result<u64, String> {
            json.get(name)
                .and_then(|v| v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_u64()))
                .ok_or_else(|| format!("admin /memory has no {name}: {}", memory.body))
        };
        Ok(Memory { rss, allocated: field("allocated")?, heap: field("heap_size")? })
    }
}

/// The resident set size of Envoy's process `pid` (/proc/<pid>/status `VmRSS`), in bytes.
pub fn rss_of(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read Envoy's /proc status: {e}"))?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmRSS in Envoy's /proc status")?;
    Ok(rss_kb * 1024)
}

/// Every counter and gauge of Envoy's `/stats`.
pub fn stats(envoy: &Envoy) -> Result<BTreeMap<String, u64>, String> {
    let stats = http::get(envoy.admin, "/stats").map_err(|e| format!("admin /stats: {e}"))?;
    Ok(stats
        .body
        .lines()
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(": ")?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect())
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// The median of some numbers (the mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    let upper = sorted.get(middle).copied().unwrap_or(0.0);
    if sorted.len() % 2 == 1 {
        upper
    } else {
        (sorted.get(middle.wrapping_sub(1)).copied().unwrap_or(0.0) + upper) / 2.0
    }
}

/// Where wrk's script and mix files go.
pub fn scratch_dir() -> PathBuf {
    project_dir().join("target/perf")
}

pub fn size_of(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path).map(|m| m.len()).map_err(|e| format!("{}: {e}", path.display()))
}
