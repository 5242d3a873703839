//! `rulefilter webhook`, run as Kubernetes runs it: the real binary on loopback, a certificate made here by
//! `openssl`, and HTTPS requests from a client that verifies it against the test's CA, carrying
//! AdmissionReview JSON. Also checks the manifests under manifests/webhook/ against each other and the CRD.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use support::tls::client_config;

mod support;

const IMAGE: &str = "oci://registry.example.com/platform/rulefilter";

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("rulefilter-webhook-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output =
        Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is needed (Debian: openssl)");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A CA (`<prefix>ca.crt`) and a server certificate it signed for 127.0.0.1 and localhost
/// (`<prefix>tls.crt`, `<prefix>tls.key`).
fn make_certificates(dir: &Path, prefix: &str) {
    let file = |name: &str| format!("{prefix}{name}");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let (ca_key, ca_crt) = (file("ca.key"), file("ca.crt"));
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", &ca_key, "-out", &ca_crt, "-days", "2", "-subj", "/CN=rulefilter test CA"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(dir, &ca);
    let (key, csr, crt, ext) = (file("tls.key"), file("tls.csr"), file("tls.crt"), file("ext.cnf"));
    let mut request = vec!["req"];
    request.extend(ec);
    request.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
    openssl(dir, &request);
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
        ]
        .into_iter()
        .chain(["-extfile", &ext])
        .collect::<Vec<_>>(),
    );
}

/// A running `rulefilter webhook`; its log lines are collected, and it is killed when dropped.
struct Webhook {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    dir: TempDir,
}

impl Webhook {
    /// Starts it on a free loopback port with a fresh certificate; `extra` are more options.
    fn start(name: &str, extra: &[&str]) -> Webhook {
        let dir = TempDir::new(name);
        make_certificates(&dir.0, "");
        let cert = dir.0.join("tls.crt").to_string_lossy().into_owned();
        let key = dir.0.join("tls.key").to_string_lossy().into_owned();
        let mut args = vec!["webhook", "--listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key];
        args.extend(["--image", IMAGE]);
        args.extend(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_rulefilter"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().expect("the webhook says where it serves").unwrap();
        let address = first
            .split("https://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .parse()
            .unwrap();
        let log = Arc::new(Mutex::new(vec![first]));
        let collected = Arc::clone(&log);
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(|line| collected.lock().unwrap().push(line)));
        Webhook { child, address, log, dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.0.join("ca.crt")
    }

    /// One HTTPS request (`Connection: close`), verified against the test's CA.
    fn send(&self, method: &str, path: &str, body: &[u8]) -> Response {
        https(self.address, &self.ca(), method, path, body).unwrap()
    }

    fn review(&self, review: &Value) -> Value {
        let response = self.send("POST", "/validate?timeout=10s", review.to_string().as_bytes());
        assert_eq!(response.status, 200, "{}", response.text());
        let answer: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["response"]["uid"], review["request"]["uid"], "the answer carries the request's uid");
        answer["response"].clone()
    }

    fn healthy(&self) {
        let response = self.send("GET", "/healthz", b"");
        assert_eq!((response.status, response.text().as_str()), (200, "ok\n"));
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Whether the log shows `needle` within a few seconds (its lines arrive through a pipe).
    fn logged(&self, needle: &str) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while !self.log().contains(needle) {
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    body: Vec<u8>,
}

impl Response {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A verified TLS connection to the webhook, named as the API server names it (an IP SAN here).
fn connect(
    address: SocketAddr,
    ca: &Path,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let tcp = TcpStream::connect(address)?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(20)))?;
    let name = rustls::pki_types::ServerName::IpAddress(address.ip().into());
    let tls = rustls::ClientConnection::new(client_config(ca), name).map_err(std::io::Error::other)?;
    Ok(rustls::StreamOwned::new(tls, tcp))
}

fn https(address: SocketAddr, ca: &Path, method: &str, path: &str, body: &[u8]) -> std::io::Result<Response> {
    let mut stream = connect(address, ca)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(parse_response(&raw))
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no response head in {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Response { status, body: raw[split + 4..].to_vec() }
}

fn review(uid: &str, operation: &str, object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "extensions.istio.io", "version": "v1alpha1", "kind": "WasmPlugin"},
            "resource": {"group": "extensions.istio.io", "version": "v1alpha1", "resource": "wasmplugins"},
            "operation": operation,
            "namespace": object.pointer("/metadata/namespace").cloned().unwrap_or(json!("default")),
            "name": object.pointer("/metadata/name").cloned().unwrap_or(json!("")),
            "object": object,
            "dryRun": false,
        },
    })
}

