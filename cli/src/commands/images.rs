//! `cometctl images build`: the comet-server image from a release binary, with no base image and no registry.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::args::{ImagesBuildArgs, ImagesLoadArgs, ImagesSaveArgs};
use crate::context::Context;
use crate::error::Refusal;
use crate::folder;
use crate::image::{self, ImageContents, ImageFile};

/// What `images build` reports (`--output json` prints it as is).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Built {
    reference: String,
    image_id: String,
    layer_bytes: u64,
    libraries: Vec<String>,
}

/// The comet-server binary: `--binary`, else the one beside this cometctl (how install.sh and
/// `cargo build --release` lay them out).
fn find_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("comet-server")));
    match beside {
        Some(path) if folder::is_file(&path) => Ok(path),
        _ => Err(Refusal(
            "no comet-server binary beside cometctl: build it (`cargo build --release -p comet-server`) or pass \
             --binary PATH"
                .to_owned(),
        )
        .into()),
    }
}

/// The shared libraries `binary` links, read from this host at the paths the loader will look for them.
fn libraries(binary: &Path) -> Result<Vec<ImageFile>> {
    let output = Command::new("ldd").arg(binary).output().context("running ldd (Debian package libc-bin)")?;
    if !output.status.success() {
        bail!(
            "ldd {} failed: {}; the binary must be a dynamically linked Linux executable",
            binary.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let paths = image::parse_ldd(&String::from_utf8_lossy(&output.stdout)).map_err(anyhow::Error::msg)?;
    paths
        .into_iter()
        .map(|path| {
            let bytes = folder::read_bytes(Path::new(&path))?;
            Ok(ImageFile { path: path.trim_start_matches('/').to_owned(), mode: 0o755, bytes })
        })
        .collect()
}

pub fn build(context: &Context<'_>, args: &ImagesBuildArgs) -> Result<()> {
    let (spec, printer) = (context.spec()?, context.printer);
    let version = args.version.clone().unwrap_or_else(|| spec.images.comet.tag.clone());
    let reference = format!("{}:{version}", spec.images.comet.repository);
    let binary_path = find_binary(args.binary.as_deref())?;
    let binary = folder::read_bytes(&binary_path)?;
    let libraries = libraries(&binary_path)?;
    let ca_bundle = folder::read_bytes(&args.ca_bundle)
        .with_context(|| "the CA bundle (Debian package ca-certificates); pass --ca-bundle FILE".to_owned())?;
    let names = libraries.iter().map(|file| format!("/{}", file.path)).collect();
    let contents = ImageContents { binary, libraries, ca_bundle, version, reference: reference.clone() };
    let archive = image::archive(&contents, env!("CARGO_PKG_REPOSITORY")).map_err(anyhow::Error::msg)?;
    printer.note(&format!(
        "built {reference} from {} ({} bytes in one layer); loading it into the Docker Engine",
        binary_path.display(),
        archive.layer_size
    ));
    let engine = context.engine()?;
    engine.load_image(archive.bytes)?;
    let loaded =
        engine.image(&reference)?.with_context(|| format!("the Engine does not list {reference} after loading it"))?;
    if loaded.id != archive.image_id {
        bail!("the Engine loaded {reference} as {}, expected {}", loaded.id, archive.image_id);
    }
    let built = Built { reference, image_id: archive.image_id, layer_bytes: archive.layer_size, libraries: names };
    if printer.is_json() {
        printer.json(&built)?;
    } else {
        printer.result(&format!("{} {}", built.reference, built.image_id))?;
    }
    Ok(())
}

/// What `images save` reports.
#[derive(Debug, Serialize)]
struct Saved {
    file: String,
    images: Vec<String>,
    bytes: u64,
}

pub fn save(context: &Context<'_>, args: &ImagesSaveArgs) -> Result<()> {
    let (spec, printer) = (context.spec()?, context.printer);
    let named = spec.images.named();
    if let Some(unknown) = args.only.iter().find(|key| !named.iter().any(|(name, _)| name == key)) {
        let known: Vec<&str> = named.iter().map(|(name, _)| *name).collect();
        return Err(Refusal(format!("--only {unknown}: not an image of the spec (known: {})", known.join(", "))).into());
    }
    // By default the images the deployment runs: none for services at 0 replicas or turned off.
    let deployed = crate::deploy::deployed_images(spec)?;
    let wanted: Vec<String> = named
        .iter()
        .filter(|(name, image)| match args.only.is_empty() {
            true => deployed.contains(&image.reference()),
            false => args.only.iter().any(|key| key == name),
        })
        .map(|(_, image)| image.reference())
        .collect();
    let engine = context.engine()?;
    let mut missing = Vec::new();
    for reference in &wanted {
        if engine.image(reference)?.is_none() {
            missing.push(reference.clone());
        }
    }
    if !missing.is_empty() {
        return Err(Refusal(format!(
            "the Engine does not have {}: build comet-server with `cometctl images build`, load or pull the others \
             first, or choose images with --only",
            missing.join(", ")
        ))
        .into());
    }
    let references: Vec<&str> = wanted.iter().map(String::as_str).collect();
    printer.note(&format!("saving {} image(s) into {}", references.len(), args.file.display()));
    let bytes = folder::write_atomically(&args.file, |sink| Ok(engine.save_images(&references, sink)?))?;
    let saved = Saved { file: args.file.display().to_string(), images: wanted, bytes };
    if printer.is_json() {
        printer.json(&saved)?;
    } else {
        printer.result(&format!("{} ({} images, {} bytes)", saved.file, saved.images.len(), saved.bytes))?;
    }
    Ok(())
}

pub fn load(context: &Context<'_>, args: &ImagesLoadArgs) -> Result<()> {
    let printer = context.printer;
    let file = folder::open(&args.file)?;
    let engine = context.engine()?;
    let loaded = engine.load_images(file)?;
    if loaded.is_empty() {
        bail!(
            "the Engine loaded nothing from {}: is it an image bundle (`images save`, `docker save`)?",
            args.file.display()
        );
    }
    if printer.is_json() {
        printer.json(&loaded)?;
    } else {
        for reference in &loaded {
            printer.result(reference)?;
        }
    }
    Ok(())
}
