//! The rendered compose.yaml, read back as the desired state of a `deploy compose`. Pure: no IO.
//!
//! The renderer is the one source of truth for what a deployment runs; `deploy compose` applies exactly the
//! file an operator can read (and could hand to `docker compose`). Only the subset of the Compose format our
//! templates emit is understood; any other key is an error naming it, so a template change cannot be silently
//! ignored by the deployer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::values::{Mount, parse_bytes, parse_cpus_nanos, parse_duration_nanos, parse_mount, parse_port, unescape};
use crate::yaml::{self, YamlError};

/// The whole file. Top-level keys other than these must be extension fields (`x-…`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ComposeFile {
    pub services: BTreeMap<String, Service>,
    #[serde(default)]
    pub networks: BTreeMap<String, Option<Labelled>>,
    #[serde(default)]
    pub volumes: BTreeMap<String, Option<Labelled>>,
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretFile>,
    /// `x-logging` and other extension fields: anchors the services refer to.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labelled {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretFile {
    /// Relative to the compose file's folder.
    pub file: String,
}

/// One service, as the templates write it. Serialised (canonical JSON) into the configuration hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub image: String,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub tmpfs: Vec<String>,
    #[serde(default)]
    pub cap_drop: Vec<String>,
    #[serde(default)]
    pub cap_add: Vec<String>,
    #[serde(default)]
    pub security_opt: Vec<String>,
    #[serde(default)]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkAttachment>,
    #[serde(default)]
    pub depends_on: BTreeMap<String, Dependency>,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default)]
    pub stop_grace_period: Option<String>,
    #[serde(default)]
    pub restart: Option<String>,
    #[serde(default)]
    pub deploy: Option<Deploy>,
    #[serde(default)]
    pub logging: Option<Logging>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkAttachment {
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    ServiceHealthy,
    ServiceCompletedSuccessfully,
    ServiceStarted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    pub condition: Condition,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    #[serde(default)]
    pub test: Option<Vec<String>>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub start_period: Option<String>,
    #[serde(default)]
    pub disable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    #[serde(default)]
    pub replicas: Option<u32>,
    #[serde(default)]
    pub resources: Option<Resources>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub limits: Option<ResourceAmounts>,
    #[serde(default)]
    pub reservations: Option<ResourceAmounts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceAmounts {
    #[serde(default)]
    pub cpus: Option<String>,
    #[serde(default)]
    pub memory: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    pub driver: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Healthcheck {
    /// Compose writes a literal `$` as `$$`; the probe sees one.
    pub(crate) fn unescape(&mut self) {
        if let Some(test) = self.test.as_mut() {
            test.iter_mut().for_each(|word| *word = unescape(word));
        }
    }

    /// Every duration parses.
    pub(crate) fn check(&self) -> Result<(), String> {
        for duration in [&self.interval, &self.timeout, &self.start_period].into_iter().flatten() {
            parse_duration_nanos(duration)?;
        }
        Ok(())
    }
}

impl ResourceAmounts {
    /// The CPU amount and the memory amount parse.
    pub(crate) fn check(&self) -> Result<(), String> {
        if let Some(cpus) = &self.cpus {
            parse_cpus_nanos(cpus)?;
        }
        if let Some(memory) = &self.memory {
            parse_bytes(memory)?;
        }
        Ok(())
    }
}

impl Service {
    pub fn replicas(&self) -> u32 {
        self.deploy.as_ref().and_then(|deploy| deploy.replicas).unwrap_or(1)
    }

    /// A one-shot job: never restarted, its exit code is its result.
    pub fn is_job(&self) -> bool {
        self.restart.as_deref() == Some("no")
    }

    pub fn limits(&self) -> Option<&ResourceAmounts> {
        self.deploy.as_ref()?.resources.as_ref()?.limits.as_ref()
    }

    pub fn reservations(&self) -> Option<&ResourceAmounts> {
        self.deploy.as_ref()?.resources.as_ref()?.reservations.as_ref()
    }

    /// The `volumes:` entries, parsed.
    pub fn mounts(&self) -> Result<Vec<Mount>, String> {
        self.volumes.iter().map(|entry| parse_mount(entry)).collect()
    }
}

/// The top-level keys of a Compose-format file besides the known ones must be extension fields (`x-…`).
pub(crate) fn check_extensions(extensions: &BTreeMap<String, serde_json::Value>) -> Result<(), String> {
    match extensions.keys().find(|key| !key.starts_with("x-")) {
        Some(key) => Err(format!("top-level key `{key}` is not supported by cometctl deploy")),
        None => Ok(()),
    }
}

/// What a container sees of a service, with `$$` read as `$`: its command words, environment and probe.
pub(crate) fn unescape_container(
    words: [&mut Option<Vec<String>>; 2],
    environment: &mut BTreeMap<String, String>,
    healthcheck: Option<&mut Healthcheck>,
) {
    for list in words.into_iter().flatten() {
        list.iter_mut().for_each(|word| *word = unescape(word));
    }
    environment.values_mut().for_each(|value| *value = unescape(value));
    if let Some(check) = healthcheck {
        check.unescape();
    }
}

/// A service's named volumes are declared under the file's `volumes:`, and its durations and amounts parse.
pub(crate) fn check_service_values(
    mounts: &[Mount],
    volumes: &BTreeMap<String, Option<Labelled>>,
    healthcheck: Option<&Healthcheck>,
    stop_grace_period: Option<&String>,
    amounts: [Option<&ResourceAmounts>; 2],
) -> Result<(), String> {
    for mount in mounts {
        if let Mount::Volume { name: volume, .. } = mount
            && !volumes.contains_key(volume)
        {
            return Err(format!("volume `{volume}` is not declared under volumes:"));
        }
    }
    if let Some(check) = healthcheck {
        check.check()?;
    }
    if let Some(grace) = stop_grace_period {
        parse_duration_nanos(grace)?;
    }
    for amounts in amounts.into_iter().flatten() {
        amounts.check()?;
    }
    Ok(())
}

impl ComposeFile {
    /// Parses a rendered compose.yaml (`file` names it in errors) and checks what the deployer relies on:
    /// every reference (depends_on, networks, volumes, secrets) resolves, every value parses.
    pub fn parse(file: &str, text: &str) -> Result<ComposeFile, YamlError> {
        let mut compose: ComposeFile = yaml::from_str(file, text)?;
        let invalid = |message: String| YamlError::at(file, None, message);
        check_extensions(&compose.extensions).map_err(invalid)?;
        for (name, service) in &mut compose.services {
            let in_service = |message: String| invalid(format!("service `{name}`: {message}"));
            unescape_container(
                [&mut service.entrypoint, &mut service.command],
                &mut service.environment,
                service.healthcheck.as_mut(),
            );
            check_service_values(
                &service.mounts().map_err(in_service)?,
                &compose.volumes,
                service.healthcheck.as_ref(),
                service.stop_grace_period.as_ref(),
                [service.limits(), service.reservations()],
            )
            .map_err(in_service)?;
            for network in service.networks.keys() {
                if !compose.networks.contains_key(network) {
                    return Err(in_service(format!("network `{network}` is not declared under networks:")));
                }
            }
            for secret in &service.secrets {
                if !compose.secrets.contains_key(secret) {
                    return Err(in_service(format!("secret `{secret}` is not declared under secrets:")));
                }
            }
            for port in &service.ports {
                parse_port(port).map_err(in_service)?;
            }
            if let Some(restart) = &service.restart
                && !["no", "always", "unless-stopped", "on-failure"].contains(&restart.as_str())
            {
                return Err(in_service(format!("restart `{restart}` is not a Docker restart policy")));
            }
        }
        let names: Vec<String> = compose.services.keys().cloned().collect();
        for (name, service) in &compose.services {
            for dependency in service.depends_on.keys() {
                if !names.contains(dependency) {
                    return Err(invalid(format!("service `{name}` depends on `{dependency}`, which is not a service")));
                }
            }
        }
        compose.start_order().map_err(invalid)?;
        Ok(compose)
    }

    /// Services grouped in start order: each group depends only on earlier groups. Within a group, by name.
    pub fn start_order(&self) -> Result<Vec<Vec<String>>, String> {
        let mut placed: Vec<String> = Vec::new();
        let mut groups = Vec::new();
        while placed.len() < self.services.len() {
            let group: Vec<String> = self
                .services
                .iter()
                .filter(|(name, service)| {
                    !placed.contains(name) && service.depends_on.keys().all(|dependency| placed.contains(dependency))
                })
                .map(|(name, _)| name.clone())
                .collect();
            if group.is_empty() {
                let cycle: Vec<&String> = self.services.keys().filter(|name| !placed.contains(name)).collect();
                return Err(format!("the services {cycle:?} depend on each other in a cycle"));
            }
            placed.extend(group.iter().cloned());
            groups.push(group);
        }
        Ok(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
x-logging: &logging
  driver: json-file
  options:
    max-size: "50m"
services:
  redis-1:
    image: redis:7
    entrypoint: ["/bin/sh", "-c", "echo $$HOME"]
    volumes:
      - redis-1-data:/data
    networks:
      backend:
        aliases: [tasks.redis-1]
    healthcheck:
      test: ["CMD-SHELL", "redis-cli ping"]
      interval: 10s
      timeout: 5s
      retries: 3
      start_period: 1m30s
    logging: *logging
  migrate:
    image: comet:1
    restart: "no"
    depends_on:
      redis-1:
        condition: service_healthy
    secrets: [db_password]
  api:
    image: comet:1
    depends_on:
      migrate:
        condition: service_completed_successfully
    deploy:
      replicas: 2
      resources:
        limits: {cpus: "0.5", memory: 512M}
networks:
  backend:
    labels:
      io.comet.deployment: "t"
volumes:
  redis-1-data:
secrets:
  db_password:
    file: ../secrets/db_password
"#;

    #[test]
    fn reads_the_rendered_subset_and_orders_services_by_dependency() {
        let compose = ComposeFile::parse("compose.yaml", FILE).expect("parses");
        let order = compose.start_order().expect("no cycle");
        assert_eq!(order, vec![vec!["redis-1".to_owned()], vec!["migrate".to_owned()], vec!["api".to_owned()]]);
        let redis = &compose.services["redis-1"];
        assert_eq!(redis.entrypoint.as_ref().map(|words| words[2].as_str()), Some("echo $HOME"));
        assert_eq!(redis.logging.as_ref().map(|logging| logging.driver.as_str()), Some("json-file"));
        assert_eq!(compose.services["api"].replicas(), 2);
        assert!(compose.services["migrate"].is_job());
        assert_eq!(
            redis.mounts().expect("mounts"),
            vec![Mount::Volume { name: "redis-1-data".into(), target: "/data".into(), read_only: false }]
        );
    }

    #[test]
    fn unknown_keys_and_dangling_references_are_errors() {
        let unknown = FILE.replace("    restart: \"no\"", "    restart: \"no\"\n    privileged: true");
        let error = ComposeFile::parse("compose.yaml", &unknown).expect_err("unknown key");
        assert!(error.to_string().contains("privileged"), "{error}");
        let dangling = FILE.replace("secrets: [db_password]", "secrets: [nope]");
        let error = ComposeFile::parse("compose.yaml", &dangling).expect_err("dangling secret");
        assert!(error.to_string().contains("secret `nope`"), "{error}");
        let cycle = FILE.replace(
            "      redis-1:\n        condition: service_healthy",
            "      api:\n        condition: service_healthy",
        );
        let error = ComposeFile::parse("compose.yaml", &cycle).expect_err("cycle");
        assert!(error.to_string().contains("cycle"), "{error}");
    }

    #[test]
    fn durations_cpus_and_memory_parse_like_compose() {
        assert_eq!(parse_duration_nanos("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration_nanos("500ms"), Ok(500_000_000));
        assert!(parse_duration_nanos("10").is_err());
        assert!(parse_duration_nanos("").is_err());
        assert_eq!(parse_cpus_nanos("0.5"), Ok(500_000_000));
        assert!(parse_cpus_nanos("-1").is_err());
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert!(parse_bytes("12Q").is_err());
        assert_eq!(parse_port("8080:80"), Ok((8080, 80)));
        assert!(parse_port("80").is_err());
    }
}