/// A YAML manifest as the API server hands it to webhooks: JSON.
fn manifest_json(yaml: &str) -> Value {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    serde_json::to_value(value).unwrap()
}

fn shipped_manifest() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/hello-wasmplugin.yaml");
    manifest_json(&std::fs::read_to_string(path).unwrap())
}

/// Three problems, one with a hint, and a number where Istio would send a double.
const INVALID_PLUGIN: &str = r#"
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: broken, namespace: shop}
spec:
  url: oci://registry.example.com/platform/rulefilter:0.1.0
  pluginConfig:
    log_level: warning
    request:
      - name: greet
        match: {pathh: /hello}
      - name: teapot
        actions:
          - respond: {status: 700}
      - name: tag
        actions:
          - request_headers:
              set: {x-region: "${env.REGION}"}
"#;

#[test]
fn valid_plugins_are_allowed_and_invalid_ones_denied_with_every_validate_message() {
    let webhook = Webhook::start("verdicts", &[]);
    let allowed = webhook.review(&review("u-valid", "CREATE", shipped_manifest()));
    assert_eq!(allowed["allowed"], true, "{allowed}");

    let invalid = manifest_json(INVALID_PLUGIN);
    let denied = webhook.review(&review("u-invalid", "UPDATE", invalid.clone()));
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(denied["status"]["code"], 422);
    let message = denied["status"]["message"].as_str().unwrap();

    // Every line `rulefilter validate` prints for the same manifest, without its file:line:column.
    let file = webhook.dir.0.join("broken.yaml");
    std::fs::write(&file, INVALID_PLUGIN).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rulefilter")).arg("validate").arg(&file).output().unwrap();
    let validate = String::from_utf8(output.stdout).unwrap();
    let prefix = format!("{}:", file.display());
    let mut expected: Vec<String> = validate
        .lines()
        .map(|line| match line.strip_prefix(&prefix) {
            // `LINE:COLUMN: rest`
            Some(rest) => rest.splitn(3, ':').nth(2).unwrap().trim_start().to_owned(),
            None => line.to_owned(),
        })
        .collect();
    assert_eq!(expected.iter().filter(|l| l.starts_with("WasmPlugin shop/broken: ")).count(), 4, "{validate}");
    let (title, lines) = message.split_once('\n').unwrap();
    assert_eq!(title, "spec.pluginConfig is not a valid rulefilter rules document (4 problems):");
    let mut got: Vec<String> = lines.lines().map(str::to_owned).collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "the webhook's lines are validate's lines");
    assert!(message.contains("  hint: did you mean `path`?"), "{message}");
    assert!(webhook.logged("UPDATE shop/broken: denied (4 problems)"), "{}", webhook.log());

    // The environment is the manifest's own: with REGION inline, that problem is gone.
    let mut with_env = invalid;
    with_env["spec"]["vmConfig"] = json!({"env": [{"name": "REGION", "value": "eu"}]});
    let denied = webhook.review(&review("u-env", "CREATE", with_env));
    assert!(
        denied["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.pluginConfig is not a valid rulefilter rules document (3 problems)"),
        "{denied}"
    );

    // dryRun changes nothing about the answer (the webhook has no side effects to skip).
    let mut dry = review("u-dry", "CREATE", manifest_json(INVALID_PLUGIN));
    dry["request"]["dryRun"] = json!(true);
    assert_eq!(webhook.review(&dry)["allowed"], false);
}

