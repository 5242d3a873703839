//! Runs wrk with mix.lua against a listener and reads what the script's done() printed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How hard to push.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub threads: u32,
    pub connections: u32,
    pub duration: Duration,
}

/// What one wrk run saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Completed requests.
    pub requests: u64,
    pub duration: Duration,
    pub connect_errors: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    pub timeouts: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
    pub statuses: BTreeMap<u16, u64>,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    /// Socket errors and timeouts, which no run may have.
    pub fn socket_errors(&self) -> u64 {
        self.connect_errors + self.read_errors + self.write_errors + self.timeouts
    }

    pub fn socket_error_text(&self) -> String {
        format!(
            "connect {}, read {}, write {}, timeout {}",
            self.connect_errors, self.read_errors, self.write_errors, self.timeouts
        )
    }
}

/// The script and the mix file, written where wrk can read them.
pub struct Script {
    script: PathBuf,
    mix: PathBuf,
}

impl Script {
    pub fn write(dir: &Path, name: &str, mix_lines: &str) -> Result<Script, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let script = dir.join("mix.lua");
        let mix = dir.join(format!("{name}.mix"));
        std::fs::write(&script, include_str!("mix.lua"))
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        std::fs::write(&mix, mix_lines).map_err(|e| format!("cannot write {}: {e}", mix.display()))?;
        Ok(Script { script, mix })
    }

    /// Runs wrk for `load.duration` against `listener`.
    pub fn run(&self, listener: SocketAddr, load: Load) -> Result<Report, String> {
        self.run_pinned(listener, load, None)
    }

    /// The same, with wrk on CPU `cpu` if given (taskset), away from the Envoy it measures.
    pub fn run_pinned(&self, listener: SocketAddr, load: Load, cpu: Option<usize>) -> Result<Report, String> {
        let output = crate::on_cpu("wrk", cpu)
            .arg(format!("-t{}", load.threads))
            .arg(format!("-c{}", load.connections))
            .arg(format!("-d{}s", load.duration.as_secs().max(1)))
            // A request slower than this counts as a timeout, which fails the run.
            .arg("--timeout=5s")
            .arg("-s")
            .arg(&self.script)
            .arg(format!("http://{listener}/"))
            .arg("--")
            .arg(&self.mix)
            .output()
            .map_err(|e| format!("cannot run wrk ({e}): install it (Debian: apt-get install wrk)"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "wrk failed ({}):\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        parse(&stdout).ok_or_else(|| format!("cannot read wrk's report:\n{stdout}"))
    }
}

fn parse(stdout: &str) -> Option<Report> {
    let mut report = Report::default();
    let mut summary_seen = false;
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("wrk ") else { continue };
        let mut words = rest.split_whitespace();
        let kind = words.next()?;
        let numbers: Vec<u64> = words.map(str::parse).collect::<Result<_, _>>().ok()?;
        let micros = |i: usize| numbers.get(i).map(|&n| Duration::from_micros(n));
        match kind {
            "summary" => {
                report.requests = *numbers.first()?;
                report.duration = micros(1)?;
                report.connect_errors = *numbers.get(2)?;
                report.read_errors = *numbers.get(3)?;
                report.write_errors = *numbers.get(4)?;
                report.timeouts = *numbers.get(5)?;
                summary_seen = true;
            }
            "latency" => {
                report.p50 = micros(0)?;
                report.p99 = micros(1)?;
                report.p999 = micros(2)?;
                report.max = micros(3)?;
            }
            "status" => {
                let status = u16::try_from(*numbers.first()?).ok()?;
                *report.statuses.entry(status).or_insert(0) += *numbers.get(1)?;
            }
            _ => {}
        }
    }
    summary_seen.then_some(report)
}
