//! The set of templates a render uses: the embedded copy of templates/, or a folder that overrides it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../templates");

/// Template name (path with `/` separators, relative to the templates folder) → source.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    sources: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateSetError {
    #[error("reading templates from {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("template {path} is not UTF-8 text")]
    NotText { path: PathBuf },
    #[error("{path} holds no templates (*.j2 files); point --templates at a copy of the project's templates/ folder")]
    Empty { path: PathBuf },
}

impl TemplateSet {
    /// The templates compiled into this binary.
    pub fn embedded() -> TemplateSet {
        let mut sources = BTreeMap::new();
        collect_embedded(&EMBEDDED, &mut sources);
        TemplateSet { sources }
    }

    /// Reads every `*.j2` file below `root`. Files the embedded set has and `root` lacks are taken from the
    /// embedded set, so an override folder may hold only the templates it changes.
    pub fn with_overrides_from(root: &Path) -> Result<TemplateSet, TemplateSetError> {
        let mut set = TemplateSet::embedded();
        let mut found = 0usize;
        let mut pending = vec![root.to_path_buf()];
        while let Some(folder) = pending.pop() {
            let entries =
                fs_err::read_dir(&folder).map_err(|source| TemplateSetError::Io { path: folder.clone(), source })?;
            for entry in entries {
                let entry = entry.map_err(|source| TemplateSetError::Io { path: folder.clone(), source })?;
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|extension| extension == "j2") {
                    let bytes =
                        fs_err::read(&path).map_err(|source| TemplateSetError::Io { path: path.clone(), source })?;
                    let text =
                        String::from_utf8(bytes).map_err(|_| TemplateSetError::NotText { path: path.clone() })?;
                    let name = path
                        .strip_prefix(root)
                        .unwrap_or(&path)
                        .components()
                        .map(|part| part.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/");
                    set.sources.insert(name, text);
                    found += 1;
                }
            }
        }
        if found == 0 {
            return Err(TemplateSetError::Empty { path: root.to_path_buf() });
        }
        Ok(set)
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
