//! A real Envoy with the module, configured as istiod configures it: the filter named and shaped as istiod
//! makes it ([`Plugin`]), delivered by ECDS from a watched file (Istio delivers it by ECDS over ADS) or inline.
//! Updates are pushed the way Envoy wants a watched file changed: written aside, then renamed over it.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http;
use super::istio::Plugin;

/// How the filter reaches Envoy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Through ECDS, from a watched file: what Istio does (over ADS). A bad update is refused and the last good
    /// configuration keeps serving.
    Ecds,
    /// Inline in the listener: a bad configuration then stops Envoy from starting.
    Inline,
}

/// What to start.
#[derive(Clone, Debug)]
pub struct EnvoyOptions {
    /// The Envoy binary.
    pub envoy: PathBuf,
    /// The Wasm module.
    pub module: PathBuf,
    /// A folder for Envoy's configuration and log; created if missing.
    pub dir: PathBuf,
    pub plugin: Plugin,
    pub upstream: SocketAddr,
    /// Where the routes to the second cluster lead (see [`bootstrap`]); by default the same upstream.
    pub second_upstream: SocketAddr,
    pub delivery: Delivery,
    /// The listener's port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Print a line per request on Envoy's standard output (otherwise discarded).
    pub access_log: bool,
    /// The clusters speak the client's protocol to the upstreams (HTTP/2 for an HTTP/2 client, so gRPC works),
    /// as Istio's sidecar clusters do for ports whose protocol it detects. Off: HTTP/1.1, Envoy's default,
    /// which the echo upstream speaks; HTTP/2 clients then still work through it.
    pub use_client_protocol: bool,
    /// With ECDS: [`Envoy::start`] fails unless Envoy applies the first configuration. `false` lets it serve
    /// without one, to see what clients get then.
    pub require_filter: bool,
    /// `false`: no Wasm filter at all, only the router (the plugin and module are ignored): the baseline the
    /// benchmark compares the filter's cost with.
    pub wasm_filter: bool,
    /// Worker threads (`--concurrency`); 1 by default, which keeps per-worker behaviour deterministic. Rate
    /// limits shared by all workers are tested with more.
    pub concurrency: u32,
    /// HTTP filters that run before the Wasm filter, as Istio puts `jwt_authn` (RequestAuthentication) there.
    pub filters_before: Vec<Value>,
    /// Serve TLS on the listener (with the `tls_inspector`, so the SNI is known) instead of plain HTTP.
    pub tls: Option<ListenerTls>,
    /// An HTTP filter entry used as it is, inline (what `rulefilter manifest --envoy` writes), instead of the
    /// one made from `plugin`.
    pub http_filter: Option<Value>,
    /// A second listener that terminates TLS with this certificate and key (PEM files), as a gateway's HTTPS
    /// listener does: requests through it carry `:scheme` `https`. Same routes and filters as the first.
    pub https_listener: Option<ListenerTls>,
}

/// The listener's TLS: its certificate, and optionally the CA client certificates are verified against.
#[derive(Clone, Debug)]
pub struct ListenerTls {
    pub certificate_chain: PathBuf,
    pub private_key: PathBuf,
    /// Verify client certificates against this CA (mTLS).
    pub client_ca: Option<PathBuf>,
    /// Refuse connections without a client certificate (Istio's STRICT mTLS).
    pub require_client_certificate: bool,
}

impl EnvoyOptions {
    /// The filter delivered by ECDS, in front of `upstream`, on a free port, without an access log.
    pub fn new(envoy: PathBuf, module: PathBuf, dir: PathBuf, plugin: Plugin, upstream: SocketAddr) -> Self {
        EnvoyOptions {
            envoy,
            module,
            dir,
            plugin,
            upstream,
            second_upstream: upstream,
            delivery: Delivery::Ecds,
            port: 0,
            access_log: false,
            use_client_protocol: false,
            require_filter: true,
            wasm_filter: true,
            concurrency: 1,
            filters_before: Vec::new(),
            tls: None,
            http_filter: None,
            https_listener: None,
        }
    }

    pub fn concurrency(mut self, workers: u32) -> Self {
        self.concurrency = workers.max(1);
        self
    }

    /// Adds an HTTP filter in front of the Wasm filter (e.g. `jwt_authn`).
    pub fn filter_before(mut self, filter: Value) -> Self {
        self.filters_before.push(filter);
        self
    }