#[test]
fn other_plugins_deletes_and_empty_configs_are_allowed() {
    let webhook = Webhook::start("scope", &[]);
    let mut elsewhere = manifest_json(INVALID_PLUGIN);
    elsewhere["spec"]["url"] = json!("oci://registry.example.com/platform/rulefilter-other:1");
    let response = webhook.review(&review("u-other", "CREATE", elsewhere.clone()));
    assert_eq!(response["allowed"], true, "not ours: {response}");

    // The label brings any plugin in.
    elsewhere["metadata"]["labels"] = json!({"rulefilter.io/validate": "true"});
    assert_eq!(webhook.review(&review("u-label", "CREATE", elsewhere))["allowed"], false);

    // Istio's default scheme: a url without oci:// is the same image.
    let mut bare = manifest_json(INVALID_PLUGIN);
    bare["spec"]["url"] = json!("registry.example.com/platform/rulefilter@sha256:0123");
    assert_eq!(webhook.review(&review("u-bare", "CREATE", bare))["allowed"], false);

    let delete = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u-delete", "operation": "DELETE", "namespace": "shop", "name": "broken",
                    "oldObject": manifest_json(INVALID_PLUGIN), "object": null},
    });
    assert_eq!(webhook.review(&delete)["allowed"], true);

    let mut empty = manifest_json(INVALID_PLUGIN);
    empty["spec"].as_object_mut().unwrap().remove("pluginConfig");
    assert_eq!(webhook.review(&review("u-empty", "CREATE", empty))["allowed"], true);

    let mut not_object = manifest_json(INVALID_PLUGIN);
    not_object["spec"]["pluginConfig"] = json!(["request"]);
    let response = webhook.review(&review("u-list", "CREATE", not_object));
    assert_eq!(response["allowed"], false);
    assert_eq!(
        response["status"]["message"],
        "WasmPlugin shop/broken: spec.pluginConfig: must be an object (a rules document), not a list"
    );
}

#[test]
fn malformed_reviews_and_garbage_get_clear_refusals_and_the_server_keeps_serving() {
    let mut webhook = Webhook::start("malformed", &["--timeout", "2"]);
    let refused = |body: &[u8], needle: &str| {
        let response = webhook.send("POST", "/validate", body);
        assert_eq!(response.status, 400, "{}", response.text());
        assert!(response.text().contains(needle), "{:?} lacks {needle:?}", response.text());
    };
    refused(b"{\"apiVersion\": ", "the body is not JSON");
    refused(b"", "the body is not JSON");
    refused(&[0xff, 0xfe, 0x00], "the body is not JSON");
    refused(br#"{"apiVersion":"v1","kind":"Pod"}"#, "expected an admission.k8s.io/v1 AdmissionReview");
    refused(
        br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}"#,
        "admissionReviewVersions",
    );
    refused(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}"#,
        "uid",
    );
    refused(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"CREATE"}}"#,
        "request.object is missing",
    );
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    refused(deep.as_bytes(), "recursion limit");

    // A deep pluginConfig the API server would pass (a rules document nested past every limit) is denied.
    let mut deep_config = shipped_manifest();
    let mut nested = json!("x");
    for _ in 0..40 {
        nested = json!({"all": [nested]});
    }
    deep_config["spec"]["pluginConfig"] = json!({"request": [{"name": "deep", "match": nested}]});
    assert_eq!(webhook.review(&review("u-deep", "CREATE", deep_config))["allowed"], false);

    assert_eq!(webhook.send("GET", "/validate", b"").status, 405);
    assert_eq!(webhook.send("GET", "/nothing", b"").status, 404);

    // Not TLS at all, and TLS that stops in the middle of the handshake.
    let mut plain = TcpStream::connect(webhook.address).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP"), "plain HTTP is not served: {answer:?}");
    let mut garbage = TcpStream::connect(webhook.address).unwrap();
    garbage.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0x00]).unwrap();
    garbage.write_all(&[0xab; 4096]).unwrap();
    drop(garbage);

    webhook.healthy();
    assert_eq!(webhook.review(&review("u-after", "CREATE", shipped_manifest()))["allowed"], true);
    assert!(webhook.child.try_wait().unwrap().is_none(), "the webhook is still running");
}

