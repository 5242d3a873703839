//! Just enough HTTP/1.1 for the API server's webhook client: requests with a `Content-Length` body, keep-alive,
//! and hard bounds on header and body size. Generic over the stream, so it is tested on bytes in memory.

use std::io::{self, Read, Write};

/// Largest request line plus headers; the API server sends a few hundred bytes.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// One request.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without its query (the API server appends `?timeout=10s`).
    pub path: String,
    pub body: Vec<u8>,
    /// The client asked to close after this request (`Connection: close`, or HTTP/1.0).
    pub close: bool,
}

/// Why no request could be read; each but `Closed` and `Io` is answered before the connection is closed.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed the connection cleanly between requests.
    Closed,
    /// Reading failed: a timeout, a reset, broken TLS. Nothing can be answered.
    Io(io::Error),
    /// 413: the declared body is larger than the bound.
    TooLarge { declared: u64, limit: usize },
    /// 431: the request line and headers are larger than [`MAX_HEAD_BYTES`].
    HeadTooLarge,
    /// 400 (or 501 for a transfer coding): not a request this server can read.
    Malformed { status: u16, message: String },
}

/// Reads requests from one connection; bytes read past one request are kept for the next.
pub struct Reader {
    buffer: Vec<u8>,
    max_body: usize,
}

impl Reader {
    pub fn new(max_body: usize) -> Reader {
        Reader { buffer: Vec::new(), max_body }
    }

    /// The next request. `stream` may answer `100 Continue` to a client that waits for it.
    pub fn next<S: Read + Write>(&mut self, stream: &mut S) -> Result<Request, ReadError> {
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end;
            }
            if self.buffer.len() > MAX_HEAD_BYTES {
                return Err(ReadError::HeadTooLarge);
            }
            if self.fill(stream)? == 0 {
                return Err(if self.buffer.is_empty() {
                    ReadError::Closed
                } else {
                    ReadError::Io(io::ErrorKind::UnexpectedEof.into())
                });
            }
        };
        if head_end > MAX_HEAD_BYTES {
            return Err(ReadError::HeadTooLarge);
        }
        let head = self.buffer.get(..head_end).unwrap_or_default();
        let head = std::str::from_utf8(head).map_err(|_| malformed(400, "the request head is not UTF-8"))?;
        let head = Head::parse(head)?;
        self.buffer.drain(..head_end + 4);
        let length = match head.content_length {
            Some(length) if length > self.max_body as u64 => {
                return Err(ReadError::TooLarge { declared: length, limit: self.max_body });
            }
            // Within the bound just checked, so it fits in memory and in usize.
            Some(length) => usize::try_from(length).unwrap_or(usize::MAX),
            None => 0,
        };
        if head.expect_continue && length > self.buffer.len() {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").map_err(ReadError::Io)?;
            stream.flush().map_err(ReadError::Io)?;
        }
        while self.buffer.len() < length {
            if self.fill(stream)? == 0 {
                return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        }
        let body = self.buffer.drain(..length).collect();
        Ok(Request { method: head.method, path: head.path, body, close: head.close })
    }

    fn fill<S: Read>(&mut self, stream: &mut S) -> Result<usize, ReadError> {
        let mut chunk = [0u8; 16 * 1024];
        let read = loop {
            match stream.read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.map_err(ReadError::Io)?,
            }
        };
        self.buffer.extend_from_slice(chunk.get(..read).unwrap_or_default());
        Ok(read)
    }
}