    pub fn tls(mut self, tls: ListenerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Adds the HTTPS listener (see [`EnvoyOptions::https_listener`]).
    pub fn https_listener(mut self, tls: ListenerTls) -> Self {
        self.https_listener = Some(tls);
        self
    }

    pub fn second_upstream(mut self, upstream: SocketAddr) -> Self {
        self.second_upstream = upstream;
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

    pub fn access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }

    pub fn use_client_protocol(mut self, on: bool) -> Self {
        self.use_client_protocol = on;
        self
    }

    pub fn require_filter(mut self, required: bool) -> Self {
        self.require_filter = required;
        self
    }

    pub fn wasm_filter(mut self, on: bool) -> Self {
        self.wasm_filter = on;
        self
    }

    /// Loads this HTTP filter entry inline, as written, instead of the plugin's.
    pub fn http_filter(mut self, filter: Value) -> Self {
        self.http_filter = Some(filter);
        self.delivery = Delivery::Inline;
        self
    }
}

/// Why Envoy did not come up.
#[derive(Debug)]
pub struct StartFailure {
    pub reason: String,
    /// Envoy's exit status, if it exited.
    pub exit: Option<ExitStatus>,
    /// What Envoy logged.
    pub log: String,
}

impl fmt::Display for StartFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)?;
        if let Some(exit) = self.exit {
            write!(f, " ({exit})")?;
        }
        // The lines that say why, not the start-up banner.
        let lines: Vec<&str> = self.log.lines().collect();
        let errors: Vec<&str> =
            lines.iter().copied().filter(|l| l.contains("][critical][") || l.contains("][error][")).collect();
        let shown =
            if errors.is_empty() { lines.get(lines.len().saturating_sub(20)..).unwrap_or_default() } else { &errors };
        for line in shown {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

/// What Envoy did with a pushed configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// In use from now on.
    Applied,
    /// Refused (ECDS `update_rejected` and `config_fail`); the previous configuration keeps serving.
    Refused,
}

/// A running Envoy; killed on drop.
pub struct Envoy {
    child: Child,
    pub dir: PathBuf,
    pub admin: SocketAddr,
    pub listener: SocketAddr,
    /// The HTTPS listener, when [`EnvoyOptions::https_listener`] asked for one.
    pub tls_listener: Option<SocketAddr>,
    plugin: Plugin,
    module: PathBuf,
    version: u32,
}

