//! The rendered manifests read back as a deploy's desired state. Pure: the text comes in, typed values go out.
//! `compose` is compose.yaml and the blocks both Compose-format files share (health checks, resources,
//! ulimits, logging); `stack` is stack.yaml; `values` the value syntax of both (durations, CPUs, memory,
//! ports, volume entries, `$$`).

pub mod compose;
pub mod stack;
pub mod values;