fn malformed(status: u16, message: impl Into<String>) -> ReadError {
    ReadError::Malformed { status, message: message.into() }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// The parts of a request head this server acts on.
struct Head {
    method: String,
    path: String,
    content_length: Option<u64>,
    close: bool,
    expect_continue: bool,
}

impl Head {
    fn parse(text: &str) -> Result<Head, ReadError> {
        let mut lines = text.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed(400, format!("not an HTTP request line: {:?}", truncate(request_line))));
        };
        let close_by_default = match version {
            "HTTP/1.1" => false,
            "HTTP/1.0" => true,
            other => return Err(malformed(400, format!("HTTP/1.1 only, not {:?}", truncate(other)))),
        };
        let path = target.split('?').next().unwrap_or_default().to_owned();
        let mut head = Head {
            method: method.to_owned(),
            path,
            content_length: None,
            close: close_by_default,
            expect_continue: false,
        };
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return Err(malformed(400, format!("not a header line: {:?}", truncate(line))));
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => {
                    let length = value.parse::<u64>().map_err(|_| {
                        malformed(400, format!("Content-Length is not a number: {:?}", truncate(value)))
                    })?;
                    // Two different lengths would let a proxy in front read another request than this server.
                    if head.content_length.is_some_and(|earlier| earlier != length) {
                        return Err(malformed(400, "two different Content-Length headers"));
                    }
                    head.content_length = Some(length);
                }
                "transfer-encoding" => {
                    return Err(malformed(501, "Transfer-Encoding is not supported; send a Content-Length"));
                }
                "connection" => {
                    let tokens = || value.split(',').map(str::trim);
                    if tokens().any(|t| t.eq_ignore_ascii_case("close")) {
                        head.close = true;
                    } else if tokens().any(|t| t.eq_ignore_ascii_case("keep-alive")) {
                        head.close = false;
                    }
                }
                "expect" => head.expect_continue = value.eq_ignore_ascii_case("100-continue"),
                _ => {}
            }
        }
        Ok(head)
    }
}

/// At most 100 characters of client text in an error, so a hostile request cannot fill the log.
fn truncate(text: &str) -> String {
    text.chars().take(100).collect()
}

/// Writes one response. `close` adds `Connection: close`.
pub fn respond<W: Write>(stream: &mut W, status: u16, content_type: &str, body: &[u8], close: bool) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A client's bytes in, the server's bytes out.
    struct Duplex {
        input: io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn duplex(text: &[u8]) -> Duplex {
        Duplex { input: io::Cursor::new(text.to_vec()), output: Vec::new() }
    }

    #[test]
    fn keep_alive_requests_are_read_one_after_another() {
        let mut stream = duplex(
            b"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}\
              GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        let mut reader = Reader::new(100);
        let first = reader.next(&mut stream).unwrap();
        assert_eq!(
            (first.method.as_str(), first.path.as_str(), &first.body[..], first.close),
            ("POST", "/validate", &b"{}"[..], false)
        );
        let second = reader.next(&mut stream).unwrap();
        assert_eq!((second.path.as_str(), second.close), ("/healthz", true));
        assert!(matches!(reader.next(&mut stream), Err(ReadError::Closed)));
    }

    #[test]
    fn bounds_are_enforced_before_the_body_is_read() {
        let mut stream = duplex(b"POST /validate HTTP/1.1\r\nContent-Length: 101\r\n\r\n");
        assert!(matches!(Reader::new(100).next(&mut stream), Err(ReadError::TooLarge { declared: 101, limit: 100 })));
        let mut stream = duplex(&[b'a'; MAX_HEAD_BYTES + 10]);
        assert!(matches!(Reader::new(100).next(&mut stream), Err(ReadError::HeadTooLarge)));
    }

    #[test]
    fn expect_continue_is_answered() {
        let mut stream = duplex(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx");
        // The body is already buffered here, so no 100 is owed.
        Reader::new(10).next(&mut stream).unwrap();
        assert!(stream.output.is_empty());
        let mut stream = duplex(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(matches!(Reader::new(10).next(&mut stream), Err(ReadError::Io(_))));
        assert_eq!(stream.output, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn malformed_heads_are_refused_with_a_status() {
        let status = |text: &[u8]| match Reader::new(10).next(&mut duplex(text)) {
            Err(ReadError::Malformed { status, .. }) => status,
            other => panic!("{other:?}"),
        };
        assert_eq!(status(b"GARBAGE\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/2\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 501);
        assert_eq!(status(b"\xff / HTTP/1.1\r\n\r\n"), 400);
    }
}
