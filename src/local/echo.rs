//! The demo upstream: answers every request with what it received, as JSON, so whoever tries rules sees
//! exactly what the proxy sent on. Tests can also script its answer and read what it received.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;

use super::http::read_message;
use crate::compile::{is_header_value, is_token};

/// A request as the upstream received it.
#[derive(Clone, Debug)]
pub struct ReceivedRequest {
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Names lower-cased, in order, repeats kept.
    pub headers: Vec<(String, String)>,
    /// The body as text (odd bytes as U+FFFD).
    pub body: String,
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

/// What the echo upstream answers a request, which may ask for it: `x-echo-status: 503` sets the status (200 to
/// 599; anything else is ignored), and each `x-echo-header: name: value` adds a response header, replacing the
/// default of that name (`content-type: application/json`). So response rules (`status`, `response_headers`)
/// can be tried with curl against `rulefilter dev`, and the soak exercises them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Asked-for headers, names lower-cased.
    pub extra: Vec<(String, String)>,
}

impl Answer {
    pub const STATUS_HEADER: &'static str = "x-echo-status";
    pub const HEADER_HEADER: &'static str = "x-echo-header";

    /// What `headers` (names lower-cased) ask for.
    pub fn asked_for(headers: &[(String, String)]) -> Answer {
        let status = headers
            .iter()
            .find(|(n, _)| n == Self::STATUS_HEADER)
            .and_then(|(_, v)| v.trim().parse::<u16>().ok())
            .filter(|status| (200..=599).contains(status))
            .unwrap_or(200);
        let extra = headers
            .iter()
            .filter(|(n, _)| n == Self::HEADER_HEADER)
            .filter_map(|(_, v)| v.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .filter(|(name, value)| {
                is_token(name)
                    && is_header_value(value)
                    && !matches!(name.as_str(), "content-length" | "transfer-encoding")
            })
            .collect();
        Answer { status, extra }
    }

    /// The response headers, content length aside: the defaults, then the asked-for ones.
    pub fn headers(&self, upstream_name: &str) -> Vec<(String, String)> {
        let mut headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-upstream".to_owned(), upstream_name.to_owned()),
        ];
        headers.retain(|(name, _)| !self.extra.iter().any(|(asked, _)| asked == name));
        headers.extend(self.extra.iter().cloned());
        headers
    }
}

/// 1xx, 204 and 304 responses carry no body, nor a length.
fn carries_body(status: u16) -> bool {
    !matches!(status, 100..=199 | 204 | 304)
}

/// An HTTP/1.1 response as the upstream writes it; the answer to a HEAD request keeps the length, not the body.
fn response_text(status: u16, reason: &str, headers: &[(String, String)], body: &str, head: bool) -> String {
    let mut text = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if carries_body(status) {
        text.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        if !head {
            text.push_str(body);
        }
    } else {
        text.push_str("\r\n");
    }
    text
}

/// An upstream that answers every request with what it received, as JSON:
/// `{"method": …, "path": …, "headers": [[name, value], …], "body": …}` and the header `x-upstream: <name>`
/// (a request may ask for another status and more headers: see [`Answer`]); or, once
/// [`EchoUpstream::script`]ed, with a given response. It records every request. It serves until the
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
            body: String::from_utf8_lossy(&request.body).into_owned(),
        });
        let scripted = script.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let head = method == "HEAD";
        let response = match scripted {
            Some(scripted) => response_text(scripted.status, "Scripted", &scripted.headers, &scripted.body, head),
            None => {
                let body = json!({
                    "method": method,
                    "path": path,
                    "headers": request.headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
                    "body": String::from_utf8_lossy(&request.body),
                })
                .to_string();
                let asked = Answer::asked_for(&request.headers);
                response_text(asked.status, "Echo", &asked.headers(name), &body, head)
            }
        };
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(headers: &[(&str, &str)]) -> Answer {
        let headers: Vec<(String, String)> = headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        Answer::asked_for(&headers)
    }

    #[test]
    fn a_request_may_ask_for_its_status_and_headers() {
        let plain = asked(&[("accept", "*/*")]);
        assert_eq!(plain, Answer { status: 200, extra: vec![] });
        assert_eq!(
            plain.headers("echo"),
            [("content-type".into(), "application/json".into()), ("x-upstream".into(), "echo".into())]
        );

        let failing = asked(&[
            ("x-echo-status", "503"),
            ("x-echo-header", "Content-Type: text/html; charset=utf-8"),
            ("x-echo-header", "retry-after: 5"),
        ]);
        assert_eq!(failing.status, 503);
        assert_eq!(
            failing.headers("echo"),
            [
                ("x-upstream".to_owned(), "echo".to_owned()),
                ("content-type".to_owned(), "text/html; charset=utf-8".to_owned()),
                ("retry-after".to_owned(), "5".to_owned()),
            ]
        );
        assert!(!carries_body(asked(&[("x-echo-status", "204")]).status));
    }

    #[test]
    fn what_cannot_be_answered_safely_is_ignored() {
        for status in ["99", "101", "600", "abc", ""] {
            assert_eq!(asked(&[("x-echo-status", status)]).status, 200, "{status}");
        }
        for header in ["no colon", ": empty name", "bad name: x", "content-length: 5", "transfer-encoding: chunked"] {
            assert_eq!(asked(&[("x-echo-header", header)]).extra, vec![], "{header}");
        }
    }
}
