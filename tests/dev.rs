//! `rulefilter dev` end to end: a real Envoy picks up every saved change without restarting, an invalid edit
//! is reported with its place and the last good rules keep serving, Ctrl-C (SIGTERM here) takes Envoy down
//! with it, and a port in use is refused rather than shared.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use support::{echo, envoy_binary, get, options, project_dir, start, wasm_module, Envoy, Plugin};

/// A running `rulefilter dev`, its standard output read line by line.
struct Dev {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Dev {
    /// On a free port.
    fn start(rules: &Path) -> Dev {
        Dev::start_on(rules, 0)
    }

    fn start_on(rules: &Path, port: u16) -> Dev {
        support::test_clock();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rulefilter"))
            .arg("dev")
            .arg(rules)
            .args(["--port", &port.to_string(), "--envoy"])
            .arg(envoy_binary())
            .arg("--module")
            .arg(wasm_module())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Dev { child, lines, seen: Vec::new() }
    }

    /// Waits (up to 60 s) for a line containing `text` and returns it.
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        support::progress(format_args!("rulefilter dev said {line:?}"));
                        return line;
                    }
                }
                Err(_) => panic!("no line with {text:?} from rulefilter dev; it printed:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits (up to 60 s) for it to exit by itself and returns its status and standard error; fails if it
    /// greets instead, having started an Envoy.
    fn wait_for_exit(&mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                self.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
                return (status, stderr);
            }
            while let Ok(line) = self.lines.try_recv() {
                assert!(!line.contains("Envoy on http://"), "rulefilter dev started when it should not have: {line}");
                self.seen.push(line);
            }
            assert!(Instant::now() < deadline, "rulefilter dev neither greeted nor exited in 60 s: {:?}", self.seen);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM, as `kill` and service managers do (Ctrl-C sends SIGINT, handled alike).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("sh").args(["-c", &format!("kill -TERM {pid}")]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate();
        }
    }
}

fn address_after(line: &str, marker: &str) -> SocketAddr {
    let rest = &line[line.find(marker).unwrap_or_else(|| panic!("{marker:?} in {line:?}")) + marker.len()..];
    rest.split([' ', ';']).next().unwrap().parse().unwrap()
}

const V1: &str = r#"request:
  - name: hello
    match: {path: /hello}
    actions: [{respond: {status: 200, body: "v1"}}]
  - name: audit
    match: {path: {segment_prefix: /admin}}
    actions: [{log: {level: warn, message: "admin access to ${path}"}}]
"#;

