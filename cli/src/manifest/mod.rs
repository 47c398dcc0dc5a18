//! The rendered manifests read back as a deploy's desired state. Pure: the text comes in, typed values go out.
//! `compose` is compose.yaml and the value syntax both Compose-format files share (durations, CPUs, memory,
//! ports, `$$`, health checks, resources); `stack` is stack.yaml on that syntax.

pub mod compose;
pub mod stack;
