//! `rulefilter`: the rules engine of the Wasm module, on the command line. Check documents before they reach
//! a proxy and run their test cases on a laptop, with the same code the module runs.

/// `print!` that ends the program quietly once its reader has gone (`rulefilter … | head`), as Unix tools
/// do, instead of panicking on the broken pipe.
macro_rules! out {
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*)) };
}

/// `println!`, ending quietly like [`out!`].
macro_rules! outln {
    () => { $crate::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

mod args;
mod cases;
mod dev;
mod envoy_filter;
mod hash_password;
mod image;
mod manifest;
mod pin;
mod report;
mod trace;
mod validate;
mod webhook;

use std::io::Write;
use std::process::ExitCode;

use lexopt::ValueExt;

const USAGE: &str = "\
rulefilter: check and try rulefilter rules documents without a proxy

Usage: rulefilter <COMMAND> [OPTIONS] [FILE]...

Commands:
  validate  Check rules documents and WasmPlugin manifests, as the module would
  test      Run rule test cases (<name>.test.yaml) on the simulated proxy
  trace     Show which rules a request matches, why the others do not, and what they change
  dev       Serve a rules document through a local Envoy, applying every saved change
  manifest  Wrap a rules document into an Istio WasmPlugin (or a plain Envoy's filter)
  image     Package the module as an OCI image for Istio, and push it
  webhook   Serve a Kubernetes admission webhook that refuses WasmPlugins with invalid rules
  hash-password  Hash a password for a basic_auth user (read from standard input or a prompt)

Run `rulefilter <COMMAND> --help` for a command's options and examples.
Exit status: 0 all good, 1 problems found or cases failed, 2 the command itself failed.
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("rulefilter: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    use lexopt::Arg::{Long, Short, Value};
    let mut args = lexopt::Parser::from_env();
    let command = match args.next().map_err(|e| e.to_string())? {
        Some(Value(command)) => command.string().map_err(|e| e.to_string())?,
        Some(Long("help") | Short('h')) => {
            out!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        Some(Long("version") | Short('V')) => {
            outln!("rulefilter {}", env!("CARGO_PKG_VERSION"));
            return Ok(ExitCode::SUCCESS);
        }
        Some(other) => return Err(format!("{}; see `rulefilter --help`", other.unexpected())),
        None => return Err(format!("a command is needed\n\n{USAGE}")),
    };
    match command.as_str() {
        "validate" => validate::run(args),
        "test" => cases::run(args),
        "trace" => trace::run(args),
        "dev" => dev::run(args),
        "manifest" => manifest::run(args),
        "image" => image::run(args),
        "webhook" => webhook::run(args),
        "hash-password" => hash_password::run(args),
        "help" => {
            out!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!(
            "unknown command {other:?}; the commands are validate, test, trace, dev, manifest, image, webhook and hash-password (see `rulefilter --help`)"
        )),
    }
}

/// Writes to standard output; exits with status 0 when the reader has closed the pipe.
fn write_stdout(text: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("rulefilter: cannot write the output: {error}");
        std::process::exit(2);
    }
}
