//! `rulefilter webhook`: a Kubernetes validating admission webhook, so `kubectl apply` of a WasmPlugin whose
//! rules document the module would refuse is refused at the API server, with `rulefilter validate`'s messages.
//!
//! A small HTTPS server on threads: one per connection, at most `--max-connections` at once, each request
//! bounded in size ([`MAX_REVIEW_BYTES`]) and time (`--timeout`), so no client can hold it or exhaust it.

#[path = "webhook_http.rs"]
mod http;
#[path = "webhook_review.rs"]
mod review;
#[path = "webhook_tls.rs"]
mod tls;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lexopt::ValueExt;
use rustls::{ServerConnection, StreamOwned};

use self::http::{ReadError, Reader, Request};
use self::review::Scope;
use self::tls::Certificates;

const HELP: &str = "\
rulefilter webhook: refuse WasmPlugins whose rules document the module would refuse (Kubernetes admission)

Usage: rulefilter webhook --listen ADDR --tls-cert FILE --tls-key FILE [--image REPO]...

Serves admission.k8s.io/v1 AdmissionReview at POST /validate over HTTPS, and GET /healthz for probes.
A WasmPlugin is checked when its spec.url is one of the --image repositories (any tag or digest), or when
it carries the label rulefilter.io/validate: \"true\"; all others are allowed untouched. The document
checked is the one a proxy would receive: the compact JSON of spec.pluginConfig, numbers as doubles, with
spec.vmConfig.env as the environment. A denial lists every problem, one line each, as `rulefilter validate`.
The certificate and key are read again when the files change.

