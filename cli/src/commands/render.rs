use anyhow::Result;

use crate::args::{RenderArgs, RenderTarget};
use crate::domain::Target;
use crate::folder::{DeploymentFolder, Refusal};
use crate::printer::Printer;
use crate::render::{self, TemplateSet};

pub fn run(args: &RenderArgs, printer: &Printer) -> Result<()> {
    let folder = DeploymentFolder::new(&args.dir);
    let spec = folder.read_spec()?;
    let templates = match &args.templates {
        None => TemplateSet::embedded(),
        Some(path) => TemplateSet::with_overrides_from(path).map_err(|error| Refusal(error.to_string()))?,
    };
    let targets: Vec<Target> = match args.target {
        RenderTarget::Spec => vec![spec.target],
        RenderTarget::Compose => vec![Target::Compose],
        RenderTarget::Swarm => vec![Target::Swarm],
        RenderTarget::K8s => vec![Target::K8s],
        RenderTarget::All => Target::ALL.to_vec(),
    };
    // Rendering is pure; nothing is written unless every template rendered.
    let tree = render::render(&spec, &templates, &targets).map_err(|error| Refusal(error.to_string()))?;
    let changes = folder.replace_rendered(&tree)?;
    printer.changes(&format!("render {}", Printer::target_list(&targets)), &changes)?;
    Ok(())
}
