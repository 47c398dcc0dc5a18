//! `cometctl init`: size a deployment and write its folder: cometctl.yaml, secrets/ and a development
//! certificate. Secrets and keys are created once and never replaced.

use anyhow::Result;

use crate::args::InitArgs;
use crate::context::Context;
use crate::error::Refusal;
use crate::folder::{self, DeploymentFolder, SECRETS_DIR};
use crate::printer::views::{Change, FileChange};
use crate::render::SECRETS;
use crate::sizing;
use crate::spec::{self, DeploymentName, InitialSpec, SPEC_FILE, Spec, TlsMode};

pub fn run(context: &Context<'_>, args: &InitArgs) -> Result<()> {
    let printer = context.printer;
    let name = DeploymentName::parse(&args.name).map_err(Refusal)?;
    let input = &args.sizing;
    let profile = folder::read_profile(input.profile.as_deref())?;
    let plan = sizing::plan_for_recommended(&profile, input.request(), input.target.is_some())
        .map_err(|error| Refusal(error.to_string()))?;
    let tls_mode = if args.provided_tls { TlsMode::Provided } else { TlsMode::SelfSigned };
    let spec = Spec::initial(InitialSpec {
        name,
        target: plan.target,
        domain: args.domain.clone(),
        mau: plan.mau,
        concurrency: plan.concurrency,
        message_retention_days: args.sizing.retention_days,
        kafka_retention_hours: 168,
        comet_version: env!("CARGO_PKG_VERSION").to_owned(),
        tls_mode,
        plan: plan.allocation.clone(),
    });
    // Everything the operator typed is checked before anything is written.
    if let Some((path, problem)) = spec.problems().into_iter().next() {
        return Err(Refusal(format!("`{path}` {problem}")).into());
    }
    let yaml = spec::to_yaml(&spec)?;

    let folder = &context.folder;
    if folder.has_spec() && !args.force {
        return Err(Refusal(format!(
            "{} already exists; pass --force to overwrite it (secrets and certificates are kept either way)",
            folder.spec_path().display()
        ))
        .into());
    }
    folder.create_root()?;

    let mut changes = Vec::new();
    folder.private_dir(SECRETS_DIR)?;
    for secret in SECRETS {
        let path = format!("{SECRETS_DIR}/{}", secret.name);
        let change = folder.create_once(&path, 0o600, crate::secrets::generate)?;
        changes.push(FileChange { path, change });
    }
    if tls_mode == TlsMode::SelfSigned {
        changes.extend(dev_certificate(folder, &spec)?);
    }
    // The spec is written last: its presence means init finished.
    let change = folder.write_file(SPEC_FILE, yaml.as_bytes(), 0o644)?;
    changes.push(FileChange { path: SPEC_FILE.to_owned(), change });

    if printer.is_json() {
        printer.json(&serde_json::json!({ "plan": &plan, "files": &changes }))?;
    } else {
        printer.plan(&plan)?;
        printer.changes(&format!("init {}", folder.root().display()), &changes)?;
        printer.next_steps(&[format!(
            "next: review {}, then `cometctl render --dir {}`",
            folder.spec_path().display(),
            folder.root().display()
        )]);
    }
    Ok(())
}

/// Makes the development certificate unless both files exist; never replaces a key.
fn dev_certificate(folder: &DeploymentFolder, spec: &Spec) -> Result<Vec<FileChange>> {
    let cert = spec.tls.cert_file.as_str();
    let key = spec.tls.key_file.as_str();
    let root = folder.root();
    if folder::exists(&root.join(cert)) && folder::exists(&root.join(key)) {
        return Ok(vec![
            FileChange { path: cert.to_owned(), change: Change::Kept },
            FileChange { path: key.to_owned(), change: Change::Kept },
        ]);
    }
    if folder::exists(&root.join(key)) {
        return Err(Refusal(format!(
            "{key} exists without {cert}: put the matching certificate there, or remove the key to get a new development pair"
        ))
        .into());
    }
    let pair = crate::tls::self_signed(&spec.domain)?;
    let key_change = folder.write_file(key, pair.key_pem.as_bytes(), 0o600)?;
    let cert_change = folder.write_file(cert, pair.cert_pem.as_bytes(), 0o644)?;
    Ok(vec![
        FileChange { path: cert.to_owned(), change: cert_change },
        FileChange { path: key.to_owned(), change: key_change },
    ])
}
