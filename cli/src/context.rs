//! What every command works with: the deployment folder, its spec (read once, on first use), the Docker
//! Engine (connected on first use), the printer and the clock.

use std::cell::OnceCell;
use std::path::Path;

use anyhow::Result;

use crate::engine::Engine;
use crate::folder::DeploymentFolder;
use crate::printer::Printer;
use crate::spec::Spec;

/// The time of day, read in this one place.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock;

impl Clock {
    /// Seconds since the Unix epoch.
    pub fn now_unix_seconds(self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
    }
}

/// One command's context.
#[derive(Debug)]
pub struct Context<'a> {
    pub folder: DeploymentFolder,
    pub printer: &'a Printer,
    pub clock: Clock,
    spec: OnceCell<Spec>,
    engine: OnceCell<Engine>,
}

impl<'a> Context<'a> {
    /// The context of a command working on the deployment folder `dir`.
    pub fn new(dir: &Path, printer: &'a Printer) -> Context<'a> {
        Context {
            folder: DeploymentFolder::new(dir),
            printer,
            clock: Clock,
            spec: OnceCell::new(),
            engine: OnceCell::new(),
        }
    }

    /// The folder's cometctl.yaml, read and checked on first use.
    pub fn spec(&self) -> Result<&Spec> {
        if let Some(spec) = self.spec.get() {
            return Ok(spec);
        }
        let spec = self.folder.read_spec()?;
        Ok(self.spec.get_or_init(|| spec))
    }

    /// The Docker Engine, connected on first use.
    pub fn engine(&self) -> Result<&Engine> {
        if let Some(engine) = self.engine.get() {
            return Ok(engine);
        }
        let engine = Engine::connect()?;
        Ok(self.engine.get_or_init(|| engine))
    }
}
