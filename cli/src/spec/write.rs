//! Writes a spec back to YAML, with a comment above each section for the operator who edits it.

use super::model::Spec;

const HEADER: &str = "\
# cometctl deployment spec, written by `cometctl init`. Edit it, then run `cometctl render`.
# Secrets live in secrets/ beside this file (mode 0600) and are never written here.
# Reference: docs/spec.md.
";

/// A comment placed above a top-level key.
fn section_comment(key: &str) -> Option<&'static str> {
    Some(match key {
        "version" => "# Spec format version.",
        "name" => "# Deployment name: Compose project, Swarm stack and Kubernetes namespace.",
        "target" => "# compose (one host, dev/QA), swarm (production to ~200k MAU) or k8s.",
        "domain" => "# Public host name served by NGINX or the Ingress.",
        "mau" => {
            "# Monthly active users and peak concurrency (baseline = 5%, high = 10%, or a percent such as \"7.5%\")."
        }
        "retention" => "# How long messages (TiDB) and events (Kafka) are kept.",
        "tls" => "# self-signed: init made a development certificate. provided: put yours at these paths.",
        "images" => "# Every image, pinned. Point repository at a private registry or mirror to override.",
        "observability" => "# Prometheus, Grafana and Loki (with Promtail, node-exporter and cAdvisor).",
        "backup" => "# Scheduled backups of every store (`cometctl backup`).",
        "edge" => {
            "# Limits applied per client IP at the edge, and the host ports NGINX publishes on Compose and Swarm\n# (Kubernetes: the Ingress controller's ports)."
        }
        "kubernetes" => "# Kubernetes only: IngressClass and StorageClass (empty = cluster default).",
        "host" => "# Docker hosts (Compose, Swarm): the open-file limit of NGINX, the gateway and the stores.",
        "integrations" => {
            "# Services outside the deployment. allow_hosts: private hosts, addresses or networks (CIDR) webhook\n# receivers, push endpoints and the moderation Custom API may be at (else only public ones).\n# moderation_custom_api: url empty = none; its password goes in secrets/moderation_custom_api_password."
        }
        "plan" => {
            "# The sizing plan from `cometctl sizing`. Edit replicas, resources or storage to override it;\n# `cometctl sizing --mau N` recomputes the recommendation without touching this file.\n# replicas: 0 leaves a service out of every render. mongodb starts at 0: moderation data, webhook\n# configurations and notification preferences then live in the relational store.\n# pd and tikv both at 0 run TiDB standalone on its embedded store, with tidb at 1: for development and\n# small single-host deployments, no high availability."
        }
        _ => return None,
    })
}

#[derive(Debug, thiserror::Error)]
#[error("could not write the spec as YAML: {0}")]
pub struct WriteError(String);

pub fn to_yaml(spec: &Spec) -> Result<String, WriteError> {
    let body = crate::yaml::to_string(spec).map_err(WriteError)?;
    let mut out = String::with_capacity(body.len() + 2048);
    out.push_str(HEADER);
    for line in body.lines() {
        let top_level_key = line.split_once(':').map(|(key, _)| key).filter(|key| !key.starts_with([' ', '-', '#']));
        if let Some(comment) = top_level_key.and_then(section_comment) {
            // `concurrency` shares the comment of `mau`.
            out.push('\n');
            out.push_str(comment);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}
