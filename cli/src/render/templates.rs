//! The set of templates a render uses: the embedded copy of templates/, with overrides handed in as a map
//! (`folder` reads them from a folder).

use std::collections::BTreeMap;

use include_dir::{Dir, include_dir};

static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../templates");

/// Template name (path with `/` separators, relative to the templates folder) → source.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    sources: BTreeMap<String, String>,
}

impl TemplateSet {
    /// The templates compiled into this binary.
    pub fn embedded() -> TemplateSet {
        let mut sources = BTreeMap::new();
        collect_embedded(&EMBEDDED, &mut sources);
        TemplateSet { sources }
    }

    /// The embedded templates with `overrides` (template name → source) in place of those of the same name,
    /// so an override folder may hold only the templates it changes. `folder::read_templates` reads one.
    pub fn with_overrides(overrides: BTreeMap<String, String>) -> TemplateSet {
        let mut set = TemplateSet::embedded();
        set.sources.extend(overrides);
        set
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.sources.iter().map(|(name, source)| (name.as_str(), source.as_str()))
    }
}

fn collect_embedded(dir: &Dir<'static>, sources: &mut BTreeMap<String, String>) {
    for file in dir.files() {
        let name = file.path().to_string_lossy().replace('\\', "/");
        if let (true, Some(text)) = (name.ends_with(".j2"), file.contents_utf8()) {
            sources.insert(name, text.to_owned());
        }
    }
    for child in dir.dirs() {
        collect_embedded(child, sources);
    }
}
