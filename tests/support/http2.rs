//! HTTP/2 without TLS (h2c, prior knowledge) for the protocol tests: a client, and an upstream that answers gRPC
//! calls with a gRPC response ending in trailers. Built on the `h2` crate with a single-threaded Tokio runtime.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use h2::RecvStream;
use http::HeaderMap;

use super::Recorder;

/// Header pairs with lower-case names, in order, repeats kept.
pub type Headers = Vec<(String, String)>;

/// What came back on one stream.
#[derive(Debug, Clone)]
pub struct H2Response {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// `None`: the stream ended without trailers (with the headers, or with the last data frame).
    pub trailers: Option<Headers>,
    /// The response headers ended the stream: no data, no trailers (gRPC's "Trailers-Only").
    pub headers_ended_stream: bool,
}

impl H2Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// A request as the HTTP/2 upstream received it.
#[derive(Debug, Clone)]
pub struct H2Received {
    pub method: String,
    /// Path with query.
    pub path: String,
    pub authority: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl H2Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

fn find<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn pairs(map: &HeaderMap) -> Headers {
    map.iter().map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// One request on a fresh h2c connection (prior knowledge: no upgrade dance, as gRPC clients do); reads the
/// whole response, trailers included. Fails after 10 s rather than hang.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> H2Response {
    request_in_pieces(addr, method, path, headers, &[body], Duration::ZERO)
}

/// [`request`] with the body sent as `pieces`, one data frame each, `pause` apart (a slow client).
pub fn request_in_pieces(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    pieces: &[&[u8]],
    pause: Duration,
) -> H2Response {
    let what = format!("HTTP/2 {method} {path}");
    let body_len: usize = pieces.iter().map(|p| p.len()).sum();
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut client = client.ready().await.unwrap();
        let mut builder = http::Request::builder().method(method).uri(format!("http://{addr}{path}"));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (response, mut stream) = client.send_request(builder.body(()).unwrap(), body_len == 0).unwrap();
        let sent: Vec<&[u8]> = pieces.iter().copied().filter(|p| !p.is_empty()).collect();
        for (i, piece) in sent.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(pause).await;
            }
            stream.reserve_capacity(piece.len());
            // The proxy may answer before the body is all sent (a refused upload) and close the stream.
            if stream.send_data(Bytes::copy_from_slice(piece), i + 1 == sent.len()).is_err() {
                break;
            }
        }
        let (parts, received) = response.await.unwrap_or_else(|e| panic!("{what}: {e}")).into_parts();
        let headers_ended_stream = received.is_end_stream();
        let (body, trailers) = read_to_end(received).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        H2Response {
            status: parts.status.as_u16(),
            headers: pairs(&parts.headers),
            body,
            trailers,
            headers_ended_stream,
        }
    };
    runtime()
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), exchange).await })
        .unwrap_or_else(|_| panic!("{what}: no complete response in 10 s"))
}

/// A stream's data and trailers.
async fn read_to_end(mut stream: RecvStream) -> Result<(Vec<u8>, Option<Headers>), h2::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = stream.data().await {
        let chunk = chunk?;
        let _ = stream.flow_control().release_capacity(chunk.len());
        body.extend_from_slice(&chunk);
    }
    let trailers = stream.trailers().await?;
    Ok((body, trailers.as_ref().map(pairs)))
}

/// A gRPC message on the wire: uncompressed flag, 4-byte big-endian length, the message.
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// The messages of a gRPC body; `None` if it is not a whole number of frames.
pub fn grpc_messages(mut body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut messages = Vec::new();
    while !body.is_empty() {
        let length = u32::from_be_bytes(body.get(1..5)?.try_into().ok()?) as usize;
        messages.push(body.get(5..5 + length)?.to_vec());
        body = &body[5 + length..];
    }
    Some(messages)
}

/// An h2c upstream that records every request. A gRPC call (`content-type: application/grpc…`) gets one
/// message, `reply to ` followed by the request's message, then the trailers `grpc-status: 0` and
/// `x-upstream-trailer: kept`; anything else gets `hello over h2\n`. Every response carries `x-upstream: h2`
/// and `x-powered-by: h2-upstream` (for rules to remove). It serves until the process ends.
pub struct H2Upstream {
    pub addr: SocketAddr,
    /// Every request, as it arrived.
    pub received: Recorder<H2Received>,
}

impl H2Upstream {
    pub fn start() -> H2Upstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Recorder::new();
        let recorder = received.clone();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((tcp, _)) = listener.accept().await {
                    let recorder = recorder.clone();
                    tokio::spawn(async move {
                        let Ok(mut connection) = h2::server::handshake(tcp).await else { return };
                        while let Some(Ok((request, respond))) = connection.accept().await {
                            tokio::spawn(answer(request, respond, recorder.clone()));
                        }
                    });
                }
            });
        });
        H2Upstream { addr, received }
    }
}

async fn answer(
    request: http::Request<RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    received: Recorder<H2Received>,
) {
    let (parts, stream) = request.into_parts();
    let Ok((body, _)) = read_to_end(stream).await else { return };
    let grpc = parts.headers.get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let message = grpc_messages(&body).and_then(|m| m.into_iter().next()).unwrap_or_default();
    received.push(H2Received {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        authority: parts.uri.authority().map(|a| a.to_string()).unwrap_or_default(),
        headers: pairs(&parts.headers),
        body,
    });
    let response = http::Response::builder()
        .status(200)
        .header("content-type", if grpc { "application/grpc" } else { "text/plain" })
        .header("x-upstream", "h2")
        .header("x-powered-by", "h2-upstream")
        .body(())
        .unwrap();
    let Ok(mut send) = respond.send_response(response, false) else { return };
    if grpc {
        let reply = grpc_frame(&[b"reply to ".as_slice(), &message].concat());
        let _ = send.send_data(Bytes::from(reply), false);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        trailers.insert("x-upstream-trailer", "kept".parse().unwrap());
        let _ = send.send_trailers(trailers);
    } else {
        let _ = send.send_data(Bytes::from_static(b"hello over h2\n"), true);
    }
}
