//! `cometctl upgrade --version V` (or `--image KEY=REF`): the spec with the new images, then `deploy::upgrade`
//! with the backend the deployment runs on.

use anyhow::Result;

use crate::args::UpgradeArgs;
use crate::context::Context;
use crate::deploy::{self, Choice};
use crate::error::Refusal;
use crate::spec::{ImageRef, Spec};

/// The spec with the requested images.
fn next_spec(spec: &Spec, args: &UpgradeArgs) -> Result<Spec> {
    if args.version.is_none() && args.image.is_empty() {
        return Err(
            Refusal("nothing to upgrade to: give --version V and/or --image KEY=REPOSITORY:TAG".to_owned()).into()
        );
    }
    let mut next = spec.clone();
    if let Some(version) = &args.version {
        next.images.comet.tag.clone_from(version);
    }
    for assignment in &args.image {
        let (key, reference) = assignment
            .split_once('=')
            .ok_or_else(|| Refusal(format!("--image `{assignment}` is not KEY=REPOSITORY:TAG")))?;
        let parsed = ImageRef::parse(reference)
            .ok_or_else(|| Refusal(format!("--image `{assignment}`: `{reference}` has no :TAG")))?;
        let slot = next.images.get_mut(key).ok_or_else(|| {
            let keys: Vec<&str> = spec.images.named().iter().map(|(key, _)| *key).collect();
            Refusal(format!("--image `{assignment}`: `{key}` is not an image key ({})", keys.join(", ")))
        })?;
        *slot = parsed;
    }
    let problems = next.problems();
    if let Some((path, problem)) = problems.first() {
        return Err(Refusal(format!("the upgraded spec would be invalid: {path} {problem}")).into());
    }
    Ok(next)
}

pub fn run(context: &Context<'_>, args: &UpgradeArgs) -> Result<()> {
    let spec = context.spec()?;
    let next = next_spec(spec, args)?;
    if next == *spec {
        let printer = context.printer;
        printer.result(&format!("upgrade {}: already at {}; no changes", spec.name, spec.images.comet.reference()))?;
        return Ok(());
    }
    let backend = deploy::backend_for(context, Choice::Observed)?;
    deploy::upgrade(context, backend.as_ref(), spec, &next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_at_the_tag_not_the_registry_port() {
        let parsed = ImageRef::parse("registry.local:5000/team/comet-server:1.2.3").expect("has a tag");
        assert_eq!(
            (parsed.repository.as_str(), parsed.tag.as_str()),
            ("registry.local:5000/team/comet-server", "1.2.3")
        );
        assert!(ImageRef::parse("registry.local:5000/team/comet-server").is_none());
    }
}
