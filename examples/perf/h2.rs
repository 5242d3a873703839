//! Runs h2load (Debian `nghttp2-client`) at a fixed request rate over HTTP/2 (h2c, prior knowledge) and reads
//! its per-request log: below saturation, latency shows what a request costs rather than how long it queued.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What one fixed-rate run saw.
pub struct Latency {
    pub requests: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub statuses: BTreeMap<u16, u64>,
}

/// Whether h2load is installed.
pub fn available() -> bool {
    Command::new("h2load").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// `connections` clients, each sending `rate` requests a second for `duration`: GET `path` with `headers`.
pub fn run(
    listener: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    connections: u32,
    rate: u32,
    duration: Duration,
    log: &Path,
) -> Result<Latency, String> {
    let mut command = Command::new("h2load");
    command
        .arg(format!("--clients={connections}"))
        .arg("--max-concurrent-streams=1")
        .arg(format!("--rps={rate}"))
        .arg(format!("--duration={}", duration.as_secs().max(1)))
        .arg("--warm-up-time=1")
        .arg(format!("--log-file={}", log.display()));
    for (name, value) in headers {
        command.arg(format!("--header={name}: {value}"));
    }
    let output = command.arg(format!("http://{listener}{path}")).output().map_err(|e| format!("h2load: {e}"))?;
    if !output.status.success() {
        return Err(format!("h2load failed ({}):\n{}", output.status, String::from_utf8_lossy(&output.stdout)));
    }
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut durations = Vec::new();
    let mut statuses = BTreeMap::new();
    for line in text.lines() {
        let mut columns = line.split('\t').skip(1);
        let status = columns.next().and_then(|s| s.parse::<u16>().ok());
        let micros = columns.next().and_then(|s| s.parse::<u64>().ok());
        if let (Some(status), Some(micros)) = (status, micros) {
            *statuses.entry(status).or_insert(0) += 1;
            durations.push(micros);
        }
    }
    durations.sort_unstable();
    let percentile = |p: f64| {
        let at = ((durations.len() as f64 * p).ceil() as usize).saturating_sub(1);
        Duration::from_micros(durations.get(at).copied().unwrap_or(0))
    };
    Ok(Latency { requests: durations.len() as u64, p50: percentile(0.50), p99: percentile(0.99), statuses })
}