#[test]
fn dev_applies_each_saved_change_without_restarting_and_keeps_the_last_good_rules() {
    let dir = project_dir().join(format!("target/dev-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.yaml");
    std::fs::write(&rules, V1).unwrap();

    let mut dev = Dev::start(&rules);
    let greeting = dev.wait_for("rulefilter dev: Envoy on http://");
    let listener = address_after(&greeting, "http://");
    let admin = address_after(&dev.wait_for("Envoy's admin on"), "Envoy's admin on http://");
    let files = PathBuf::from(dev.wait_for("Envoy's files: ").split("Envoy's files: ").nth(1).unwrap());
    dev.wait_for("Watching");
    assert_eq!(get(listener, "/hello").body, "v1");

    std::fs::write(&rules, V1.replace("\"v1\"", "\"v2\"")).unwrap();
    dev.wait_for(": applied");
    assert_eq!(get(listener, "/hello").body, "v2");

    // An invalid edit: reported with its place, never sent to Envoy.
    std::fs::write(&rules, V1.replace("path: /hello", "path: {regex: '(v2'}")).unwrap();
    let problem = dev.wait_for("invalid regex");
    assert!(
        problem.ends_with(r#"rules.yaml:3:20: request[0] "hello": match.path.regex: invalid regex: unclosed group"#),
        "{problem}"
    );
    dev.wait_for("not applied; the last good rules keep serving");
    assert_eq!(get(listener, "/hello").body, "v2");

    // Fixed again: applied.
    std::fs::write(&rules, V1.replace("\"v1\"", "\"v3\"")).unwrap();
    dev.wait_for(": applied");
    assert_eq!(get(listener, "/hello").body, "v3");

    // The same Envoy all along: its ECDS counters count the start and both good edits; nothing was refused.
    let stats = get(admin, "/stats?filter=extension_config_discovery").body;
    assert!(stats.contains("~istio-translated-wasmplugin.update_success: 3"), "{stats}");
    assert!(stats.contains("~istio-translated-wasmplugin.update_rejected: 0"), "{stats}");

    // What rules log, and each request, are printed as they happen.
    assert_eq!(get(listener, "/admin/users").status, 200);
    assert_eq!(dev.wait_for("admin access"), "envoy [warning] audit: admin access to /admin/users");
    // Envoy writes the access line around the same time, before or after.
    let access = "GET /admin/users -> 200 (upstream 127.0.0.1:";
    if !dev.seen.iter().any(|line| line.contains(access)) {
        dev.wait_for(access);
    }

    let status = dev.terminate();
    assert!(status.success(), "{status}");
    assert!(std::net::TcpStream::connect(listener).is_err(), "Envoy still listens on {listener}");
    assert!(!files.exists(), "{} was left behind", files.display());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dev_refuses_to_start_on_an_invalid_document() {
    let output = Command::new(env!("CARGO_BIN_EXE_rulefilter"))
        .args(["dev", "tests/invalid/bad-regex.yaml", "--port", "0"])
        .current_dir(project_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tests/invalid/bad-regex.yaml:"), "{stderr}");
    assert!(stderr.contains("is not valid; fix it, then start again"), "{stderr}");
}

#[test]
fn envoy_dies_with_dev_even_when_dev_is_killed_outright() {
    let dir = project_dir().join(format!("target/dev-kill-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.yaml");
    std::fs::write(&rules, V1).unwrap();

    let mut dev = Dev::start(&rules);
    let listener = address_after(&dev.wait_for("rulefilter dev: Envoy on http://"), "http://");
    let files = PathBuf::from(dev.wait_for("Envoy's files: ").split("Envoy's files: ").nth(1).unwrap());
    dev.wait_for("Watching");
    assert_eq!(get(listener, "/hello").body, "v1");

    // SIGKILL: dev cannot stop Envoy itself; the kernel must.
    dev.child.kill().unwrap();
    dev.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(listener).is_ok() {
        assert!(Instant::now() < deadline, "Envoy outlived a killed rulefilter dev and still listens on {listener}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nobody was left to remove Envoy's files.
    std::fs::remove_dir_all(&files).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_dev_on_a_port_in_use_is_refused_and_the_first_keeps_serving_its_rules() {
    let dir = project_dir().join(format!("target/dev-port-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (first_rules, second_rules) = (dir.join("first.yaml"), dir.join("second.yaml"));
    std::fs::write(&first_rules, V1).unwrap();
    std::fs::write(&second_rules, V1.replace("\"v1\"", "\"second\"")).unwrap();

    let mut first = Dev::start(&first_rules);
    let listener = address_after(&first.wait_for("rulefilter dev: Envoy on http://"), "http://");
    first.wait_for("Watching");

    let mut second = Dev::start_on(&second_rules, listener.port());
    let (status, stderr) = second.wait_for_exit();
    assert_eq!(status.code(), Some(2), "{stderr}");
    let expected = format!(
        "rulefilter: port {} on 127.0.0.1 is already in use (another `rulefilter dev` or `make run`?): stop it, or \
         choose another port with --port (make run PORT=...)\n",
        listener.port()
    );
    assert_eq!(stderr, expected);

    // Every request still reaches the first one's rules (two Envoys sharing the port would split them).
    for _ in 0..20 {
        assert_eq!(get(listener, "/hello").body, "v1");
    }
    assert!(first.terminate().success());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What the check before starting cannot cover: the port taken between the check and Envoy's start. The
/// listener must refuse to share it (Envoy sets `SO_REUSEPORT` unless told not to).
#[test]
fn envoy_refuses_a_port_another_envoy_listens_on() {
    let upstream = echo();
    let plugin = |body: &str| {
        let rules =
            format!(r#"{{"request":[{{"name":"hello","actions":[{{"respond":{{"status":200,"body":"{body}"}}}}]}}]}}"#);
        Plugin::new("port", Some(rules))
    };
    let first = start(options(plugin("first"), &upstream));
    let port = first.listener.port();

    let second = Envoy::start(options(plugin("second"), &upstream).port(port));
    let failure = second.err().unwrap_or_else(|| panic!("a second Envoy started on {port}, sharing it"));
    assert!(failure.exit.is_some(), "Envoy should exit: {failure}");
    assert!(failure.log.contains(&format!("cannot bind '127.0.0.1:{port}': Address already in use")), "{failure}");
    for _ in 0..20 {
        assert_eq!(get(first.listener, "/").body, "first");
    }
}