impl Envoy {
    /// Starts Envoy and waits (up to 60 s) until it serves with the filter configured.
    pub fn start(options: EnvoyOptions) -> Result<Envoy, StartFailure> {
        let failure = |reason: String| StartFailure { reason, exit: None, log: String::new() };
        let dir = options.dir.clone();
        let prepare = || -> io::Result<()> {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("ecds"))
        };
        prepare().map_err(|e| failure(format!("cannot prepare {}: {e}", dir.display())))?;
        let filter = options.plugin.wasm_filter(&options.module.to_string_lossy());
        let resource_name = options.plugin.resource_name();
        let http_filter = match options.delivery {
            _ if !options.wasm_filter => None,
            _ if options.http_filter.is_some() => options.http_filter.clone(),
            Delivery::Inline => Some(json!({"name": resource_name, "typed_config": filter})),
            Delivery::Ecds => {
                write_ecds(&dir, &resource_name, &filter, 1).map_err(|e| failure(format!("cannot write ECDS: {e}")))?;
                Some(json!({
                    "name": resource_name,
                    "config_discovery": {
                        "config_source": {
                            "path_config_source": {
                                "path": dir.join("ecds/filter.json").to_string_lossy(),
                                "watched_directory": {"path": dir.join("ecds").to_string_lossy()},
                            },
                            "initial_fetch_timeout": "0s",
                        },
                        "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"],
                    },
                }))
            }
        };
        let bootstrap_path = dir.join("envoy.json");
        std::fs::write(&bootstrap_path, bootstrap(&options, http_filter).to_string())
            .map_err(|e| failure(format!("cannot write {}: {e}", bootstrap_path.display())))?;
        let log_path = dir.join("envoy.log");
        let admin_path = dir.join("admin.txt");
        let log_file = std::fs::File::create(&log_path)
            .map_err(|e| failure(format!("cannot create {}: {e}", log_path.display())))?;
        let mut command = Command::new(&options.envoy);
        stop_with_this_process(&mut command);
        let child = command
            .arg("-c")
            .arg(&bootstrap_path)
            .args(["--concurrency", &options.concurrency.to_string()])
            .args(["--disable-hot-restart", "--log-level", "info"])
            // Access log lines reach the terminal promptly (the default is every 10 s).
            .args(["--file-flush-interval-msec", "200"])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdin(Stdio::null())
            .stdout(if options.access_log { Stdio::inherit() } else { Stdio::null() })
            // Envoy's stderr log is written line by line; its --log-path file only every few seconds.
            .stderr(log_file)
            .spawn()
            .map_err(|e| failure(format!("cannot run {}: {e}", options.envoy.display())))?;
        let unknown = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut envoy = Envoy {
            child,
            dir,
            admin: unknown,
            listener: unknown,
            tls_listener: None,
            plugin: options.plugin,
            module: options.module,
            version: 1,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(exit)) = envoy.child.try_wait() {
                return Err(StartFailure { reason: "Envoy exited".into(), exit: Some(exit), log: envoy.log() });
            }
            if Instant::now() > deadline {
                return Err(StartFailure {
                    reason: "Envoy was not ready in 60 s".into(),
                    exit: None,
                    log: envoy.log(),
                });
            }
            if let Some(admin) = std::fs::read_to_string(&admin_path).ok().and_then(|a| a.trim().parse().ok()) {
                envoy.admin = admin;
                let filter_applied =
                    options.wasm_filter && options.delivery == Delivery::Ecds && options.require_filter;
                match envoy.ready_listener(filter_applied) {
                    Ok(Some(listener)) if options.https_listener.is_none() => {
                        envoy.listener = listener;
                        return Ok(envoy);
                    }
                    Ok(Some(listener)) => {
                        if let Some(tls) = envoy.listener_port(TLS_LISTENER) {
                            envoy.listener = listener;
                            envoy.tls_listener = Some(tls);
                            return Ok(envoy);
                        }
                    }
                    Ok(None) => {}
                    Err(reason) => return Err(StartFailure { reason, exit: None, log: envoy.log() }),
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The listener's address once Envoy is live and, if `filter_applied`, has applied the first ECDS
    /// configuration: `Ok(None)` while not yet, `Err` if Envoy refused it.
    fn ready_listener(&self, filter_applied: bool) -> Result<Option<SocketAddr>, String> {
        if filter_applied {
            let (applied, refused) = self.ecds_updates();
            if refused > 0 {
                return Err("Envoy refused the filter configuration".into());
            }
            if applied < 1 {
                return Ok(None);
            }
        }
        let Some(ready) = http::get(self.admin, "/ready").ok() else { return Ok(None) };
        if ready.status != 200 {
            return Ok(None);
        }
        Ok(self.listener_port(MAIN_LISTENER))
    }

    /// The address of the listener `name`, once Envoy listens on it.
    fn listener_port(&self, name: &str) -> Option<SocketAddr> {
        let listeners = http::get(self.admin, "/listeners?format=json").ok()?;
        let listeners: Value = serde_json::from_str(&listeners.body).ok()?;
        let port = listeners
            .get("listener_statuses")?
            .as_array()?
            .iter()
            .find(|l| l.get("name").and_then(Value::as_str) == Some(name))?
            .pointer("/local_address/socket_address/port_value")?
            .as_u64()?;
        u16::try_from(port).ok().map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
    }

    /// How many ECDS updates of the filter Envoy applied and refused. (`config_reload` is no measure: Envoy 1.40
    /// counts a refused update there too, besides `config_fail`.)
    pub fn ecds_updates(&self) -> (u64, u64) {
        let prefix = self.ecds_stat_prefix();
        let count = |name: &str| self.stat(&format!("{prefix}.{name}")).unwrap_or(0);
        (count("update_success"), count("update_rejected"))
    }

    /// Envoy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The plugin as last pushed.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// `extension_config_discovery.http_filter.<resource name>`: ECDS counters for this filter.
    pub fn ecds_stat_prefix(&self) -> String {
        format!("extension_config_discovery.http_filter.{}", self.plugin.resource_name())
    }

    /// A counter or gauge from `/stats`; `None` if absent or Envoy does not answer.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let stats = http::get(self.admin, "/stats").ok()?;
        stats.body.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(": ")?.trim().parse().ok())
    }

    /// Pushes a new `pluginConfig` through ECDS and waits (up to 30 s) until Envoy applied or refused it.
    pub fn push_config(&mut self, config_json: Option<String>) -> Result<Reload, String> {
        let plugin = Plugin { config_json, ..self.plugin.clone() };
        self.push_plugin(plugin)
    }

    /// Pushes a changed plugin (configuration, environment, failure policy) through ECDS, as istiod does when
    /// a `WasmPlugin` is edited, and waits (up to 30 s) until Envoy applied or refused it. Its namespace and
    /// name must stay: they name the ECDS resource the listener asks for.
    pub fn push_plugin(&mut self, plugin: Plugin) -> Result<Reload, String> {
        if plugin.resource_name() != self.plugin.resource_name() {
            return Err(format!("the filter is {}; it cannot be renamed", self.plugin.resource_name()));
        }
        let (applied_before, refused_before) = self.ecds_updates();
        self.plugin = plugin;
        self.version += 1;
        let filter = self.plugin.wasm_filter(&self.module.to_string_lossy());
        write_ecds(&self.dir, &self.plugin.resource_name(), &filter, self.version)
            .map_err(|e| format!("cannot write ECDS: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (applied, refused) = self.ecds_updates();
            if applied > applied_before {
                return Ok(Reload::Applied);
            }
            if refused > refused_before {
                return Ok(Reload::Refused);
            }
            if Instant::now() > deadline {
                return Err("Envoy neither applied nor refused the update in 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Where Envoy logs.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("envoy.log")
    }

    /// Everything Envoy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits for Envoy to exit by itself.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait()
    }

    /// Envoy's exit status if it has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Has the kernel stop Envoy if whoever started it dies without dropping it (SIGKILL, a crash, a test
/// harness's timeout), so that no orphaned Envoy keeps its ports. The signal goes when the starting *thread*
/// ends: start Envoy on a thread that outlives its use.
#[cfg(target_os = "linux")]
pub fn stop_with_this_process(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe calls are
    // allowed: prctl and getppid are system calls, and the error is built from errno without allocating.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the request took effect.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn stop_with_this_process(_command: &mut Command) {}

fn write_ecds(dir: &Path, resource_name: &str, filter: &Value, version: u32) -> io::Result<()> {
    let document = json!({
        "version_info": version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": resource_name,
            "typed_config": filter,
        }],
    });
    let temp = dir.join("ecds/.filter.json.tmp");
    std::fs::write(&temp, document.to_string())?;
    std::fs::rename(&temp, dir.join("ecds/filter.json"))
}

const MAIN_LISTENER: &str = "main";
const TLS_LISTENER: &str = "main-tls";

/// The routes send everything to the cluster `upstream`, except what a rule may steer to the cluster `second`
/// by rewriting: the host `second.internal`, the header `x-route-to: second`, or a path under `/second/`.
/// Routes are named, so rules can tell them apart by `xds.route_name` (the simulated proxy knows the same
/// table: [`crate::simulate`]): virtual host `second` with route `second-host`; virtual host `all` with
/// `second-header`, `second-path`, `api` (paths under `/api`) and `default`.
fn bootstrap(options: &EnvoyOptions, http_filter: Option<Value>) -> Value {
    let cluster = |name: &str, addr: SocketAddr| {
        let mut cluster = json!({
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
        });
        if options.use_client_protocol {
            if let Some(cluster) = cluster.as_object_mut() {
                // What istiod sets on a sidecar's cluster for a port whose protocol it detects (a `grpc` or
                // `http2` port gets HTTP/2 always): HTTP/1.1 clients keep HTTP/1.1, HTTP/2 and gRPC get HTTP/2.
                cluster.insert(
                    "typed_extension_protocol_options".into(),
                    json!({"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "use_downstream_protocol_config": {"http_protocol_options": {}, "http2_protocol_options": {}},
                    }}),
                );
            }
        }
        cluster
    };
    let mut connection_manager = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        // Istio's default path normalisation (meshConfig pathNormalization BASE).
        "normalize_path": true,
        // Istio's sidecars and gateways let WebSocket upgrades through; Envoy refuses them (403) without this.
        "upgrade_configs": [{"upgrade_type": "websocket"}],
        "route_config": {
            "name": "local",
            "virtual_hosts": [
                {
                    "name": "second",
                    "domains": ["second.internal", "second.internal:*"],
                    "routes": [{"name": "second-host", "match": {"prefix": "/"}, "route": {"cluster": "second"}}],
                },
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [
                        {
                            "name": "second-header",
                            "match": {"prefix": "/", "headers": [{"name": "x-route-to", "string_match": {"exact": "second"}}]},
                            "route": {"cluster": "second"},
                        },
                        {"name": "second-path", "match": {"path_separated_prefix": "/second"}, "route": {"cluster": "second"}},
                        {"name": "api", "match": {"path_separated_prefix": "/api"}, "route": {"cluster": "upstream"}},
                        {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "upstream"}},
                    ],
                },
            ],
        },
        "http_filters": options.filters_before.iter().cloned().chain(http_filter).chain([
            json!({"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}),
        ]).collect::<Vec<_>>(),
    });
    if options.access_log {
        if let Some(manager) = connection_manager.as_object_mut() {
            // The path as it went upstream; `upstream -` when the proxy answered itself.
            let format = "%START_TIME(%T)% %REQ(:METHOD)% %REQ(:PATH)% -> %RESPONSE_CODE% (upstream %UPSTREAM_HOST%)\n";
            manager.insert(
                "access_log".into(),
                json!([{
                    "name": "envoy.access_loggers.stdout",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                        "log_format": {"text_format_source": {"inline_string": format}},
                    },
                }]),
            );
        }
    }
    let listener = |name: &str, port: u16, tls: Option<&ListenerTls>| {
        json!({
            "name": name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            // Envoy sets SO_REUSEPORT by default (Linux): a second Envoy on a port in use would start and
            // take part of the traffic. Without it the bind fails ("Address already in use") and Envoy exits.
            "enable_reuse_port": false,
            "listener_filters": listener_filters(tls),
            "filter_chains": [filter_chain(tls, connection_manager.clone())],
        })
    };
    let mut listeners = vec![listener(MAIN_LISTENER, options.port, options.tls.as_ref())];
    if let Some(https) = &options.https_listener {
        listeners.push(listener(TLS_LISTENER, 0, Some(https)));
    }
    json!({
        // ECDS needs a node identity; this is the shape of an Istio sidecar's.
        // Node metadata as an Istio sidecar's carries it (a few of its keys), for `node.metadata.*`.
        "node": {
            "id": "sidecar~127.0.0.1~rulefilter-e2e.default~default.svc.cluster.local",
            "cluster": "rulefilter-e2e.default",
            "metadata": {"NAMESPACE": "default", "CLUSTER_ID": "Kubernetes", "LABELS": {"app": "rulefilter-e2e"}},
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        // What the README asks operators to add, so the labels in rulefilter's metric names become tags.
        "stats_config": {"stats_tags": crate::metrics::STATS_TAGS
            .iter()
            .map(|(tag, regex)| json!({"tag_name": tag, "regex": regex}))
            .collect::<Vec<_>>()},
        "static_resources": {
            "listeners": listeners,
            "clusters": [cluster("upstream", options.upstream), cluster("second", options.second_upstream)],
        },
    })
}

