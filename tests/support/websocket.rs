//! Just enough WebSocket (RFC 6455) over std sockets for the protocol tests: the HTTP/1.1 upgrade handshake, and
//! small frames both ways. The key is the RFC's own sample, so the accept value is known without SHA-1.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use rulefilter::local::echo::ReceivedRequest;
use rulefilter::local::http::{read_message, HttpResponse};

use super::Recorder;

/// `Sec-WebSocket-Key` of RFC 6455 section 1.3, and the `Sec-WebSocket-Accept` it calls for.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;

/// Writes one final frame; clients mask theirs (the RFC requires it), servers do not.
fn write_frame(out: &mut impl Write, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> std::io::Result<()> {
    let mut frame = vec![0x80 | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => frame.push(mask_bit | len as u8),
        len @ 126..=0xffff => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => frame.extend_from_slice(payload),
    }
    out.write_all(&frame)
}

/// Reads one frame: its opcode and unmasked payload. (Fragments are not joined: the tests send none.)
fn read_frame(input: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    input.read_exact(&mut head)?;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => {
            let mut len = [0u8; 2];
            input.read_exact(&mut len)?;
            u64::from(u16::from_be_bytes(len))
        }
        127 => {
            let mut len = [0u8; 8];
            input.read_exact(&mut len)?;
            u64::from_be_bytes(len)
        }
        len => u64::from(len),
    };
    let mut key = [0u8; 4];
    if masked {
        input.read_exact(&mut key)?;
    }
    let mut payload = vec![0u8; usize::try_from(len).unwrap()];
    input.read_exact(&mut payload)?;
    if masked {
        payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= key[i % 4]);
    }
    Ok((opcode, payload))
}

/// An upstream that completes the WebSocket handshake for the sample key (and answers 400 to anything else),
/// says `hello from upstream`, then answers each text or binary message with `echo: ` and the message, and a
/// close with a close. The 101 carries `x-upstream: websocket` and `x-powered-by: ws-upstream`. It records every
/// request and serves until the process ends.
pub struct WebSocketUpstream {
    pub addr: SocketAddr,
    /// Every request, as it arrived.
    pub received: Recorder<ReceivedRequest>,
}

impl WebSocketUpstream {
    pub fn start() -> WebSocketUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Recorder::new();
        let recorder = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let recorder = recorder.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &recorder);
                });
            }
        });
        WebSocketUpstream { addr, received }
    }
}

fn serve(stream: TcpStream, received: &Recorder<ReceivedRequest>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let Some(request) = read_message(&mut reader, false) else { return Ok(()) };
    let mut start = request.start_line.split(' ');
    let request = ReceivedRequest {
        method: start.next().unwrap_or_default().to_owned(),
        path: start.next().unwrap_or_default().to_owned(),
        headers: request.headers,
        body: String::new(),
    };
    received.push(request.clone());
    let upgrade = request.header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade || request.header("sec-websocket-key") != Some(SAMPLE_KEY) {
        return writer.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    }
    writer.write_all(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-accept: {SAMPLE_ACCEPT}\r\nx-upstream: websocket\r\nx-powered-by: ws-upstream\r\n\r\n"
        )
        .as_bytes(),
    )?;
    write_frame(&mut writer, TEXT, b"hello from upstream", None)?;
    loop {
        // The handshake's reader may already hold the first frame's bytes: keep reading through it.
        let (opcode, payload) = read_frame(&mut reader)?;
        match opcode {
            CLOSE => return write_frame(&mut writer, CLOSE, &payload, None),
            TEXT | BINARY => write_frame(&mut writer, opcode, &[b"echo: ".as_slice(), &payload].concat(), None)?,
            _ => {}
        }
    }
}

/// The client side of an upgraded connection.
pub struct WebSocketClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// Sends `GET path` asking to upgrade to WebSocket with the sample key, and `headers`. Returns the response
/// and, when it is a 101, the connection to exchange frames on.
pub fn connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (HttpResponse, Option<WebSocketClient>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut text = format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-key: {SAMPLE_KEY}\r\nsec-websocket-version: 13\r\n"
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let mut writer = stream.try_clone().unwrap();
    writer.write_all(text.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let response = HttpResponse::read(&mut reader, false).unwrap_or_else(|| panic!("no response to the upgrade"));
    let client = (response.status == 101).then_some(WebSocketClient { reader, writer });
    (response, client)
}

impl WebSocketClient {
    /// Sends one masked message.
    pub fn send(&mut self, opcode: u8, payload: &[u8]) {
        write_frame(&mut self.writer, opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d])).unwrap();
    }

    /// Reads one message: opcode and payload. Fails after 10 s.
    pub fn receive(&mut self) -> (u8, Vec<u8>) {
        read_frame(&mut self.reader).unwrap_or_else(|e| panic!("no WebSocket frame: {e}"))
    }
}
