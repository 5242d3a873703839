//! The image, end to end: `rulefilter image` is reproducible; docs/shipping.md's commands push it to a real
//! registry (Debian's `docker-registry` on 127.0.0.1); it is pulled back the way the istio-agent pulls
//! (istio/istio pkg/wasm/imagefetcher.go: manifest media type, last-layer media type, gzip, first
//! `plugin.wasm`, `\0asm`), and the pulled module serves the seed scenario in the real Envoy. The same
//! checker refuses the image forms Istio refuses, and the push fails clearly when it should.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rulefilter::local::envoy::stop_with_this_process;
use rulefilter::local::http::{read_message, Message};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{echo, fresh_dir, get, options_with_module, project_dir, start, wasm_module, Plugin};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const WASM_CONTENT_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// What go-containerregistry's `remote.Get` (the agent's client) sends in `Accept` for a manifest.
const AGENT_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v1+json,\
application/vnd.docker.distribution.manifest.v1+prettyjws,\
application/vnd.docker.distribution.manifest.v2+json,\
application/vnd.oci.image.manifest.v1+json,\
application/vnd.docker.distribution.manifest.list.v2+json,\
application/vnd.oci.image.index.v1+json";

fn progress(text: &str) {
    eprintln!("[image] {text}");
}

fn sha256_digest(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn rulefilter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rulefilter"))
        .args(args)
        .current_dir(project_dir())
        .output()
        .expect("run rulefilter")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------------------------
// A registry of our own, and just enough of its HTTP API.

/// The CNCF distribution registry (`/usr/bin/docker-registry`) on 127.0.0.1 only, with its storage in a temp
/// folder; stopped when dropped.
struct Registry {
    addr: SocketAddr,
    child: Child,
}

impl Registry {
    fn start() -> Registry {
        let binary = Path::new("/usr/bin/docker-registry");
        assert!(binary.is_file(), "{} is missing: `apt-get install docker-registry` (.ci/run does)", binary.display());
        let dir = fresh_dir("registry");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // Our own config: the packaged one listens on every interface and keeps images in /var/lib.
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        let mut command = Command::new(binary);
        command.arg("serve").arg(&config).stdout(Stdio::null()).stderr(std::fs::File::create(dir.join("log")).unwrap());
        stop_with_this_process(&mut command);
        let child = command.spawn().expect("start docker-registry");
        let registry = Registry { addr, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = rulefilter::local::http::get(addr, "/v2/").is_ok_and(|r| r.status == 200);
            if up || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(get(addr, "/v2/").status, 200, "the registry did not come up: {}", dir.join("log").display());
        assert_loopback_only(port);
        progress(&format!("registry serving on {addr} (storage in {})", dir.display()));
        registry
    }

    /// One request on a fresh connection.
    fn call(&self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Message {
        let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n", self.addr);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        (&stream).write_all(head.as_bytes()).unwrap();
        (&stream).write_all(body).unwrap();
        read_message(&mut BufReader::new(&stream), method == "HEAD").expect("an HTTP response from the registry")
    }

    /// Uploads a blob (monolithic: POST, then PUT with the digest) and returns its descriptor.
    fn push_blob(&self, repo: &str, media_type: &str, bytes: &[u8]) -> Value {
        let digest = sha256_digest(bytes);
        let started = self.call("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
        assert!(status(&started) == 202, "upload not started: {}", started.start_line);
        let location = header(&started, "location").unwrap();
        let path = location.split_once("://").map_or(location.as_str(), |(_, rest)| &rest[rest.find('/').unwrap()..]);
        let separator = if path.contains('?') { '&' } else { '?' };
        let put = self.call(
            "PUT",
            &format!("{path}{separator}digest={digest}"),
            &[("content-type", "application/octet-stream")],
            bytes,
        );
        assert_eq!(status(&put), 201, "blob not stored: {} {}", put.start_line, text(&put.body));
        json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
    }

    /// Stores a manifest under `tag`.
    fn put_manifest(&self, repo: &str, tag: &str, manifest: &Value) {
        let body = serde_json::to_vec(manifest).unwrap();
        let media_type = manifest["mediaType"].as_str().unwrap();
        let put = self.call("PUT", &format!("/v2/{repo}/manifests/{tag}"), &[("content-type", media_type)], &body);
        assert_eq!(status(&put), 201, "manifest not stored: {} {}", put.start_line, text(&put.body));
    }
}

/// Nothing answers on `port` at this machine's outward address (when it has one): the registry is not
/// reachable from the network.
fn assert_loopback_only(port: u16) {
    // Connecting a UDP socket sends nothing; it only picks the address a packet out would leave from.
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let Ok(()) = socket.connect("192.0.2.1:9") else { return };
    let outward = socket.local_addr().unwrap().ip();
    if outward.is_loopback() || outward.is_unspecified() {
        return;
    }
    let reached = TcpStream::connect_timeout(&SocketAddr::new(outward, port), Duration::from_secs(1));
    assert!(reached.is_err(), "the registry answers on {outward}:{port}, not only on 127.0.0.1");
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status(message: &Message) -> u16 {
    message.start_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn header(message: &Message, name: &str) -> Option<String> {
    message.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

// ---------------------------------------------------------------------------------------------------------
// The istio-agent's image fetcher, rule for rule.

/// What the agent would hand Envoy: the manifest digest it pulled, and the module.
struct Pulled {
    digest: String,
    module: Vec<u8>,
}

/// GETs a blob and checks its digest, as go-containerregistry does.
fn fetch_blob(registry: &Registry, repo: &str, descriptor: &Value) -> Result<Vec<u8>, String> {
    let digest = descriptor["digest"].as_str().ok_or("a descriptor without a digest")?;
    let response = registry.call("GET", &format!("/v2/{repo}/blobs/{digest}"), &[], b"");
    if status(&response) != 200 {
        return Err(format!("blob {digest}: {}", response.start_line));
    }
    if sha256_digest(&response.body) != digest {
        return Err(format!("blob {digest} does not match its digest"));
    }
    Ok(response.body)
}

/// A tar of `(name, bytes)` entries, in that order.
fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, name, *bytes).unwrap();
    }
    tar.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A gzip'd tar layer: the first entry whose base name is `plugin.wasm`.
fn plugin_from_tar_gzip(layer: &[u8]) -> Result<Vec<u8>, String> {
    if !layer.starts_with(&[0x1f, 0x8b]) {
        return Err("the layer is not gzip'd (the fetcher requires gzip)".into());
    }
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    for entry in archive.entries().map_err(|e| format!("not a tar: {e}"))? {
        let mut entry = entry.map_err(|e| format!("a broken tar entry: {e}"))?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        if path.file_name().is_some_and(|n| n == "plugin.wasm") {
            let mut module = Vec::new();
            entry.read_to_end(&mut module).map_err(|e| format!("cannot read plugin.wasm: {e}"))?;
            return Ok(module);
        }
    }
    Err("no plugin.wasm in the layer".into())
}

/// The compat variant: the last layer, of `media_type`, gunzipped, its first `plugin.wasm`.
fn plugin_from_last_layer(
    registry: &Registry,
    repo: &str,
    layers: &[Value],
    media_type: &str,
) -> Result<Vec<u8>, String> {
    let last = layers.last().ok_or("number of layers must be greater than zero")?;
    let found = last["mediaType"].as_str().unwrap_or_default();
    if found != media_type {
        return Err(format!("invalid media type {found} (expect {media_type})"));
    }
    plugin_from_tar_gzip(&fetch_blob(registry, repo, last)?)
}

/// The oci variant: exactly two layers, one of them the raw module.
fn plugin_from_wasm_layer(registry: &Registry, repo: &str, layers: &[Value]) -> Result<Vec<u8>, String> {
    if layers.len() != 2 {
        return Err(format!("number of layers must be 2 but got {}", layers.len()));
    }
    let wasm = layers
        .iter()
        .find(|l| l["mediaType"] == WASM_CONTENT_LAYER)
        .ok_or(format!("could not find the layer of type {WASM_CONTENT_LAYER}"))?;
    fetch_blob(registry, repo, wasm)
}

/// Pulls `repo:reference` as the istio-agent does, or says which of its rules refuses the image.
fn pull_as_istio_agent(registry: &Registry, repo: &str, reference: &str) -> Result<Pulled, String> {
    let response = registry.call("GET", &format!("/v2/{repo}/manifests/{reference}"), &[("accept", AGENT_ACCEPT)], b"");
    if status(&response) != 200 {
        return Err(format!("manifest {repo}:{reference}: {}", response.start_line));
    }
    let digest = header(&response, "docker-content-digest").ok_or("no Docker-Content-Digest")?;
    if sha256_digest(&response.body) != digest {
        return Err(format!("the manifest does not match Docker-Content-Digest {digest}"));
    }
    let content_type = header(&response, "content-type").unwrap_or_default();
    if content_type.contains("index") || content_type.contains("manifest.list") {
        return Err(format!("an image index ({content_type}): push a plain manifest"));
    }
    let manifest: Value = serde_json::from_slice(&response.body).map_err(|e| format!("manifest JSON: {e}"))?;
    // The fetcher reads the media type from the manifest itself (an OCI manifest may leave it out).
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    let module = if manifest["mediaType"] == DOCKER_MANIFEST {
        // (1) Docker schema 2: only its last layer, which must be a gzip'd rootfs tar.
        plugin_from_last_layer(registry, repo, &layers, DOCKER_LAYER).map_err(|e| format!("as a Docker image: {e}"))?
    } else {
        // (2) The compat variant: the last layer an OCI tar+gzip; failing that, (3) the oci variant.
        match plugin_from_last_layer(registry, repo, &layers, OCI_LAYER) {
            Ok(module) => module,
            Err(compat) => plugin_from_wasm_layer(registry, repo, &layers)
                .map_err(|oci| format!("as the compat variant: {compat}; as the oci variant: {oci}"))?,
        }
    };
    if !module.starts_with(b"\0asm") {
        return Err("the module does not start with \\0asm".into());
    }
    Ok(Pulled { digest, module })
}

// ---------------------------------------------------------------------------------------------------------
// The commands docs/shipping.md gives, read from the doc.

/// The `sh` block after the `<!-- commands: … -->` marker in docs/shipping.md.
fn shipping_commands() -> String {
    let doc = std::fs::read_to_string(project_dir().join("docs/shipping.md")).unwrap();
    let after = doc.split_once("<!-- commands:").expect("docs/shipping.md marks its tested commands").1;
    let block = after.split_once("```sh\n").unwrap().1.split_once("```").unwrap().0;
    block.to_owned()
}

/// Runs the doc's commands in bash (stop at the first failure) with `REGISTRY` set, `rulefilter` on the PATH
/// and the Makefile using the same binary (not a `cargo run` that would rebuild it under other tests).
fn run_shipping_commands(registry: &Registry) -> Output {
    let commands = shipping_commands();
    progress(&format!("running docs/shipping.md's commands:\n{commands}"));
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_rulefilter"));
    let path = format!("{}:{}", binary.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    Command::new("bash")
        .args(["-euo", "pipefail", "-c", &commands])
        .current_dir(project_dir())
        .env("REGISTRY", registry.addr.to_string())
        .env("RULEFILTER", &binary)
        .env("PATH", path)
        .stderr(Stdio::inherit())
        .output()
        .expect("run bash")
}

fn read_yaml(path: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(project_dir().join(path)).unwrap()).unwrap()
}

#[test]
fn the_shipping_commands_push_an_image_the_agent_pulls_and_envoy_serves() {
    let registry = Registry::start();
    let output = run_shipping_commands(&registry);
    assert!(output.status.success(), "the documented commands failed:\n{}", text(&output.stdout));
    let built = std::fs::read_to_string(project_dir().join("build/image.digest")).unwrap().trim().to_owned();
    let stdout = text(&output.stdout);
    let reference = format!("{}/platform/rulefilter:0.1.0", registry.addr);
    assert!(stdout.contains(&format!("{built}\n")), "make image printed no digest:\n{stdout}");
    assert!(stdout.contains(&format!("{reference}@{built}\n")), "make push printed no pushed reference:\n{stdout}");

    progress("pulling the pushed image back as the istio-agent does");
    let pulled = pull_as_istio_agent(&registry, "platform/rulefilter", "0.1.0").unwrap();
    assert_eq!(pulled.digest, built, "the registry's Docker-Content-Digest is not build/image.digest");
    let module = std::fs::read(project_dir().join("build/rulefilter.wasm")).unwrap();
    assert!(pulled.module == module, "the pulled module differs from build/rulefilter.wasm");

    // Both manifests the doc writes pin that digest, as Istio expects it (hex, no algorithm).
    let hex = built.strip_prefix("sha256:").unwrap();
    let by_tag = read_yaml("build/hello-wasmplugin.yaml");
    assert_eq!(by_tag["spec"]["url"], format!("oci://{reference}"));
    assert_eq!(by_tag["spec"]["sha256"], hex);
    let by_digest = read_yaml("build/hello-by-digest.yaml");
    assert_eq!(by_digest["spec"]["url"], format!("oci://{}/platform/rulefilter@{built}", registry.addr));
    assert_eq!(by_digest["spec"]["sha256"], hex);
    // And pulling by that digest gives the same image.
    assert_eq!(pull_as_istio_agent(&registry, "platform/rulefilter", &built).unwrap().module, module);

    progress("handing the pulled module to Envoy as the agent and istiod would");
    let dir = fresh_dir("pulled");
    let pulled_path = dir.join(format!("{}.wasm", hex));
    std::fs::write(&pulled_path, &pulled.module).unwrap();
    let plugin = Plugin::from_manifest(&by_tag).unwrap();
    assert_eq!(plugin.failure_policy, "FAIL_RELOAD");
    let hello_rules = read_yaml("manifests/hello-wasmplugin.yaml");
    assert_eq!(by_tag["spec"]["pluginConfig"], hello_rules["spec"]["pluginConfig"]);
    let upstream = echo();
    let envoy = start(options_with_module(pulled_path, plugin, upstream.addr));
    let hello = get(envoy.listener, "/hello");
    assert_eq!((hello.status, hello.body.as_str()), (200, "Hello from Wasm!\n"), "{hello:?}");
    assert_eq!(hello.header("x-service-name"), Some("my-custom-service"));
    let other = get(envoy.listener, "/other");
    assert_eq!(other.status, 200, "{other:?}");
    assert_eq!(other.header("x-upstream"), Some("echo"), "{other:?}");
    assert_eq!(other.header("x-service-name"), Some("my-custom-service"), "{other:?}");
}

#[test]
fn the_agents_rules_refuse_the_forms_istio_refuses_and_take_the_docker_form() {
    let registry = Registry::start();
    let module = std::fs::read(wasm_module()).unwrap();
    // Each form under its own tag, with why the fetcher refuses it.
    let refusals: [(&str, &str, &str, Vec<u8>, &str); 6] = [
        (
            "single-layer", // the form 43 plugins failed to pull in
            "application/vnd.module.wasm.config.v1+json",
            WASM_CONTENT_LAYER,
            module.clone(),
            "number of layers must be 2 but got 1",
        ),
        (
            "cncf-artifact", // what wkg, oci-wasm and Spin push
            "application/vnd.wasm.config.v0+json",
            "application/wasm",
            module.clone(),
            "invalid media type application/wasm (expect application/vnd.oci.image.layer.v1.tar+gzip)",
        ),
        (
            "plain-tar",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar",
            tar_of(&[("plugin.wasm", &module)]),
            "invalid media type application/vnd.oci.image.layer.v1.tar (expect",
        ),
        (
            "tar-labelled-gzip",
            "application/vnd.oci.image.config.v1+json",
            OCI_LAYER,
            tar_of(&[("plugin.wasm", &module)]),
            "the layer is not gzip'd",
        ),
        (
            "no-plugin-wasm",
            "application/vnd.oci.image.config.v1+json",
            OCI_LAYER,
            gzip(&tar_of(&[("module.wasm", &module)])),
            "no plugin.wasm in the layer",
        ),
        (
            "not-wasm",
            "application/vnd.oci.image.config.v1+json",
            OCI_LAYER,
            gzip(&tar_of(&[("docs/README", b"read me"), ("plugin.wasm", b"#!/bin/sh\n")])),
            "does not start with \\0asm",
        ),
    ];
    for (tag, config_type, layer_type, layer, why) in refusals {
        progress(&format!("pushing {tag}: a {layer_type} layer"));
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": registry.push_blob("refused", config_type, b"{}"),
            "layers": [registry.push_blob("refused", layer_type, &layer)],
        });
        registry.put_manifest("refused", tag, &manifest);
        let refused = pull_as_istio_agent(&registry, "refused", tag).err().unwrap_or_else(|| panic!("{tag} was taken"));
        assert!(refused.contains(why), "{tag}: expected {why:?}, got {refused}");
    }
    // The first plugin.wasm wins, wherever it sits.
    let first = gzip(&tar_of(&[("a/plugin.wasm", &module), ("plugin.wasm", b"\0asm-second")]));
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": registry.push_blob("taken", "application/vnd.oci.image.config.v1+json", b"{}"),
        "layers": [registry.push_blob("taken", OCI_LAYER, &first)],
    });
    registry.put_manifest("taken", "nested", &manifest);
    assert!(pull_as_istio_agent(&registry, "taken", "nested").unwrap().module == module);

    progress("pushing the Docker v2 schema 2 form with rulefilter image --format docker --push");
    let out = fresh_dir("docker").join("image");
    let module_arg = wasm_module();
    let reference = format!("{}/accepted/rulefilter:docker", registry.addr);
    let pushed = rulefilter(&[
        "image",
        "--format",
        "docker",
        "--module",
        module_arg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--push",
        &reference,
    ]);
    assert!(pushed.status.success(), "{}", text(&pushed.stderr));
    let digest = text(&pushed.stdout).lines().next().unwrap().to_owned();
    let pulled = pull_as_istio_agent(&registry, "accepted/rulefilter", "docker").unwrap();
    assert_eq!(pulled.digest, digest);
    assert!(pulled.module == module, "the Docker form's module differs");
    let manifest = registry.call("GET", "/v2/accepted/rulefilter/manifests/docker", &[("accept", AGENT_ACCEPT)], b"");
    assert_eq!(header(&manifest, "content-type").as_deref(), Some(DOCKER_MANIFEST));
}

#[test]
fn the_image_is_the_same_bytes_whenever_and_wherever_it_is_built() {
    let module = wasm_module();
    let mut layouts = Vec::new();
    for attempt in 0..2 {
        // Another folder, another copy of the module with another mtime, another second.
        let dir = fresh_dir(&format!("repro-{attempt}"));
        let copy = dir.join("module.wasm");
        std::fs::copy(&module, &copy).unwrap();
        let out = dir.join(format!("layout-{attempt}"));
        let built = rulefilter(&["image", "--module", copy.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert!(built.status.success(), "{}", text(&built.stderr));
        let printed = text(&built.stdout).trim().to_owned();
        let written = std::fs::read_to_string(dir.join(format!("layout-{attempt}.digest"))).unwrap();
        assert_eq!(written.trim(), printed, "printed and written digests differ");
        layouts.push((out, printed));
        if attempt == 0 {
            std::thread::sleep(Duration::from_millis(1100));
        }
    }
    let files = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = walk(dir)
            .into_iter()
            .map(|p| (p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        files.sort();
        files
    };
    let (first, second) = (&layouts[0], &layouts[1]);
    assert_eq!(first.1, second.1, "the manifest digest changed between builds");
    assert!(files(&first.0) == files(&second.0), "the layouts differ byte for byte");
    assert_eq!(
        files(&first.0).len(),
        5,
        "oci-layout, index.json and three blobs: {:?}",
        files(&first.0).iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    // The Docker form carries the very same layer and config blobs.
    let docker = fresh_dir("repro-docker").join("layout");
    let module_arg = module.to_str().unwrap();
    let built = rulefilter(&["image", "--format", "docker", "--module", module_arg, "--out", docker.to_str().unwrap()]);
    assert!(built.status.success(), "{}", text(&built.stderr));
    let docker_manifest: Value = serde_json::from_slice(&std::fs::read(docker.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(docker_manifest["mediaType"], DOCKER_MANIFEST);
    let index: Value = serde_json::from_slice(&std::fs::read(first.0.join("index.json")).unwrap()).unwrap();
    let oci_hex = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned();
    let oci_manifest: Value =
        serde_json::from_slice(&std::fs::read(first.0.join("blobs/sha256").join(oci_hex)).unwrap()).unwrap();
    assert_eq!(docker_manifest["layers"][0]["digest"], oci_manifest["layers"][0]["digest"]);
    assert_eq!(docker_manifest["config"]["digest"], oci_manifest["config"]["digest"]);
    assert_eq!(oci_manifest["layers"][0]["mediaType"], OCI_LAYER);
    assert_eq!(docker_manifest["layers"][0]["mediaType"], DOCKER_LAYER);
    assert_eq!(oci_manifest["annotations"]["module.wasm.image/variant"], "compat");
    // A different module gives a different digest (the comparison above can fail).
    let dir = fresh_dir("repro-other");
    let other = dir.join("other.wasm");
    std::fs::write(&other, b"\0asm\x01\0\0\0").unwrap();
    let built =
        rulefilter(&["image", "--module", other.to_str().unwrap(), "--out", dir.join("layout").to_str().unwrap()]);
    assert_ne!(text(&built.stdout).trim(), first.1);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// `rulefilter image --module MODULE --out OUT --push REFERENCE`, with `first_on_path` searched first for
/// programs (a stand-in skopeo).
fn push(module: &str, out: &Path, reference: &str, first_on_path: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rulefilter"));
    command.args(["image", "--module", module, "--out", out.to_str().unwrap(), "--push", reference]);
    if let Some(dir) = first_on_path {
        command.env("PATH", format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default()));
    }
    command.current_dir(project_dir()).output().expect("run rulefilter")
}

#[test]
fn a_push_fails_clearly_without_a_module_a_registry_or_a_matching_digest() {
    let dir = fresh_dir("failures");
    let out = dir.join("image");
    let missing =
        rulefilter(&["image", "--module", dir.join("none.wasm").to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("no Wasm module at") && text(&missing.stderr).contains("make build"),
        "{}",
        text(&missing.stderr)
    );

    // A folder that holds something else is not overwritten.
    let other = fresh_dir("not-a-layout");
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let module = wasm_module();
    let kept = rulefilter(&["image", "--module", module.to_str().unwrap(), "--out", other.to_str().unwrap()]);
    assert_eq!(kept.status.code(), Some(2));
    assert!(text(&kept.stderr).contains("holds no image layout"), "{}", text(&kept.stderr));
    assert!(other.join("notes.txt").is_file());

    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let module = module.to_str().unwrap();
    let down = push(module, &out, &format!("127.0.0.1:{port}/x:1"), None);
    assert_eq!(down.status.code(), Some(2));
    assert!(
        text(&down.stderr).contains(&format!("cannot reach the registry at 127.0.0.1:{port}")),
        "{}",
        text(&down.stderr)
    );

    // A registry that stores something else: a skopeo that reports another digest.
    let registry = Registry::start();
    let fake = dir.join("bin");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(
        fake.join("skopeo"),
        format!(
            "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --digestfile ] && echo sha256:{} > \"$2\"; shift; done\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    std::fs::set_permissions(fake.join("skopeo"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mismatch = push(module, &out, &format!("{}/x:1", registry.addr), Some(&fake));
    assert_eq!(mismatch.status.code(), Some(2));
    let stderr = text(&mismatch.stderr);
    assert!(stderr.contains(&format!("the registry stored sha256:{}", "0".repeat(64))), "{stderr}");
    assert!(stderr.contains(&format!("the image built here is {}", text(&mismatch.stdout).trim())), "{stderr}");

    // A malformed pin is refused before anything is written.
    let bad =
        rulefilter(&["manifest", "--name", "x", "--image", "oci://r.example.com/x@sha256:abc", "rules/hello.yaml"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("64 hex digits"), "{}", text(&bad.stderr));
}