/// The `tls_inspector` on a TLS listener: it reads the SNI (`connection.requested_server_name`) before the
/// filter chain is chosen, as on every Istio listener.
fn listener_filters(tls: Option<&ListenerTls>) -> Vec<Value> {
    tls.iter()
        .map(|_| {
            json!({"name": "envoy.filters.listener.tls_inspector", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}})
        })
        .collect()
}

/// A listener's one filter chain: the connection manager, over TLS when `tls` says so.
fn filter_chain(tls: Option<&ListenerTls>, connection_manager: Value) -> Value {
    let mut chain = json!({"filters": [{
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": connection_manager,
    }]});
    if let (Some(tls), Some(object)) = (tls, chain.as_object_mut()) {
        let mut common = json!({"tls_certificates": [{
            "certificate_chain": {"filename": tls.certificate_chain.to_string_lossy()},
            "private_key": {"filename": tls.private_key.to_string_lossy()},
        }]});
        if let (Some(ca), Some(common)) = (&tls.client_ca, common.as_object_mut()) {
            common.insert("validation_context".into(), json!({"trusted_ca": {"filename": ca.to_string_lossy()}}));
        }
        object.insert(
            "transport_socket".into(),
            json!({"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": common,
                "require_client_certificate": tls.require_client_certificate,
            }}),
        );
    }
    chain
}
