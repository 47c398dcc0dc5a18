//! Playbooks (issue #13): YAML step lists that cometctl runs — `model` is the format (typed steps, the
//! requests the subcommands make, no shell), `catalog` the playbooks it knows (embedded, overridden from a
//! folder, or a file), `steps` what each kind of step does and would do, `run` the run itself (inputs, dry
//! run, lock, journal, resume), `journal` the journal's lines. A file here imports its siblings, never this
//! one.

pub mod catalog;
pub mod journal;
pub mod model;
pub mod run;
mod steps;

pub use catalog::{Loaded, Source};
pub use model::{Playbook, Step};
pub use run::Options;