Options:
      --listen ADDR          Address to serve on, e.g. 0.0.0.0:8443
      --tls-cert FILE        PEM certificate chain, the server's own certificate first
      --tls-key FILE         PEM private key (PKCS#8, PKCS#1 or SEC1)
      --image REPO           An image repository of the module, e.g. oci://registry.example.com/platform/rulefilter;
                             ending in / it covers every repository below; repeatable
      --timeout SECONDS      Longest wait for one request, and for its answer to be taken (default 10)
      --max-connections N    Connections served at once; more wait to be accepted (default 64)
  -h, --help                 Print this help

Example:
  rulefilter webhook --listen 0.0.0.0:8443 --tls-cert /tls/tls.crt --tls-key /tls/tls.key \\
      --image oci://registry.example.com/platform/rulefilter

On SIGTERM or Ctrl-C it keeps serving for min(--timeout, 5 s), closing each connection after its answer,
then finishes the requests in progress and exits with status 0.
Exit status: 2 when it cannot start (unreadable certificate, address in use).
";

/// Largest request body. The API server refuses objects over 3 MiB, and etcd stores at most 1.5 MiB each; an
/// UPDATE review carries the object twice (`object` and `oldObject`), so 4 MiB holds any real review.
pub const MAX_REVIEW_BYTES: usize = 4 << 20;

struct Options {
    listen: String,
    cert: PathBuf,
    key: PathBuf,
    scope: Scope,
    timeout: Duration,
    max_connections: usize,
}

fn options(mut args: lexopt::Parser) -> Result<Option<Options>, lexopt::Error> {
    use lexopt::Arg::{Long, Short};
    let (mut listen, mut cert, mut key) = (None, None, None);
    let mut scope = Scope::default();
    let mut timeout = Duration::from_secs(10);
    let mut max_connections = 64;
    while let Some(arg) = args.next()? {
        match arg {
            Long("listen") => listen = Some(args.value()?.string()?),
            Long("tls-cert") => cert = Some(PathBuf::from(args.value()?)),
            Long("tls-key") => key = Some(PathBuf::from(args.value()?)),
            Long("image") => {
                let image = args.value()?.string()?;
                if image.trim_start_matches("oci://").is_empty() {
                    return Err("--image takes an image repository, e.g. oci://registry.example.com/rulefilter".into());
                }
                scope.images.push(image);
            }
            Long("timeout") => {
                let seconds: f64 = args.value()?.parse()?;
                if !(0.1..=300.0).contains(&seconds) {
                    return Err(format!("--timeout is between 0.1 and 300 seconds, not {seconds}").into());
                }
                timeout = Duration::from_secs_f64(seconds);
            }
            Long("max-connections") => {
                max_connections = args.value()?.parse()?;
                if max_connections == 0 {
                    return Err("--max-connections must be at least 1".into());
                }
            }
            Long("help") | Short('h') => {
                out!("{HELP}");
                return Ok(None);
            }
            other => return Err(other.unexpected()),
        }
    }
    let missing = |flag: &str| lexopt::Error::from(format!("{flag} is needed; see `rulefilter webhook --help`"));
    Ok(Some(Options {
        listen: listen.ok_or_else(|| missing("--listen"))?,
        cert: cert.ok_or_else(|| missing("--tls-cert"))?,
        key: key.ok_or_else(|| missing("--tls-key"))?,
        scope,
        timeout,
        max_connections,
    }))
}

pub fn run(args: lexopt::Parser) -> Result<ExitCode, String> {
    let Some(options) = options(args).map_err(|e| e.to_string())? else { return Ok(ExitCode::SUCCESS) };
    let certificates = Certificates::load(&options.cert, &options.key)?;
    let listener = TcpListener::bind(&options.listen).map_err(|e| {
        let why = match e.kind() {
            io::ErrorKind::AddrInUse => "the address is in use (is another webhook running on it?)".to_owned(),
            io::ErrorKind::PermissionDenied => format!("{e} (ports below 1024 need privileges; use 8443)"),
            _ => e.to_string(),
        };
        format!("cannot listen on {}: {why}", options.listen)
    })?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    announce(address, &options.scope);
    let server = Arc::new(Server { scope: options.scope, timeout: options.timeout, draining: AtomicBool::new(false) });
    let slots = Arc::new(Slots { busy: Mutex::new(0), changed: Condvar::new(), max: options.max_connections });
    let stop = {
        let (server, slots) = (Arc::clone(&server), Arc::clone(&slots));
        move || server.drain(&slots)
    };
    ctrlc::set_handler(stop).map_err(|e| format!("cannot catch SIGTERM: {e}"))?;
    loop {
        // Wait for a free slot before accepting: a burst waits in the kernel's queue rather than being reset.
        slots.wait_for_room();
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                eprintln!("rulefilter webhook: cannot accept a connection: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let slot = slots.take();
        let config = certificates.current();
        let server = Arc::clone(&server);
        let spawned = std::thread::Builder::new().name(format!("webhook {peer}")).spawn(move || {
            server.connection(stream, config);
            drop(slot);
        });
        if let Err(e) = spawned {
            eprintln!("rulefilter webhook: cannot start a thread for {peer}: {e}");
        }
    }
}

fn announce(address: SocketAddr, scope: &Scope) {
    let which = if scope.images.is_empty() {
        format!("WasmPlugins labelled {}: \"true\"", review::LABEL)
    } else {
        format!("WasmPlugins of {} or labelled {}: \"true\"", scope.images.join(", "), review::LABEL)
    };
    eprintln!("rulefilter webhook: serving https://{address}/validate (health: /healthz); checking {which}");
}

/// Bounds the connections served at once.
struct Slots {
    busy: Mutex<usize>,
    changed: Condvar,
    max: usize,
}

/// One connection's place; freed when dropped, however its thread ends.
struct Slot(Arc<Slots>);

impl Slots {
    fn busy(&self) -> std::sync::MutexGuard<'_, usize> {
        self.busy.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once fewer than `max` connections are served. Only the accepting thread takes slots, so there
    /// is still room when it takes one right after.
    fn wait_for_room(&self) {
        let mut busy = self.busy();
        while *busy >= self.max {
            busy = self.changed.wait(busy).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn take(self: &Arc<Self>) -> Slot {
        *self.busy() += 1;
        Slot(Arc::clone(self))
    }

    /// Waits until no connection is served, or `until`; true when none is.
    fn wait_idle(&self, until: Instant) -> bool {
        let mut busy = self.busy();
        while *busy > 0 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            busy = self.changed.wait_timeout(busy, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut busy = self.0.busy();
        *busy = busy.saturating_sub(1);
        // Both the accepting thread and a draining one may wait.
        self.0.changed.notify_all();
    }
}

struct Server {
    scope: Scope,
    timeout: Duration,
    /// Stopping: every answer closes its connection, so the API server's pooled connections move elsewhere.
    draining: AtomicBool,
}

impl Server {
    /// On SIGTERM (a rollout, a drain): keep serving for a moment, since the API server routes reviews here
    /// until its endpoints catch up, then finish the requests in progress and exit.
    fn drain(&self, slots: &Slots) {
        self.draining.store(true, Ordering::SeqCst);
        let grace = self.timeout.min(Duration::from_secs(5));
        eprintln!("rulefilter webhook: stopping in {grace:?}, after the requests in progress");
        std::thread::sleep(grace);
        if !slots.wait_idle(Instant::now() + self.timeout) {
            eprintln!("rulefilter webhook: stopping with requests still in progress");
        }
        eprintln!("rulefilter webhook: stopped");
        std::process::exit(0);
    }

    /// Serves one connection until the client closes it, sends something unreadable, or is too slow.
    fn connection(&self, tcp: TcpStream, config: Arc<rustls::ServerConfig>) {
        let peer = tcp.peer_addr().map_or_else(|_| "a client".to_owned(), |a| a.to_string());
        let _ = tcp.set_nodelay(true);
        let tls = match ServerConnection::new(config) {
            Ok(tls) => tls,
            Err(e) => return eprintln!("rulefilter webhook: cannot start TLS for {peer}: {e}"),
        };
        let mut stream = Deadline { stream: StreamOwned::new(tls, tcp), until: Instant::now() };
        let mut reader = Reader::new(MAX_REVIEW_BYTES);
        loop {
            // Each request, from its first byte (or the idle wait before it) to its last, gets `timeout`.
            stream.until = Instant::now() + self.timeout;
            let request = match reader.next(&mut stream) {
                Ok(request) => request,
                Err(error) => return self.refuse(&mut stream, &peer, error),
            };
            stream.until = Instant::now() + self.timeout;
            let (status, content_type, body) = self.route(&request, &peer);
            let close = request.close || self.draining.load(Ordering::SeqCst);
            if http::respond(&mut stream, status, content_type, &body, close).is_err() || close {
                break;
            }
        }
        stream.close();
    }

    /// Answers what can be answered of an unreadable request, then closes.
    fn refuse(&self, stream: &mut Deadline, peer: &str, error: ReadError) {
        let (status, message) = match error {
            ReadError::Closed => return stream.close(),
            // Timeouts, resets and broken TLS: nothing can be answered.
            ReadError::Io(e) => return eprintln!("rulefilter webhook: dropped {peer}: {e}"),
            ReadError::TooLarge { declared, limit } => {
                (413, format!("the body is {declared} bytes; this webhook reads at most {limit}"))
            }
            ReadError::HeadTooLarge => (431, format!("the request head is over {} bytes", http::MAX_HEAD_BYTES)),
            ReadError::Malformed { status, message } => (status, message),
        };
        eprintln!("rulefilter webhook: {status} to {peer}: {message}");
        stream.until = Instant::now() + self.timeout;
        let _ = http::respond(stream, status, "text/plain; charset=utf-8", format!("{message}\n").as_bytes(), true);
        stream.close();
        stream.linger();
    }

    fn route(&self, request: &Request, peer: &str) -> (u16, &'static str, Vec<u8>) {
        const TEXT: &str = "text/plain; charset=utf-8";
        match (request.method.as_str(), request.path.as_str()) {
            ("GET" | "HEAD", "/healthz") => (200, TEXT, b"ok\n".to_vec()),
            ("POST", "/validate") => match review::answer(&request.body, &self.scope) {
                Ok((answer, decision)) => {
                    eprintln!("rulefilter webhook: {}: {}", decision.subject, decision.outcome);
                    (200, "application/json", answer.to_string().into_bytes())
                }
                Err(review::BadReview(message)) => {
                    eprintln!("rulefilter webhook: 400 to {peer}: {message}");
                    (400, TEXT, format!("{message}\n").into_bytes())
                }
            },
            (_, "/healthz" | "/validate") => (405, TEXT, b"use POST /validate or GET /healthz\n".to_vec()),
            _ => (404, TEXT, b"not found; the webhook serves POST /validate and GET /healthz\n".to_vec()),
        }
    }
}

/// A TLS stream whose every read and write must finish by `until`: a client that trickles bytes is cut off
/// as surely as one that sends nothing.
struct Deadline {
    stream: StreamOwned<ServerConnection, TcpStream>,
    until: Instant,
}

impl Deadline {
    fn arm(&self) -> io::Result<()> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.sock.set_read_timeout(Some(left))?;
        self.stream.sock.set_write_timeout(Some(left))
    }

    /// Says goodbye in TLS, so the client sees a clean end rather than a truncation.
    fn close(&mut self) {
        self.stream.conn.send_close_notify();
        // Only writes: waiting for the client's own close_notify would hold the thread for nothing.
        while self.stream.conn.wants_write() && self.arm().is_ok() {
            if self.stream.conn.write_tls(&mut self.stream.sock).is_err() {
                break;
            }
        }
    }
}

impl Deadline {
    /// After refusing a request whose body was not read: closing a socket with unread bytes makes the kernel
    /// reset the connection, and a reset can destroy the answer before the client reads it. So end our side,
    /// then discard what the client still sends until it closes, for a bounded time and amount.
    fn linger(&mut self) {
        const MOST: usize = 8 << 20;
        let _ = self.stream.sock.shutdown(std::net::Shutdown::Write);
        self.until = Instant::now() + Duration::from_secs(2);
        let mut discarded = 0;
        let mut scratch = [0u8; 16 * 1024];
        while discarded < MOST && self.arm().is_ok() {
            match self.stream.sock.read(&mut scratch) {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        self.stream.read(buf)
    }
}

impl Write for Deadline {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.arm()?;
        self.stream.flush()
    }
}
