//! Images: load and save bundles, pull, inspect.

use bollard::query_parameters::ImportImageOptionsBuilder;
use futures::StreamExt as _;

use super::{Engine, EngineError};
use crate::plan::observed::LocalImage;

impl Engine {
    /// Loads a `docker save` archive (`POST /images/load`).
    pub fn load_image(&self, archive: Vec<u8>) -> Result<(), EngineError> {
        let options = ImportImageOptionsBuilder::default().quiet(true).build();
        self.runtime.block_on(async {
            let mut progress = self.docker.import_image(options, bollard::body_full(archive.into()), None);
            while let Some(step) = progress.next().await {
                let step = step.map_err(|error| EngineError(format!("loading the image: {error}")))?;
                if let Some(error) = step.error {
                    return Err(EngineError(format!("the Engine refused the image: {error}")));
                }
            }
            Ok(())
        })
    }

    /// Streams `docker save` of `references` (one bundle) into `sink`; returns the bytes written.
    pub fn save_images(&self, references: &[&str], sink: &mut dyn std::io::Write) -> Result<u64, EngineError> {
        self.runtime.block_on(async {
            let mut chunks = self.docker.export_images(references);
            let mut written = 0u64;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|error| EngineError(format!("saving {}: {error}", references.join(", "))))?;
                sink.write_all(&chunk).map_err(|error| EngineError(format!("writing the bundle: {error}")))?;
                written += chunk.len() as u64;
            }
            Ok(written)
        })
    }

    /// Loads a bundle of images (`docker save` format) read from `source` in 1 MiB chunks; returns the
    /// references the Engine reports as loaded.
    pub fn load_images(&self, source: impl std::io::Read + Send + 'static) -> Result<Vec<String>, EngineError> {
        let chunks = futures::stream::iter(Chunks { source, failed: false });
        let options = ImportImageOptionsBuilder::default().quiet(false).build();
        self.runtime.block_on(async {
            let mut progress = self.docker.import_image_stream(options, chunks, None);
            let mut loaded = Vec::new();
            while let Some(step) = progress.next().await {
                let step = step.map_err(|error| EngineError(format!("loading the bundle: {error}")))?;
                if let Some(line) = step.stream {
                    loaded.extend(
                        line.lines()
                            .filter_map(|line| line.strip_prefix("Loaded image: "))
                            .map(|r| r.trim().to_owned()),
                    );
                }
            }
            Ok(loaded)
        })
    }

    /// Pulls an image from its registry (credentials from the Engine's own configuration are not used: a
    /// private registry must allow this host, or the image is loaded with `cometctl images load`).
    pub fn pull_image(&self, reference: &str) -> Result<(), EngineError> {
        let options = bollard::query_parameters::CreateImageOptionsBuilder::default().from_image(reference).build();
        self.runtime.block_on(async {
            let mut progress = self.docker.create_image(Some(options), None, None);
            while let Some(step) = progress.next().await {
                step.map_err(|error| EngineError(format!("pulling {reference}: {error}")))?;
            }
            Ok(())
        })
    }

    /// The local image with this reference, if the Engine has it.
    pub fn image(&self, reference: &str) -> Result<Option<LocalImage>, EngineError> {
        match self.runtime.block_on(self.docker.inspect_image(reference)) {
            Ok(found) => Ok(Some(LocalImage { id: found.id.unwrap_or_default(), size: found.size.unwrap_or(0) })),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(error) => Err(EngineError(format!("inspecting image {reference}: {error}"))),
        }
    }
}

/// A reader as a stream of 1 MiB chunks; a read error ends the stream (the Engine then refuses the truncated
/// archive, and the error names the load).
struct Chunks<R> {
    source: R,
    failed: bool,
}

impl<R: std::io::Read> Iterator for Chunks<R> {
    type Item = bytes::Bytes;

    fn next(&mut self) -> Option<bytes::Bytes> {
        if self.failed {
            return None;
        }
        let mut buffer = vec![0u8; 1 << 20];
        match self.source.read(&mut buffer) {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some(buffer.into())
            }
            Err(_) => {
                self.failed = true;
                None
            }
        }
    }
}
