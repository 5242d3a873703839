//! The module as an image in the form the istio-agent's image fetcher accepts: one image manifest (never an
//! index) whose only layer is a gzip'd tar holding `plugin.wasm`. The OCI form is written as an OCI image
//! layout (`oci-layout`, `index.json`, `blobs/sha256/…`); the Docker form in skopeo's `dir:` layout
//! (`manifest.json`, blobs named by hex, `version`), because skopeo's `oci:` transport only reads OCI
//! manifests from a layout.
//!
//! Every byte is a function of the module alone (one tar entry owned by 0:0 with a fixed mode and mtime, gzip
//! with no name, no timestamp, a fixed OS byte and level, JSON written from structs in a fixed field order), so
//! the manifest digest is known before anything is pushed and is the same on any machine and any day.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use flate2::{Compression, GzBuilder};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The file name the fetcher looks for in a tar layer (the first entry with this base name wins).
pub const MODULE_NAME: &str = "plugin.wasm";
/// The compat spec's annotation; the fetcher never reads it, but the spec asks for it.
const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// The layout's name for its one image, which `skopeo copy oci:DIR:TAG` selects.
const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The file that makes a folder an OCI image layout.
pub const OCI_LAYOUT_MARKER: &str = "oci-layout";
/// The file that makes a folder a skopeo `dir:` layout.
pub const DIR_LAYOUT_MARKER: &str = "version";
/// gzip's "unknown" operating system: the same header byte whatever machine builds the layer.
const GZIP_OS_UNKNOWN: u8 = 255;
/// Owner-readable-writable, world-readable: what an extracted `plugin.wasm` needs, nothing that varies.
const ENTRY_MODE: u32 = 0o644;

/// Which manifest schema the image uses. Both carry the same layer bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OCI image manifest, layer `application/vnd.oci.image.layer.v1.tar+gzip` (the default).
    Oci,
    /// Docker v2 schema 2, for registries and tools that want it.
    Docker,
}

struct MediaTypes {
    manifest: &'static str,
    config: &'static str,
    layer: &'static str,
}

impl Format {
    /// The skopeo transport that reads the folder [`Image::write`] makes: `oci:DIR:TAG` or `dir:DIR`.
    pub fn transport(self, dir: &Path, tag: &str) -> String {
        match self {
            Format::Oci => format!("oci:{}:{tag}", dir.display()),
            Format::Docker => format!("dir:{}", dir.display()),
        }
    }

    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "oci" => Some(Format::Oci),
            "docker" => Some(Format::Docker),
            _ => None,
        }
    }

    fn media_types(self) -> MediaTypes {
        match self {
            Format::Oci => MediaTypes {
                manifest: "application/vnd.oci.image.manifest.v1+json",
                config: "application/vnd.oci.image.config.v1+json",
                layer: "application/vnd.oci.image.layer.v1.tar+gzip",
            },
            Format::Docker => MediaTypes {
                manifest: "application/vnd.docker.distribution.manifest.v2+json",
                config: "application/vnd.docker.container.image.v1+json",
                layer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
            },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: &'static str,
    digest: String,
    size: usize,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct RootFs {
    r#type: &'static str,
    diff_ids: Vec<String>,
}

/// The image configuration: the fetcher ignores it, but registries and tools expect the required fields.
#[derive(Serialize)]
struct Config {
    architecture: &'static str,
    os: &'static str,
    rootfs: RootFs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

/// A content-addressed blob: its bytes and `sha256:<hex>`.
struct Blob {
    bytes: Vec<u8>,
    digest: String,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Blob {
        let digest = sha256_digest(&bytes);
        Blob { bytes, digest }
    }

    fn json(value: &impl Serialize) -> io::Result<Blob> {
        Ok(Blob::new(serde_json::to_vec(value).map_err(io::Error::other)?))
    }

    fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }

    fn descriptor(&self, media_type: &'static str) -> Descriptor {
        Descriptor { media_type, digest: self.digest.clone(), size: self.bytes.len(), annotations: BTreeMap::new() }
    }
}

/// `sha256:<lower-case hex>` of `bytes`, as OCI digests are written.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The uncompressed layer: a tar with `plugin.wasm` as its only entry.
fn layer_tar(module: &[u8]) -> io::Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header.set_path(MODULE_NAME)?;
    header.set_size(u64::try_from(module.len()).map_err(io::Error::other)?);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(ENTRY_MODE);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, module)?;
    builder.into_inner()
}

