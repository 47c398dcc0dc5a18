//! `backup list`: the sets of a target as the printer and `--output json` show them.

use serde::Serialize;

use super::target::Listed;

/// A listed set as `backup list --output json` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedView {
    pub id: String,
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub parts: Vec<String>,
    pub skipped: Vec<String>,
    pub bytes: u64,
    pub key_id: Option<String>,
}

impl From<&Listed> for ListedView {
    fn from(listed: &Listed) -> ListedView {
        match listed {
            Listed::Complete { id, manifest } => ListedView {
                id: id.clone(),
                complete: true,
                reason: None,
                started_at: Some(manifest.started_at),
                finished_at: Some(manifest.finished_at),
                parts: manifest.parts.iter().map(|part| part.name.clone()).collect(),
                skipped: manifest.skipped.iter().map(|skipped| skipped.name.clone()).collect(),
                bytes: manifest.total_bytes(),
                key_id: Some(manifest.encryption.key_id.clone()),
            },
            Listed::Incomplete { id, why } => ListedView {
                id: id.clone(),
                complete: false,
                reason: Some(why.clone()),
                started_at: None,
                finished_at: None,
                parts: Vec::new(),
                skipped: Vec::new(),
                bytes: 0,
                key_id: None,
            },
        }
    }
}