#[test]
fn oversized_reviews_get_413_and_large_real_ones_are_read() {
    let webhook = Webhook::start("oversized", &[]);
    // Declared too large: refused before a byte of the body is read.
    let mut stream = connect(webhook.address, &webhook.ca()).unwrap();
    let head = "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 4194305\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    // A client that sends its body before reading, as most do: the answer must survive the unread bytes.
    let _ = stream.write_all(&[b'{'; 512 * 1024]).and_then(|()| stream.flush());
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let response = parse_response(&raw);
    assert_eq!(response.status, 413);
    assert!(response.text().contains("at most 4194304"), "{}", response.text());

    // An UPDATE with object and oldObject of 1.5 MiB each (etcd's limit) is well within the bound.
    let mut big = shipped_manifest();
    big["metadata"]["annotations"] = json!({"filler": "x".repeat(1_500_000)});
    let mut update = review("u-big", "UPDATE", big.clone());
    update["request"]["oldObject"] = big;
    assert_eq!(webhook.review(&update)["allowed"], true);

    // Headers without end.
    let mut stream = connect(webhook.address, &webhook.ca()).unwrap();
    stream.write_all(b"POST /validate HTTP/1.1\r\n").unwrap();
    stream.write_all(format!("X-Filler: {}\r\n", "y".repeat(20_000)).as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert_eq!(parse_response(&raw).status, 431);
    webhook.healthy();
}

#[test]
fn slow_clients_are_dropped_after_the_timeout_while_others_are_served() {
    let webhook = Webhook::start("slow", &["--timeout", "1"]);
    let started = Instant::now();
    // Sends nothing at all (not even a TLS hello).
    let mut silent = TcpStream::connect(webhook.address).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // Completes TLS, then trickles a request a byte at a time, each well within the timeout.
    let trickler = {
        let (address, ca) = (webhook.address, webhook.ca());
        std::thread::spawn(move || {
            let mut stream = connect(address, &ca).unwrap();
            // Writes start failing once the server has closed its side (a reset, then a broken pipe).
            for byte in b"POST /validate HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().chain([b'a'; 100].iter()) {
                if stream.write_all(&[*byte]).and_then(|()| stream.flush()).is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            false
        })
    };
    webhook.healthy();
    let mut byte = [0u8; 1];
    let read = silent.read(&mut byte);
    assert!(matches!(read, Ok(0)) || read.is_err(), "the silent client was dropped: {read:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "dropped by the 1 s timeout, not by the test's own");
    assert!(trickler.join().unwrap(), "a client that keeps trickling is dropped at the deadline too");
    assert!(webhook.logged("dropped 127.0.0.1:"), "{}", webhook.log());
    webhook.healthy();
}

#[test]
fn connections_beyond_the_bound_wait_until_one_is_free() {
    let webhook = Webhook::start("bounded", &["--timeout", "1", "--max-connections", "1"]);
    let occupying = TcpStream::connect(webhook.address).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    // Served only once the silent connection has been dropped at its 1 s deadline.
    webhook.healthy();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(500), "the second connection waited for the first: {waited:?}");
    drop(occupying);
    webhook.healthy();
}

#[test]
fn on_sigterm_it_finishes_what_is_in_progress_and_exits() {
    let mut webhook = Webhook::start("sigterm", &["--timeout", "2"]);
    // A review half sent when the signal comes.
    let body = review("u-term", "CREATE", shipped_manifest()).to_string();
    let mut stream = connect(webhook.address, &webhook.ca()).unwrap();
    let head = format!("POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body.as_bytes()[..10]).unwrap();
    stream.flush().unwrap();
    let killed = Command::new("kill").args(["-TERM", &webhook.child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    assert!(webhook.logged("stopping in"), "{}", webhook.log());
    // New connections are still served while the API server's endpoints catch up.
    webhook.healthy();
    stream.write_all(&body.as_bytes()[10..]).unwrap();
    stream.flush().unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let response = parse_response(&raw);
    assert_eq!(response.status, 200);
    let head = String::from_utf8_lossy(&raw[..raw.len() - response.body.len()]).to_ascii_lowercase();
    assert!(head.contains("connection: close"), "a draining webhook closes kept-alive connections: {head}");
    let answer: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(answer["response"]["allowed"], true);
    let until = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = webhook.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < until, "the webhook exits after draining");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(webhook.logged("stopped"), "{}", webhook.log());
}

#[test]
fn kept_alive_connections_serve_one_review_after_another() {
    let webhook = Webhook::start("keepalive", &[]);
    let mut stream = connect(webhook.address, &webhook.ca()).unwrap();
    for uid in ["u-1", "u-2"] {
        let body = review(uid, "CREATE", shipped_manifest()).to_string();
        let head = format!("POST /validate?timeout=5s HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len());
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        stream.flush().unwrap();
        // Read exactly one response: its head, then Content-Length bytes.
        let mut raw = Vec::new();
        let mut byte = [0u8];
        while !raw.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            raw.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        assert!(!head.contains("connection: close"), "{head}");
        let length: usize =
            head.lines().find_map(|l| l.strip_prefix("content-length: ")).unwrap().trim().parse().unwrap();
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).unwrap();
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["response"]["uid"], uid);
    }
}

#[test]
fn a_rotated_certificate_is_served_without_a_restart() {
    let webhook = Webhook::start("rotate", &[]);
    webhook.healthy();
    // A new CA and certificate, moved into place as a Secret volume update does.
    make_certificates(&webhook.dir.0, "new-");
    let dir = &webhook.dir.0;
    std::fs::rename(dir.join("new-tls.key"), dir.join("tls.key")).unwrap();
    std::fs::rename(dir.join("new-tls.crt"), dir.join("tls.crt")).unwrap();
    let new_ca = dir.join("new-ca.crt");
    let response = https(webhook.address, &new_ca, "GET", "/healthz", b"").unwrap();
    assert_eq!(response.status, 200);
    assert!(https(webhook.address, &webhook.ca(), "GET", "/healthz", b"").is_err(), "the old certificate is gone");
    assert!(webhook.logged("certificate reloaded"), "{}", webhook.log());

    // A key that does not match keeps the working pair serving.
    make_certificates(dir, "other-");
    std::fs::rename(dir.join("other-tls.key"), dir.join("tls.key")).unwrap();
    assert_eq!(https(webhook.address, &new_ca, "GET", "/healthz", b"").unwrap().status, 200);
    assert!(webhook.logged("keeping the previous certificate"), "{}", webhook.log());
}

#[test]
fn start_up_errors_name_the_file_or_the_address() {
    let dir = TempDir::new("errors");
    make_certificates(&dir.0, "");
    make_certificates(&dir.0, "other-");
    let path = |name: &str| dir.0.join(name).to_string_lossy().into_owned();
    let start = |listen: &str, cert: &str, key: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_rulefilter"))
            .args(["webhook", "--listen", listen, "--tls-cert", cert, "--tls-key", key])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let missing = start("127.0.0.1:0", &path("nope.crt"), &path("tls.key"));
    assert!(
        missing.contains("--tls-cert") && missing.contains("nope.crt") && missing.contains("cannot read"),
        "{missing}"
    );
    let not_pem = start("127.0.0.1:0", &path("ext.cnf"), &path("tls.key"));
    assert!(not_pem.contains("holds no PEM CERTIFICATE block"), "{not_pem}");
    let no_key = start("127.0.0.1:0", &path("tls.crt"), &path("tls.crt"));
    assert!(no_key.contains("--tls-key"), "{no_key}");
    let mismatch = start("127.0.0.1:0", &path("tls.crt"), &path("other-tls.key"));
    assert!(mismatch.contains("not a usable pair"), "{mismatch}");

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let in_use = start(&address, &path("tls.crt"), &path("tls.key"));
    assert!(in_use.contains(&format!("cannot listen on {address}: the address is in use")), "{in_use}");
}

/// Every object of manifests/webhook/, in file order.
fn webhook_manifests() -> (Vec<PathBuf>, Vec<Value>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/webhook");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut objects = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(document).unwrap();
            objects.push(serde_json::to_value(value).unwrap());
        }
    }
    (files, objects)
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("manifests/webhook/ has no {kind} {name}"))
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().unwrap_or_else(|| panic!("not a list: {value}")).iter().map(|v| v.as_str().unwrap()).collect()
}

