//! `rulefilter image`: the module as an OCI image layout the istio-agent can pull, and (`--push`) the push
//! to a registry, checked against the digest known before it.

mod layout;
mod push;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lexopt::ValueExt;

use layout::{Format, Image};
use push::Reference;

const HELP: &str = "\
rulefilter image: package the Wasm module as an OCI image for Istio's WasmPlugin, and push it

Usage: rulefilter image [OPTIONS]

Writes an OCI image layout (oci-layout, index.json, blobs/sha256/...) holding one image manifest whose only
layer is a gzip'd tar with plugin.wasm, the form the istio-agent pulls (--format docker: a Docker v2
schema 2 image in skopeo's dir: layout). The bytes depend on the module alone,
so the manifest digest is printed (and written to <OUT>.digest) before anything is pushed.

Options:
      --module FILE     The Wasm module (default: build/rulefilter.wasm, made by `make build`)
      --out DIR         The layout's folder (default: build/image; the digest goes to build/image.digest)
      --tag TAG         The image's name inside the layout (default: the rulefilter version)
      --format FORMAT   oci (default) or docker (Docker v2 schema 2, same layer)
      --push REF        Then push with skopeo to host[:port]/repository[:tag] and check the registry
                        stored the same digest
      --insecure        Push over plain HTTP or without checking the registry's certificate (always so
                        for a registry on localhost / 127.0.0.1)
  -h, --help            Print this help

Examples:
  rulefilter image
  rulefilter image --push registry.example.com/platform/rulefilter:0.1.0

Exit status: 0 the image was written (and pushed), 2 it could not be.
";

struct Options {
    module: PathBuf,
    out: PathBuf,
    tag: String,
    format: Format,
    push: Option<Reference>,
    insecure: bool,
}

fn options(mut args: lexopt::Parser) -> Result<Option<Options>, lexopt::Error> {
    use lexopt::Arg::{Long, Short};
    let mut o = Options {
        module: PathBuf::from("build/rulefilter.wasm"),
        out: PathBuf::from("build/image"),
        tag: env!("CARGO_PKG_VERSION").to_owned(),
        format: Format::Oci,
        push: None,
        insecure: false,
    };
    while let Some(arg) = args.next()? {
        match arg {
            Long("module") => o.module = args.value()?.into(),
            Long("out") => o.out = args.value()?.into(),
            Long("tag") => o.tag = args.value()?.string()?,
            Long("format") => {
                let text = args.value()?.string()?;
                o.format = Format::parse(&text).ok_or(format!("--format is oci or docker, not {text:?}"))?;
            }
            Long("push") => o.push = Some(Reference::parse(&args.value()?.string()?)?),
            Long("insecure") => o.insecure = true,
            Long("help") | Short('h') => {
                out!("{HELP}");
                return Ok(None);
            }
            other => return Err(other.unexpected()),
        }
    }
    Ok(Some(o))
}

/// `build/image` → `build/image.digest`.
fn digest_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".digest");
    out.with_file_name(name)
}

/// Empties `dir` for a fresh layout, refusing to touch a folder that holds something else.
fn clear_layout(dir: &Path) -> Result<(), String> {
    let Ok(mut entries) = std::fs::read_dir(dir) else { return Ok(()) };
    let is_layout = [layout::OCI_LAYOUT_MARKER, layout::DIR_LAYOUT_MARKER].iter().any(|m| dir.join(m).is_file());
    if entries.next().is_some() && !is_layout {
        return Err(format!("{} is not empty and holds no image layout; give --out a new folder", dir.display()));
    }
    std::fs::remove_dir_all(dir).map_err(|e| format!("cannot clear the old layout in {}: {e}", dir.display()))
}

pub fn run(args: lexopt::Parser) -> Result<ExitCode, String> {
    let Some(o) = options(args).map_err(|e| e.to_string())? else { return Ok(ExitCode::SUCCESS) };
    let module = std::fs::read(&o.module).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("no Wasm module at {}: run `make build` first, or give --module", o.module.display())
        }
        _ => format!("cannot read the module {}: {e}", o.module.display()),
    })?;
    if !module.starts_with(b"\0asm") {
        return Err(format!("{} is not a Wasm module (it does not start with \\0asm)", o.module.display()));
    }
    let image = Image::new(&module, o.format).map_err(|e| format!("cannot build the image: {e}"))?;
    let digest = image.digest().to_owned();
    clear_layout(&o.out)?;
    image
        .write(&o.out, &o.tag, o.format)
        .map_err(|e| format!("cannot write the layout to {}: {e}", o.out.display()))?;
    let digest_file = digest_path(&o.out);
    std::fs::write(&digest_file, format!("{digest}\n"))
        .map_err(|e| format!("cannot write {}: {e}", digest_file.display()))?;
    eprintln!(
        "rulefilter: wrote {} from {} ({} bytes) to {}:{}; digest in {}",
        match o.format {
            Format::Oci => "an OCI image",
            Format::Docker => "a Docker v2 schema 2 image",
        },
        o.module.display(),
        module.len(),
        o.out.display(),
        o.tag,
        digest_file.display()
    );
    outln!("{digest}");
    let Some(reference) = o.push else { return Ok(ExitCode::SUCCESS) };
    eprintln!("rulefilter: pushing to {} with skopeo …", reference.full());
    let pushed = push::push(&o.out, &o.format.transport(&o.out, &o.tag), &reference, o.insecure)?;
    if pushed != digest {
        return Err(format!(
            "the registry stored {pushed} for {}, but the image built here is {digest}: do not pin either until this is explained (a registry or proxy that rewrites manifests?)",
            reference.full()
        ));
    }
    outln!("{}@{pushed}", reference.full());
    Ok(ExitCode::SUCCESS)
}