/// gzip of `bytes` with nothing that depends on the time or the machine: no file name, mtime 0, OS "unknown",
/// level 9.
fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder =
        GzBuilder::new().mtime(0).operating_system(GZIP_OS_UNKNOWN).write(Vec::new(), Compression::best());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// The image for `module`, ready to be written: every blob, and the manifest's descriptor.
pub struct Image {
    blobs: Vec<Blob>,
    manifest: Descriptor,
}

impl Image {
    pub fn new(module: &[u8], format: Format) -> io::Result<Image> {
        let types = format.media_types();
        let tar = layer_tar(module)?;
        let layer = Blob::new(gzip(&tar)?);
        let config = Blob::json(&Config {
            architecture: "wasm",
            os: "wasip1",
            rootfs: RootFs { r#type: "layers", diff_ids: vec![sha256_digest(&tar)] },
        })?;
        let mut annotations = BTreeMap::new();
        if format == Format::Oci {
            annotations.insert(VARIANT_ANNOTATION, "compat".to_owned());
        }
        let manifest = Blob::json(&Manifest {
            schema_version: 2,
            media_type: types.manifest,
            config: config.descriptor(types.config),
            layers: vec![layer.descriptor(types.layer)],
            annotations,
        })?;
        let descriptor = manifest.descriptor(types.manifest);
        Ok(Image { blobs: vec![layer, config, manifest], manifest: descriptor })
    }

    /// The manifest digest, `sha256:<hex>`: what a registry answers in `Docker-Content-Digest` and what a
    /// WasmPlugin's `sha256` pins.
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }

    /// Writes the image to `dir` (made if missing): an OCI layout naming the image `tag` in `index.json`, or
    /// for the Docker form skopeo's `dir:` layout.
    pub fn write(self, dir: &Path, tag: &str, format: Format) -> io::Result<()> {
        match format {
            Format::Oci => self.write_oci_layout(dir, tag),
            Format::Docker => self.write_dir_layout(dir),
        }
    }

    fn write_dir_layout(self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for blob in &self.blobs {
            std::fs::write(dir.join(blob.hex()), &blob.bytes)?;
        }
        if let Some(manifest) = self.blobs.iter().find(|b| b.digest == self.manifest.digest) {
            std::fs::write(dir.join("manifest.json"), &manifest.bytes)?;
        }
        std::fs::write(dir.join(DIR_LAYOUT_MARKER), "Directory Transport Version: 1.1\n")
    }

    fn write_oci_layout(self, dir: &Path, tag: &str) -> io::Result<()> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        for blob in &self.blobs {
            std::fs::write(blobs.join(blob.hex()), &blob.bytes)?;
        }
        let mut manifest = self.manifest;
        manifest.annotations.insert(REF_NAME_ANNOTATION, tag.to_owned());
        let index = Index {
            schema_version: 2,
            media_type: "application/vnd.oci.image.index.v1+json",
            manifests: vec![manifest],
        };
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).map_err(io::Error::other)?)?;
        std::fs::write(dir.join(OCI_LAYOUT_MARKER), br#"{"imageLayoutVersion":"1.0.0"}"#)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn the_layer_holds_only_plugin_wasm_owned_by_root_with_a_fixed_mtime() {
        let tar = layer_tar(b"\0asm\x01\0\0\0").unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<_> = archive.entries().unwrap().map(Result::unwrap).collect();
        assert_eq!(entries.len(), 1);
        let header = entries[0].header();
        assert_eq!(header.path().unwrap().to_str(), Some(MODULE_NAME));
        assert_eq!((header.uid().unwrap(), header.gid().unwrap(), header.mtime().unwrap()), (0, 0, 0));
        assert_eq!(header.mode().unwrap(), ENTRY_MODE);
    }

    #[test]
    fn the_gzip_header_has_no_name_no_time_and_the_unknown_os() {
        let gz = gzip(b"module").unwrap();
        // ID1 ID2 CM FLG MTIME(4) XFL OS: no FNAME flag, mtime 0, OS 255.
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
        assert_eq!(gz[3], 0, "no flags (no file name)");
        assert_eq!(&gz[4..8], &[0, 0, 0, 0]);
        assert_eq!(gz[9], GZIP_OS_UNKNOWN);
    }
}
