//! Rendering: `(spec, templates) → BTreeMap<path, bytes>`. Pure and deterministic: no IO, no clock, maps
//! iterated in sorted order, so the same spec renders byte-identical files.

mod context;
mod templates;

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};

pub use context::{ADMIN_PORT, APP_PORT, Context, SECRETS, missing_file_hint};
pub use templates::TemplateSet;

use crate::domain::Target;
use crate::spec::Spec;

/// Rendered files by path relative to `<dir>/rendered/`.
pub type RenderedTree = BTreeMap<String, Vec<u8>>;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template `{template}`: {detail}")]
    Template { template: String, detail: String },
    #[error(
        "shared file `{path}` renders differently for {first} and {second}, which mount one copy; \
         a shared template may only distinguish k8s"
    )]
    SharedDiffers { path: String, first: Target, second: Target },
    #[error("no templates for target {target} (expected files under `{folder}/`)")]
    NoTemplates { target: Target, folder: &'static str },
}

/// Which group of templates a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// Configuration mounted by Compose and Swarm and embedded by Kubernetes.
    Shared,
    Target(Target),
}

/// Maps a template name to its group and output path, or `None` for partials and non-templates.
fn output_of(template: &str) -> Option<(Group, String)> {
    let without_suffix = template.strip_suffix(".j2")?;
    let (folder, rest) = without_suffix.split_once('/')?;
    let file_name = rest.rsplit('/').next().unwrap_or(rest);
    if file_name.starts_with('_') {
        return None;
    }
    match folder {
        "compose" => Some((Group::Target(Target::Compose), rest.to_owned())),
        "swarm" => Some((Group::Target(Target::Swarm), rest.to_owned())),
        "k8s" => Some((Group::Target(Target::K8s), without_suffix.to_owned())),
        "nginx" | "prometheus" | "grafana" | "loki" | "promtail" => Some((Group::Shared, without_suffix.to_owned())),
        _ => None,
    }
}

/// Whether the spec turns a shared file on (observability switches).
fn enabled(spec: &Spec, output: &str) -> bool {
    let observability = &spec.observability;
    match output.split('/').next() {
        Some("prometheus") => observability.prometheus,
        Some("grafana") => observability.grafana,
        Some("loki" | "promtail") => observability.loki,
        _ => true,
    }
}

fn environment(templates: &TemplateSet) -> Result<Environment<'_>, RenderError> {
    let mut environment = Environment::new();
    let mut builder = minijinja::syntax::SyntaxConfig::builder();
    builder.trim_blocks(true).lstrip_blocks(true).keep_trailing_newline(true);
    let syntax = builder.build().map_err(|error| template_error("(syntax)", &error))?;
    environment.set_syntax(syntax);
    // Templates write text as it is. Values that reach them are checked at the spec boundary (DNS labels,
    // host names, image references), and YAML/JSON quoting is the template's explicit choice.
    environment.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, source) in templates.iter() {
        environment.add_template(name, source).map_err(|error| template_error(name, &error))?;
    }
    Ok(environment)
}

fn template_error(template: &str, error: &minijinja::Error) -> RenderError {
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    RenderError::Template { template: template.to_owned(), detail }
}

/// Renders the files of each target in `targets`, and the shared files Compose and Swarm mount.
///
/// Shared templates are rendered once per target, with that target in the context, and handed to the
/// target's own templates as `files` (Kubernetes embeds them in ConfigMaps). They may tell Kubernetes apart
/// (`target == "k8s"`), but Compose and Swarm share one copy on disk, so for those two they must render the
/// same bytes; a template that does not is reported rather than written.
pub fn render(spec: &Spec, templates: &TemplateSet, targets: &[Target]) -> Result<RenderedTree, RenderError> {
    let environment = environment(templates)?;
    let outputs: Vec<(Group, String, &str)> = templates
        .iter()
        .filter_map(|(name, _)| output_of(name).map(|(group, output)| (group, output, name)))
        .filter(|(_, output, _)| enabled(spec, output))
        .collect();

    let mut tree = RenderedTree::new();
    let mut mounted_shared: Option<(Target, BTreeMap<String, String>)> = None;
    for &target in targets {
        let mut context = Context::new(spec, target);
        let mut shared = BTreeMap::new();
        for (group, output, name) in &outputs {
            if *group == Group::Shared {
                shared.insert(output.clone(), render_one(&environment, name, &context)?);
            }
        }
        if target != Target::K8s {
            match &mounted_shared {
                None => {
                    tree.extend(shared.iter().map(|(path, text)| (path.clone(), text.clone().into_bytes())));
                    mounted_shared = Some((target, shared.clone()));
                }
                Some((first, first_shared)) => {
                    if let Some(path) = shared.keys().find(|path| first_shared.get(*path) != shared.get(*path)) {
                        return Err(RenderError::SharedDiffers { path: path.clone(), first: *first, second: target });
                    }
                }
            }
        }
        context.files = shared;
        let mut rendered_any = false;
        for (group, output, name) in &outputs {
            if *group == Group::Target(target) {
                tree.insert(output.clone(), render_one(&environment, name, &context)?.into_bytes());
                rendered_any = true;
            }
        }
        if !rendered_any {
            return Err(RenderError::NoTemplates { target, folder: target.as_str() });
        }
    }
    Ok(tree)
}

fn render_one(environment: &Environment<'_>, name: &str, context: &Context<'_>) -> Result<String, RenderError> {
    let template = environment.get_template(name).map_err(|error| template_error(name, &error))?;
    template.render(minijinja::value::Serde(context)).map_err(|error| template_error(name, &error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_template_names_to_outputs() {
        let check = |name: &str, expected: Option<(Group, &str)>| {
            assert_eq!(output_of(name), expected.map(|(group, path)| (group, path.to_owned())), "{name}");
        };
        check("compose/compose.yaml.j2", Some((Group::Target(Target::Compose), "compose.yaml")));
        check("swarm/stack.yaml.j2", Some((Group::Target(Target::Swarm), "stack.yaml")));
        check("k8s/20-api.yaml.j2", Some((Group::Target(Target::K8s), "k8s/20-api.yaml")));
        check("grafana/dashboards/overview.json.j2", Some((Group::Shared, "grafana/dashboards/overview.json")));
        check("k8s/_macros.yaml.j2", None);
        check("compose/_macros.j2", None);
        check("README.md", None);
        check("other/x.yaml.j2", None);
    }
}