/// What kubectl-side YAML 1.1 tools (PyYAML) read is what serde_yaml (YAML 1.2) reads: no `on`, `no`, `0777`,
/// `1:30` taken as something else.
#[test]
fn webhook_manifests_read_the_same_in_yaml_1_1() {
    let (files, objects) = webhook_manifests();
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    let script = "import json, sys, yaml\n\
                  print(json.dumps([d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f))]))";
    let output = Command::new(&python).arg("-c").arg(script).args(&files).output().unwrap_or_else(|e| {
        panic!("{}: {e}; run `make envoy` (it installs PyYAML from tests/requirements.txt)", python.display())
    });
    assert!(output.status.success(), "PyYAML (make envoy installs it): {}", String::from_utf8_lossy(&output.stderr));
    let yaml11: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(yaml11, Value::Array(objects));
}

/// The manifests agree with each other, with Kubernetes' required fields, with Istio's CRD, and with the
/// options the binary takes.
#[test]
fn webhook_manifests_fit_together_and_match_the_crd() {
    let (_, objects) = webhook_manifests();
    let namespace = object(&objects, "Namespace", "rulefilter-system")["metadata"]["name"].as_str().unwrap();
    for o in &objects {
        assert!(o["apiVersion"].is_string() && o["kind"].is_string() && o["metadata"]["name"].is_string(), "{o}");
        let cluster_scoped = ["Namespace", "ValidatingWebhookConfiguration"].contains(&o["kind"].as_str().unwrap());
        assert_eq!(
            o["metadata"]["namespace"].as_str().is_none(),
            cluster_scoped,
            "namespace of {}",
            o["metadata"]["name"]
        );
        if !cluster_scoped {
            assert_eq!(
                o["metadata"]["namespace"], namespace,
                "{} is in the webhook's namespace",
                o["metadata"]["name"]
            );
        }
    }

    // The webhook's rules name exactly the CRD's group, served versions and plural.
    let crd_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/istio/wasmplugin-crd.yaml");
    let crd: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(crd_file).unwrap()).unwrap();
    let crd = serde_json::to_value(crd).unwrap();
    let served: Vec<&str> = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["served"] == true)
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    let configuration = object(&objects, "ValidatingWebhookConfiguration", "rulefilter-webhook");
    assert_eq!(configuration["apiVersion"], "admissionregistration.k8s.io/v1");
    let webhooks = configuration["webhooks"].as_array().unwrap();
    assert_eq!(webhooks.len(), 1);
    let webhook = &webhooks[0];
    assert!(webhook["name"].as_str().unwrap().split('.').count() >= 3, "a webhook name is fully qualified");
    let rules = webhook["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(strings(&rule["apiGroups"]), [crd["spec"]["group"].as_str().unwrap()]);
    assert_eq!(strings(&rule["apiVersions"]), served);
    assert_eq!(strings(&rule["resources"]), [crd["spec"]["names"]["plural"].as_str().unwrap()]);
    assert_eq!(rule["scope"], crd["spec"]["scope"]);
    assert_eq!(strings(&rule["operations"]), ["CREATE", "UPDATE"]);
    assert_eq!(webhook["sideEffects"], "None");
    assert_eq!(strings(&webhook["admissionReviewVersions"]), ["v1"]);
    assert_eq!(webhook["failurePolicy"], "Fail");
    assert!((1..=30).contains(&webhook["timeoutSeconds"].as_u64().unwrap()), "the API server allows 1 to 30 s");
    assert!(["Exact", "Equivalent"].contains(&webhook["matchPolicy"].as_str().unwrap()));

    // The API server reaches the Service, the Service the Deployment's pods, with the Certificate's name.
    let target = &webhook["clientConfig"]["service"];
    assert_eq!(target["path"], "/validate");
    assert_eq!(target["namespace"], namespace);
    let service = object(&objects, "Service", target["name"].as_str().unwrap());
    let service_port = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == target["port"])
        .expect("the webhook's port is one of the Service's");
    let deployment = object(&objects, "Deployment", "rulefilter-webhook");
    let pod = &deployment["spec"]["template"];
    let labels = pod["metadata"]["labels"].as_object().unwrap();
    for selector in [&service["spec"]["selector"], &deployment["spec"]["selector"]["matchLabels"]] {
        for (key, value) in selector.as_object().unwrap() {
            assert_eq!(labels.get(key), Some(value), "selector {key} matches the pods");
        }
    }
    let disruption = object(&objects, "PodDisruptionBudget", "rulefilter-webhook");
    assert_eq!(disruption["spec"]["selector"], deployment["spec"]["selector"]);
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2, "failurePolicy Fail wants more than one");

    let containers = pod["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == service_port["targetPort"] || p["containerPort"] == service_port["targetPort"])
        .expect("the Service's targetPort is a container port");
    let args = strings(&container["args"]);
    let flag = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .unwrap_or_else(|| panic!("no --{name}= in {args:?}"))
    };
    assert_eq!(args[0], "webhook");
    assert_eq!(flag("listen").rsplit(':').next().unwrap(), port["containerPort"].to_string());
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!((get["path"].as_str(), get["scheme"].as_str()), (Some("/healthz"), Some("HTTPS")), "{probe}");
        assert!(get["port"] == port["name"] || get["port"] == port["containerPort"], "{probe} port");
    }
    assert!(container["resources"]["requests"].is_object() && container["resources"]["limits"]["memory"].is_string());
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        pod["spec"]["serviceAccountName"],
        object(&objects, "ServiceAccount", "rulefilter-webhook")["metadata"]["name"]
    );

    // The certificate files come from the Secret the Certificate writes, for the Service's DNS name.
    let mount = &container["volumeMounts"][0];
    let volume = pod["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
    for file in [flag("tls-cert"), flag("tls-key")] {
        assert!(file.starts_with(&format!("{}/", mount["mountPath"].as_str().unwrap())), "{file} is in the mount");
    }
    let (ca_namespace, certificate_name) = configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap();
    assert_eq!(ca_namespace, namespace);
    let certificate = object(&objects, "Certificate", certificate_name);
    assert_eq!(volume["secret"]["secretName"], certificate["spec"]["secretName"]);
    let dns_name = format!("{}.{namespace}.svc", service["metadata"]["name"].as_str().unwrap());
    assert!(strings(&certificate["spec"]["dnsNames"]).contains(&dns_name.as_str()), "{dns_name}");
    let issuer = object(&objects, "Issuer", certificate["spec"]["issuerRef"]["name"].as_str().unwrap());
    assert!(issuer["spec"].is_object());

    // The real binary accepts the Deployment's arguments (certificate and address swapped for the test's).
    let dir = TempDir::new("manifest-args");
    make_certificates(&dir.0, "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rulefilter"))
        .args(args.iter().map(|arg| match arg.split_once('=') {
            Some(("--listen", _)) => "--listen=127.0.0.1:0".to_owned(),
            Some(("--tls-cert", _)) => format!("--tls-cert={}", dir.0.join("tls.crt").display()),
            Some(("--tls-key", _)) => format!("--tls-key={}", dir.0.join("tls.key").display()),
            _ => (*arg).to_owned(),
        }))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = BufReader::new(child.stderr.take().unwrap()).lines().next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.contains("serving https://127.0.0.1:") && first.contains(flag("image")), "{first}");
}
