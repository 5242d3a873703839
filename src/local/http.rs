//! Just enough HTTP/1.1 for the local setup: read one message off a connection, and send a simple request.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// An HTTP/1.1 message as read off the wire.
#[derive(Debug)]
pub struct Message {
    pub start_line: String,
    /// Names lower-cased, in order, repeats kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads one message (request or response): headers, then a body framed by content-length or chunked.
/// `answers_head`: the message is a response to HEAD, which has no body whatever its headers say. `None`
/// when the connection closes or the message is malformed.
pub fn read_message(reader: &mut impl BufRead, answers_head: bool) -> Option<Message> {
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
            let mut chunk = Vec::new();
            reader.by_ref().take(u64::try_from(size).ok()? + 2).read_to_end(&mut chunk).ok()?;
            if chunk.len() != size + 2 {
                return None;
            }
            chunk.truncate(size);
            body.extend(chunk);
            if size == 0 {
                break;
            }
        }
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
        reader.by_ref().take(length).read_to_end(&mut body).ok()?;
        if u64::try_from(body.len()).ok()? != length {
            return None;
        }
    }
    Some(Message { start_line: start_line.trim_end().to_owned(), headers, body })
}

/// A response as the client received it.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// Reads a response off a connection.
    pub fn read(reader: &mut impl BufRead, answers_head: bool) -> Option<HttpResponse> {
        let message = read_message(reader, answers_head)?;
        let status = message.start_line.split(' ').nth(1)?.parse().ok()?;
        Some(HttpResponse {
            status,
            headers: message.headers,
            body: String::from_utf8_lossy(&message.body).into_owned(),
        })
    }

    /// Every value of a header, in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }
}

/// `GET path` on a fresh connection (for Envoy's admin API and health checks), with a 5 s timeout.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<HttpResponse> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    (&stream).write_all(format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes())?;
    HttpResponse::read(&mut BufReader::new(&stream), false)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no HTTP response to GET {path}")))
}
