//! `cometctl render`: the spec's manifests and service configuration into rendered/, replaced whole.

use anyhow::Result;

use crate::args::{RenderArgs, RenderTarget};
use crate::context::Context;
use crate::domain::Target;
use crate::error::Refusal;
use crate::folder;
use crate::printer::Printer;
use crate::render::{self, TemplateSet};

pub fn run(context: &Context<'_>, args: &RenderArgs) -> Result<()> {
    let spec = context.spec()?;
    let templates = match &args.templates {
        None => TemplateSet::embedded(),
        Some(path) => {
            TemplateSet::with_overrides(folder::read_templates(path).map_err(|error| Refusal(error.to_string()))?)
        }
    };
    let targets: Vec<Target> = match args.target {
        RenderTarget::Spec => vec![spec.target],
        RenderTarget::Compose => vec![Target::Compose],
        RenderTarget::Swarm => vec![Target::Swarm],
        RenderTarget::K8s => vec![Target::K8s],
        RenderTarget::All => Target::ALL.to_vec(),
    };
    // Rendering is pure; nothing is written unless every template rendered.
    let tree = render::render(spec, &templates, &targets).map_err(|error| Refusal(error.to_string()))?;
    let changes = context.folder.replace_rendered(&tree)?;
    context.printer.changes(&format!("render {}", Printer::target_list(&targets)), &changes)?;
    Ok(())
}
