//! The playbooks cometctl knows: those embedded from the project's playbooks/ folder, overridden or added to
//! by a folder of the operator's (`--playbooks DIR`, same file names), and any playbook file named by path.
//! Pure: the texts are handed in (`folder` reads them).

use std::collections::BTreeMap;

use include_dir::{Dir, include_dir};

use super::model::{self, Playbook};
use crate::yaml::YamlError;

static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../playbooks");

/// One playbook's text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `embedded:grow.yaml`, or the path it was read from.
    pub origin: String,
    pub text: String,
}

/// A playbook read and checked, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub playbook: Playbook,
    pub origin: String,
    /// SHA-256 of its text: a resumed run says so when the playbook changed since the run began.
    pub digest: String,
}

/// The playbooks by file name: the embedded ones, then `overrides` (file name → text, read from `dir`).
pub fn sources(overrides: &BTreeMap<String, String>, dir: &str) -> BTreeMap<String, Source> {
    let mut found: BTreeMap<String, Source> = EMBEDDED
        .files()
        .filter(|file| file.path().extension().is_some_and(|extension| extension == "yaml"))
        .filter_map(|file| {
            let name = file.path().to_string_lossy().into_owned();
            let text = file.contents_utf8()?.to_owned();
            Some((name.clone(), Source { origin: format!("embedded:{name}"), text }))
        })
        .collect();
    for (name, text) in overrides {
        found.insert(name.clone(), Source { origin: format!("{dir}/{name}"), text: text.clone() });
    }
    found
}

/// Reads one source.
pub fn load(source: &Source) -> Result<Loaded, YamlError> {
    let playbook = model::parse(&source.origin, &source.text)?;
    Ok(Loaded { playbook, origin: source.origin.clone(), digest: crate::plan::sha256_hex(source.text.as_bytes()) })
}

/// The source of the playbook called `name` (its `name:`; the file is `<name>.yaml`).
pub fn find<'s>(sources: &'s BTreeMap<String, Source>, name: &str) -> Option<&'s Source> {
    sources.get(&format!("{name}.yaml"))
}

/// Every playbook, read and checked; the first one that does not read is an error (a broken override must
/// not hide behind the others).
pub fn all(sources: &BTreeMap<String, Source>) -> Result<Vec<Loaded>, YamlError> {
    sources.values().map(load).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_playbook_reads_and_is_named_after_its_file() {
        let sources = sources(&BTreeMap::new(), "");
        assert!(sources.len() >= 5, "the shipped playbooks: {:?}", sources.keys().collect::<Vec<_>>());
        for (file, source) in &sources {
            let loaded = load(source).unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(format!("{}.yaml", loaded.playbook.name), *file);
            assert!(!loaded.playbook.description.trim().is_empty(), "{file} has a description");
        }
    }

    #[test]
    fn an_override_replaces_the_embedded_playbook_of_the_same_name() {
        let text = "name: grow\ndescription: ours\nsteps:\n  - confirm: go on?\n";
        let overrides = BTreeMap::from([("grow.yaml".to_owned(), text.to_owned())]);
        let sources = sources(&overrides, "/srv/playbooks");
        let grow = load(find(&sources, "grow").expect("grow")).expect("reads");
        assert_eq!((grow.playbook.description.as_str(), grow.origin.as_str()), ("ours", "/srv/playbooks/grow.yaml"));
    }
}
