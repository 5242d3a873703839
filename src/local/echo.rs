//! The demo upstream: answers every request with what it received, as JSON, so whoever tries rules sees
//! exactly what the proxy sent on. Tests can also script its answer and read what it received.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;

use super::http::read_message;

/// A request as the upstream received it.
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
/// or, once [`EchoUpstream::script`]ed, with a given response. It records every request. It serves until the
/// process ends.
pub struct EchoUpstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<ReceivedRequest>>>,
    script: Arc<Mutex<Option<Scripted>>>,
}

impl EchoUpstream {
    /// An echo upstream named `echo` on a free loopback port.
    pub fn start() -> io::Result<Self> {
        Self::named("echo")
    }

    /// An echo upstream that says `x-upstream: <name>`, to tell upstreams apart.
    pub fn named(name: &str) -> io::Result<Self> {
        Self::serve("127.0.0.1:0", name)
    }

    pub fn start_on(addr: &str) -> io::Result<Self> {
        Self::serve(addr, "echo")
    }

    fn serve(addr: &str, name: &str) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let upstream =
            EchoUpstream { addr, received: Arc::new(Mutex::new(Vec::new())), script: Arc::new(Mutex::new(None)) };
        let (received, script, name) = (Arc::clone(&upstream.received), Arc::clone(&upstream.script), name.to_owned());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (received, script, name) = (Arc::clone(&received), Arc::clone(&script), name.clone());
                std::thread::spawn(move || serve_connection(stream, &name, &received, &script));
            }
        });
        Ok(upstream)
    }

    /// Paths (with query) of every request received so far.
    pub fn seen_paths(&self) -> Vec<String> {
        self.received().into_iter().map(|r| r.path).collect()
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        self.received.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Answers from now on with `response` (`None`: echo again).
    pub fn script(&self, response: Option<Scripted>) {
        *self.script.lock().unwrap_or_else(PoisonError::into_inner) = response;
    }
}

fn serve_connection(
    stream: TcpStream,
    name: &str,
    received: &Mutex<Vec<ReceivedRequest>>,
    script: &Mutex<Option<Scripted>>,
) {
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    // Keep-alive: Envoy reuses upstream connections.
    while let Some(request) = read_message(&mut reader, false) {
        let mut parts = request.start_line.splitn(3, ' ');
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        received.lock().unwrap_or_else(PoisonError::into_inner).push(ReceivedRequest {
            method: method.clone(),
            path: path.clone(),
            headers: request.headers.clone(),
        });
        let scripted = script.lock().unwrap_or_else(PoisonError::into_inner).clone();
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
