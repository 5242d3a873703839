//! `rulefilter hash-password`: the password hash a `basic_auth` user is written with. The password is read from
//! standard input or a prompt, never from the command line, where `ps` and shell history would keep it.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

use lexopt::ValueExt;

use rulefilter::credentials::base64;
use rulefilter::credentials::basic::MAX_AUTHORIZATION_BYTES;
use rulefilter::credentials::password::{self, PasswordHash};

const HELP: &str = "\
rulefilter hash-password: the salted hash of a password, for a basic_auth user

Usage: rulefilter hash-password [OPTIONS]

Reads the password from standard input (its first line; a trailing newline is not part of it) or, on a
terminal, asks for it twice without echoing it. Prints the hash for a `basic_auth` user's `hash`:
PBKDF2-HMAC-SHA256 with a random 16-byte salt, as `$pbkdf2-sha256$i=<iterations>$<salt>$<hash>`.

Options:
      --generate          Make a random password (128 bits, 22 characters) instead of reading one; it is
                          printed once, to standard error, then the hash to standard output
      --user NAME         Print a ready `basic_auth` users item (`- user: NAME` and `hash: …`)
      --iterations N      PBKDF2 iterations, 100 to 10000 (default 200; see docs/authentication.md)
  -h, --help              Print this help

Examples:
  rulefilter hash-password --user alice
  printf %s \"$PASSWORD\" | rulefilter hash-password
  rulefilter hash-password --generate --user ci-bot

Exit status: 0 printed, 2 the command failed.
";

/// Bytes of a generated password: 128 bits.
const GENERATED_BYTES: usize = 16;
/// Shorter passwords get a warning: a fast hash of few characters is guessed quickly once the hash is known.
const STRONG_BYTES: usize = 16;

pub fn run(mut args: lexopt::Parser) -> Result<ExitCode, String> {
    use lexopt::Arg::{Long, Short};
    let (mut generate, mut user, mut iterations) = (false, None, password::DEFAULT_ITERATIONS);
    let mut parse = || -> Result<bool, lexopt::Error> {
        while let Some(arg) = args.next()? {
            match arg {
                Long("generate") => generate = true,
                Long("user") => user = Some(args.value()?.string()?),
                Long("iterations") => iterations = args.value()?.parse()?,
                Long("help") | Short('h') => return Ok(false),
                other => return Err(other.unexpected()),
            }
        }
        Ok(true)
    };
    match parse() {
        Ok(true) => {}
        Ok(false) => {
            out!("{HELP}");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(format!("hash-password: {e}; see `rulefilter hash-password --help`")),
    }
    if !(password::MIN_ITERATIONS..=password::MAX_ITERATIONS).contains(&iterations) {
        return Err(format!(
            "hash-password: --iterations {iterations}; use {} to {}",
            password::MIN_ITERATIONS,
            password::MAX_ITERATIONS
        ));
    }
    if let Some(name) = &user {
        if name.is_empty() || name.contains(':') || name.chars().any(char::is_control) {
            return Err(format!(
                "hash-password: --user {name:?}: a user name is not empty and has no `:` or control characters"
            ));
        }
    }
    let secret = if generate {
        let generated = base64::encode_unpadded(&random_bytes(GENERATED_BYTES)?).replace(['+', '/'], "-");
        eprintln!("password: {generated}");
        generated.into_bytes()
    } else {
        read_password()?
    };
    // The header must fit: `Basic ` and base64 of `user:password` (4 characters per 3 bytes).
    let header_bytes = 6 + (user.as_deref().map_or(1, |u| u.len() + 1) + secret.len()).div_ceil(3) * 4;
    if secret.is_empty() {
        return Err("hash-password: the password is empty".to_owned());
    }
    if header_bytes > MAX_AUTHORIZATION_BYTES {
        return Err(format!(
            "hash-password: a password of {} bytes would make an authorization header over the {MAX_AUTHORIZATION_BYTES} bytes the filter reads",
            secret.len()
        ));
    }
    if !generate && secret.len() < STRONG_BYTES {
        eprintln!(
            "warning: a password of {} characters; one read from a leaked document falls to a brute force (see docs/authentication.md): use --generate or {STRONG_BYTES}+ random characters",
            secret.len()
        );
    }
    let hash = PasswordHash::new(&secret, &random_bytes(password::SALT_BYTES)?, iterations);
    match user {
        // Double-quoted: `$` and `/` are plain in YAML, but quoting keeps every YAML reader from guessing.
        Some(name) => outln!("- user: {}\n  hash: \"{hash}\"", yaml_string(&name)),
        None => outln!("{hash}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The password: from a terminal, asked twice without echo; otherwise the first line of standard input.
fn read_password() -> Result<Vec<u8>, String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = Vec::new();
        stdin
            .lock()
            .take(64 * 1024)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("hash-password: cannot read standard input: {e}"))?;
        if line.ends_with(b"\n") {
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
        }
        return Ok(line);
    }
    // Ctrl-C (or SIGTERM) while the echo is off would leave the shell typing blind: put the echo back first.
    let _ = ctrlc::set_handler(|| {
        stty("echo");
        eprintln!();
        std::process::exit(130);
    });
    let first = prompt("Password: ")?;
    let second = prompt("Again: ")?;
    if first != second {
        return Err("hash-password: the two passwords differ".to_owned());
    }
    Ok(first)
}

/// Asks on standard error and reads one line with the terminal's echo off (`stty`, put back afterwards).
fn prompt(text: &str) -> Result<Vec<u8>, String> {
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    let echo_off = stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if echo_off {
        stty("echo");
    }
    eprintln!();
    read.map_err(|e| format!("hash-password: cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).as_bytes().to_vec())
}

/// Runs `stty ARG` on the terminal; whether it worked.
fn stty(arg: &str) -> bool {
    std::process::Command::new("stty")
        .arg(arg)
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success())
}

/// Random bytes from the operating system.
fn random_bytes(count: usize) -> Result<Vec<u8>, String> {
    let mut bytes = vec![0u8; count];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("hash-password: cannot read /dev/urandom: {e}"))?;
    Ok(bytes)
}

/// A user name as a YAML scalar every reader takes as that string (YAML 1.1's `yes`, `on`, `1_000` included).
fn yaml_string(name: &str) -> String {
    serde_json::to_string(name).unwrap_or_default()
}
