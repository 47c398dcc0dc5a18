//! The rendered stack.yaml, read back as the desired state of a `deploy swarm`. Pure: no IO.
//!
//! Like `compose`, only the subset of the Compose format (3.8, Swarm's `deploy:` keys) our templates emit is
//! understood, and any other key is an error naming it. The value syntax (durations, CPUs, memory, ports, `$$`)
//! and the blocks both files share (health check, resources, ulimits, logging) are `compose`'s own.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::compose::{self, Healthcheck, Labelled, Logging, NetworkAttachment, Resources, Ulimit};
use super::values;
use super::values::Mount;
use crate::yaml::{self, YamlError};

/// The whole file. Top-level keys other than these must be extension fields (`x-…`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StackFile {
    pub services: BTreeMap<String, StackService>,
    #[serde(default)]
    pub networks: BTreeMap<String, Option<StackNetwork>>,
    #[serde(default)]
    pub volumes: BTreeMap<String, Option<Labelled>>,
    #[serde(default)]
    pub secrets: BTreeMap<String, StackObject>,
    #[serde(default)]
    pub configs: BTreeMap<String, StackObject>,
    /// `x-logging` and other extension fields: anchors the services refer to.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackNetwork {
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A top-level secret or config: its Docker name and the file that holds its content.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackObject {
    #[serde(default)]
    pub name: Option<String>,
    /// Relative to the stack file's folder.
    pub file: String,
    #[serde(default)]
    pub external: bool,
}

/// One service, as the templates write it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackService {
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
    pub cap_drop: Vec<String>,
    #[serde(default)]
    pub cap_add: Vec<String>,
    #[serde(default)]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: Vec<ShortOrLong<FileReference>>,
    #[serde(default)]
    pub configs: Vec<ShortOrLong<FileReference>>,
    #[serde(default)]
    pub volumes: Vec<ShortOrLong<LongVolume>>,
    #[serde(default)]
    pub ports: Vec<ShortOrLong<LongPort>>,
    #[serde(default)]
    pub networks: Networks,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default)]
    pub stop_grace_period: Option<String>,
    #[serde(default)]
    pub deploy: Option<StackDeploy>,
    #[serde(default)]
    pub logging: Option<Logging>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A list entry written as a string (short syntax) or as a map (long syntax). Unknown keys of the long form
/// are reported by name.
#[derive(Debug, Clone, PartialEq)]
pub enum ShortOrLong<L> {
    Short(String),
    Long(L),
}

impl<'de, L: Deserialize<'de>> Deserialize<'de> for ShortOrLong<L> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either<L>(PhantomData<L>);
        impl<'de, L: Deserialize<'de>> Visitor<'de> for Either<L> {
            type Value = ShortOrLong<L>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string or a map")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(ShortOrLong::Short(text.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                L::deserialize(de::value::MapAccessDeserializer::new(map)).map(ShortOrLong::Long)
            }
        }
        deserializer.deserialize_any(Either(PhantomData))
    }
}

/// The long form of a `secrets:` or `configs:` entry of a service.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileReference {
    pub source: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub gid: Option<String>,
    /// Octal as YAML 1.1 reads it (`0400`, as `docker stack deploy` does) or `0o400`; decimal otherwise.
    #[serde(default)]
    pub mode: Option<String>,
}

/// A secret or config as a service receives it: where, owned by whom, with which permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMount {
    /// The key under the top-level `secrets:` / `configs:`.
    pub source: String,
    /// A path (absolute, or relative to /run/secrets for secrets and / for configs).
    pub target: String,
    pub uid: String,
    pub gid: String,
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    Volume,
    Bind,
    Tmpfs,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongVolume {
    #[serde(rename = "type")]
    pub kind: VolumeType,
    #[serde(default)]
    pub source: Option<String>,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub tmpfs: Option<TmpfsOptions>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TmpfsOptions {
    /// Bytes, or an amount like `64M`.
    #[serde(default)]
    pub size: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// On the node that runs the task only (client addresses preserved).
    Host,
    /// Through Swarm's routing mesh, on every node.
    Ingress,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongPort {
    pub target: u16,
    #[serde(default)]
    pub published: Option<u16>,
    #[serde(default)]
    pub protocol: Option<Protocol>,
    #[serde(default)]
    pub mode: Option<PublishMode>,
}

/// A published port, either syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub target: u16,
    pub published: Option<u16>,
    pub protocol: Protocol,
    pub mode: PublishMode,
}

/// A service's `networks:`, a list of names or a map of names to attachments, in the order written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Networks(pub Vec<(String, NetworkAttachment)>);

impl<'de> Deserialize<'de> for Networks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListOrMap;
        impl<'de> Visitor<'de> for ListOrMap {
            type Value = Networks;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a list of network names or a map of names to attachments")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Networks, A::Error> {
                let mut networks = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    networks.push((name, NetworkAttachment::default()));
                }
                Ok(Networks(networks))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Networks, A::Error> {
                let mut networks = Vec::new();
                while let Some((name, attachment)) = map.next_entry::<String, Option<NetworkAttachment>>()? {
                    networks.push((name, attachment.unwrap_or_default()));
                }
                Ok(Networks(networks))
            }
        }
        deserializer.deserialize_any(ListOrMap)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployMode {
    Replicated,
    Global,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    /// A virtual IP in front of the tasks.
    Vip,
    /// DNS answers with every task's own address.
    Dnsrr,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackDeploy {
    #[serde(default)]
    pub mode: Option<DeployMode>,
    #[serde(default)]
    pub replicas: Option<u32>,
    #[serde(default)]
    pub endpoint_mode: Option<EndpointMode>,
    #[serde(default)]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub placement: Option<Placement>,
    #[serde(default)]
    pub update_config: Option<UpdateConfig>,
    #[serde(default)]
    pub rollback_config: Option<UpdateConfig>,
    #[serde(default)]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    #[serde(default)]
    pub constraints: Vec<String>,
    #[serde(default)]
    pub max_replicas_per_node: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    StartFirst,
    StopFirst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    Continue,
    Pause,
    Rollback,
}

/// `update_config` and `rollback_config`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    #[serde(default)]
    pub parallelism: Option<u64>,
    #[serde(default)]
    pub delay: Option<String>,
    #[serde(default)]
    pub order: Option<UpdateOrder>,
    #[serde(default)]
    pub failure_action: Option<FailureAction>,
    #[serde(default)]
    pub monitor: Option<String>,
    #[serde(default)]
    pub max_failure_ratio: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    None,
    OnFailure,
    Any,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    #[serde(default)]
    pub condition: Option<RestartCondition>,
    #[serde(default)]
    pub delay: Option<String>,
    #[serde(default)]
    pub max_attempts: Option<u64>,
    #[serde(default)]
    pub window: Option<String>,
}

/// A file mode: `0400` and `0o400` are octal (as Docker's YAML 1.1 reads the first), `256` decimal.
pub fn parse_file_mode(text: &str) -> Result<u32, String> {
    let invalid = || format!("file mode `{text}` is not like 0400, 0o400 or 256");
    let mode = if let Some(octal) = text.strip_prefix("0o") {
        u32::from_str_radix(octal, 8)
    } else if text.len() > 1 && text.starts_with('0') {
        u32::from_str_radix(&text[1..], 8)
    } else {
        text.parse::<u32>()
    }
    .map_err(|_| invalid())?;
    if mode > 0o7777 {
        return Err(invalid());
    }
    Ok(mode)
}

impl StackService {
    fn deploy_block(&self) -> Option<&StackDeploy> {
        self.deploy.as_ref()
    }

    pub fn is_global(&self) -> bool {
        self.deploy_block().and_then(|deploy| deploy.mode) == Some(DeployMode::Global)
    }

    /// Replicas of a replicated service (1 unless given).
    pub fn replicas(&self) -> u32 {
        self.deploy_block().and_then(|deploy| deploy.replicas).unwrap_or(1)
    }

    /// A one-shot job: restarted only on failure, its exit code is its result (our templates give long-running
    /// services `condition: any`, because a server that exits 0 is still down).
    pub fn is_job(&self) -> bool {
        !self.is_global()
            && self.restart_policy().and_then(|policy| policy.condition) == Some(RestartCondition::OnFailure)
    }

    pub fn restart_policy(&self) -> Option<&RestartPolicy> {
        self.deploy_block()?.restart_policy.as_ref()
    }

    pub fn limits(&self) -> Option<&compose::ResourceAmounts> {
        self.deploy_block()?.resources.as_ref()?.limits.as_ref()
    }

    pub fn reservations(&self) -> Option<&compose::ResourceAmounts> {
        self.deploy_block()?.resources.as_ref()?.reservations.as_ref()
    }

    pub fn placement(&self) -> Option<&Placement> {
        self.deploy_block()?.placement.as_ref()
    }

    /// The `volumes:` entries, parsed (the short syntax as `compose` reads it).
    pub fn mounts(&self) -> Result<Vec<Mount>, String> {
        self.volumes
            .iter()
            .map(|entry| match entry {
                ShortOrLong::Short(text) => values::parse_mount(text),
                ShortOrLong::Long(long) => long_mount(long),
            })
            .collect()
    }

    /// The `ports:` entries, parsed; the short syntax publishes through the routing mesh, as Docker does.
    pub fn ports(&self) -> Result<Vec<Port>, String> {
        self.ports
            .iter()
            .map(|entry| match entry {
                ShortOrLong::Short(text) => values::parse_port(text).map(|(published, target)| Port {
                    target,
                    published: Some(published),
                    protocol: Protocol::Tcp,
                    mode: PublishMode::Ingress,
                }),
                ShortOrLong::Long(long) => Ok(Port {
                    target: long.target,
                    published: long.published,
                    protocol: long.protocol.unwrap_or(Protocol::Tcp),
                    mode: long.mode.unwrap_or(PublishMode::Ingress),
                }),
            })
            .collect()
    }

    /// The `secrets:` entries; a short entry mounts the secret at /run/secrets/<name>, read-only for all.
    pub fn secret_mounts(&self) -> Result<Vec<FileMount>, String> {
        file_mounts(&self.secrets, |source| source.to_owned())
    }

    /// The `configs:` entries; a short entry mounts the config at /<name>, as Docker does.
    pub fn config_mounts(&self) -> Result<Vec<FileMount>, String> {
        file_mounts(&self.configs, |source| format!("/{source}"))
    }
}

fn long_mount(long: &LongVolume) -> Result<Mount, String> {
    let source =
        || long.source.clone().ok_or_else(|| format!("the {:?} mount at `{}` has no source", long.kind, long.target));
    match long.kind {
        VolumeType::Volume => {
            Ok(Mount::Volume { name: source()?, target: long.target.clone(), read_only: long.read_only })
        }
        VolumeType::Bind => Ok(Mount::Bind {
            source: source()?,
            target: long.target.clone(),
            read_only: long.read_only,
            propagation: None,
        }),
        VolumeType::Tmpfs => {
            let size_bytes = long.tmpfs.as_ref().and_then(|options| options.size.as_deref()).map(values::parse_bytes);
            Ok(Mount::Tmpfs { target: long.target.clone(), size_bytes: size_bytes.transpose()? })
        }
    }
}

fn file_mounts(
    entries: &[ShortOrLong<FileReference>],
    default_target: impl Fn(&str) -> String,
) -> Result<Vec<FileMount>, String> {
    entries
        .iter()
        .map(|entry| match entry {
            ShortOrLong::Short(source) => Ok(FileMount {
                source: source.clone(),
                target: default_target(source),
                uid: "0".to_owned(),
                gid: "0".to_owned(),
                mode: 0o444,
            }),
            ShortOrLong::Long(long) => Ok(FileMount {
                source: long.source.clone(),
                target: long.target.clone().unwrap_or_else(|| default_target(&long.source)),
                uid: long.uid.clone().unwrap_or_else(|| "0".to_owned()),
                gid: long.gid.clone().unwrap_or_else(|| "0".to_owned()),
                mode: long.mode.as_deref().map_or(Ok(0o444), parse_file_mode)?,
            }),
        })
        .collect()
}

impl StackFile {
    /// Parses a rendered stack.yaml (`file` names it in errors) and checks what the deployer relies on: every
    /// reference (networks, volumes, secrets, configs) resolves, every value parses.
    pub fn parse(file: &str, text: &str) -> Result<StackFile, YamlError> {
        let mut stack: StackFile = yaml::from_str(file, text)?;
        let invalid = |message: String| YamlError::at(file, None, message);
        compose::check_extensions(&stack.extensions).map_err(invalid)?;
        for (kind, objects) in [("secret", &stack.secrets), ("config", &stack.configs)] {
            if let Some((name, _)) = objects.iter().find(|(_, object)| object.external) {
                return Err(invalid(format!(
                    "{kind} `{name}` is external: cometctl deploy creates every {kind} from its file, so give it \
                     a `file:` and `external: false`"
                )));
            }
        }
        for (name, network) in &stack.networks {
            let driver = network.as_ref().and_then(|network| network.driver.as_deref()).unwrap_or("overlay");
            if driver != "overlay" {
                return Err(invalid(format!(
                    "network `{name}`: driver `{driver}` is not supported on Swarm (use overlay)"
                )));
            }
        }
        for (name, service) in &mut stack.services {
            let in_service = |message: String| invalid(format!("service `{name}`: {message}"));
            compose::unescape_container(
                [&mut service.entrypoint, &mut service.command],
                &mut service.environment,
                service.healthcheck.as_mut(),
            );
            compose::check_service_values(
                &service.mounts().map_err(in_service)?,
                &stack.volumes,
                service.healthcheck.as_ref(),
                service.stop_grace_period.as_ref(),
                [service.limits(), service.reservations()],
            )
            .map_err(in_service)?;
            for (network, _) in &service.networks.0 {
                if !stack.networks.contains_key(network) {
                    return Err(in_service(format!("network `{network}` is not declared under networks:")));
                }
            }
            for (kind, mounts, declared) in [
                ("secret", service.secret_mounts().map_err(in_service)?, &stack.secrets),
                ("config", service.config_mounts().map_err(in_service)?, &stack.configs),
            ] {
                if let Some(mount) = mounts.iter().find(|mount| !declared.contains_key(&mount.source)) {
                    return Err(in_service(format!("{kind} `{}` is not declared under {kind}s:", mount.source)));
                }
            }
            service.ports().map_err(in_service)?;
            if let Some(deploy) = &service.deploy {
                check_deploy(deploy).map_err(in_service)?;
            }
        }
        Ok(stack)
    }
}

fn check_deploy(deploy: &StackDeploy) -> Result<(), String> {
    if deploy.mode == Some(DeployMode::Global) && deploy.replicas.is_some() {
        return Err("a global service has one task per node and takes no `replicas`".to_owned());
    }
    let durations = [&deploy.update_config, &deploy.rollback_config]
        .into_iter()
        .flatten()
        .flat_map(|config| [&config.delay, &config.monitor])
        .chain(deploy.restart_policy.iter().flat_map(|policy| [&policy.delay, &policy.window]));
    for duration in durations.flatten() {
        values::parse_duration_nanos(duration)?;
    }
    for config in [&deploy.update_config, &deploy.rollback_config].into_iter().flatten() {
        if let Some(ratio) = config.max_failure_ratio
            && !(0.0..=1.0).contains(&ratio)
        {
            return Err(format!("max_failure_ratio {ratio} is not between 0 and 1"));
        }
    }
    Ok(())
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
  nginx:
    image: nginx:1
    read_only: true
    cap_drop: [ALL]
    cap_add: [CHOWN]
    ulimits:
      nofile: {soft: 1024, hard: 1024}
    configs:
      - source: nginx_conf
        target: /etc/nginx/nginx.conf
    secrets:
      - source: tls_key
        target: /etc/nginx/tls/key.pem
        mode: 0400
    volumes:
      - type: tmpfs
        target: /tmp
    ports:
      - target: 443
        published: 8443
        protocol: tcp
        mode: host
    networks:
      - edge
      - backend
    healthcheck:
      test: ["CMD", "curl", "-f", "http://127.0.0.1/healthz"]
      interval: 10s
    stop_grace_period: 30s
    deploy:
      replicas: 1
      placement:
        constraints:
          - node.labels.comet.nginx == true
        max_replicas_per_node: 1
      update_config: {parallelism: 1, delay: 10s, order: stop-first, failure_action: rollback, monitor: 50s, max_failure_ratio: 0}
      restart_policy: {condition: any, delay: 5s, window: 120s}
      labels: {io.comet.service: nginx}
    logging: *logging
  migrate:
    image: comet:1
    command: ["migrate"]
    secrets: [db_password]
    networks: [backend]
    healthcheck: {disable: true}
    deploy:
      replicas: 1
      restart_policy: {condition: on-failure, delay: 10s, max_attempts: 60, window: 60s}
  redis-1:
    image: redis:7
    entrypoint: ["/bin/sh", "-c", "echo $$HOME"]
    volumes: ["redis-1-data:/data"]
    networks: {backend: {aliases: [cache]}}
    deploy:
      endpoint_mode: dnsrr
      resources:
        limits: {cpus: "1", memory: 512M}
  node-exporter:
    image: exporter:1
    volumes: ["/:/host:ro,rslave"]
    deploy: {mode: global}
networks:
  backend:
    driver: overlay
    driver_opts: {encrypted: "true"}
    attachable: false
    labels: {io.comet.service: backend}
  edge:
volumes:
  redis-1-data:
secrets:
  db_password: {name: t_db_password_v1, file: ../secrets/db_password, external: false}
  tls_key: {file: ../tls/key.pem}
configs:
  nginx_conf: {name: t_nginx_conf_v1, file: ./nginx/nginx.conf}
"#;

    #[test]
    fn reads_the_rendered_subset() {
        let stack = StackFile::parse("stack.yaml", FILE).expect("parses");
        let nginx = &stack.services["nginx"];
        assert_eq!(
            nginx.secret_mounts().expect("secrets"),
            vec![FileMount {
                source: "tls_key".into(),
                target: "/etc/nginx/tls/key.pem".into(),
                uid: "0".into(),
                gid: "0".into(),
                mode: 0o400
            }]
        );
        assert_eq!(nginx.config_mounts().expect("configs")[0].mode, 0o444);
        assert_eq!(nginx.mounts().expect("mounts"), vec![Mount::Tmpfs { target: "/tmp".into(), size_bytes: None }]);
        assert_eq!(
            nginx.ports().expect("ports"),
            vec![Port { target: 443, published: Some(8443), protocol: Protocol::Tcp, mode: PublishMode::Host }]
        );
        assert_eq!(nginx.networks.0.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), ["edge", "backend"]);
        let migrate = &stack.services["migrate"];
        assert!(migrate.is_job() && !nginx.is_job());
        assert_eq!(migrate.secret_mounts().expect("secrets")[0].target, "db_password");
        let redis = &stack.services["redis-1"];
        assert_eq!(redis.entrypoint.as_ref().map(|words| words[2].as_str()), Some("echo $HOME"));
        assert_eq!(redis.networks.0[0].1.aliases, vec!["cache".to_owned()]);
        assert!(stack.services["node-exporter"].is_global());
        assert_eq!(stack.secrets["tls_key"].name, None);
    }

    #[test]
    fn unknown_keys_bad_values_and_dangling_references_are_errors() {
        let cases = [
            (
                "      replicas: 1\n      placement:",
                "      replicas: 1\n      privileged: true\n      placement:",
                "privileged",
            ),
            ("        mode: 0400", "        mode: 0400\n        owner: me", "owner"),
            ("order: stop-first", "order: sideways", "sideways"),
            ("secrets: [db_password]", "secrets: [nope]", "secret `nope`"),
            ("networks: [backend]", "networks: [nowhere]", "network `nowhere`"),
            ("        mode: 0400", "        mode: 0999", "file mode"),
            ("monitor: 50s", "monitor: 50", "duration `50`"),
            ("deploy: {mode: global}", "deploy: {mode: global, replicas: 2}", "global"),
            ("file: ../tls/key.pem}", "file: ../tls/key.pem, external: true}", "external"),
            ("    driver: overlay", "    driver: bridge", "driver `bridge`"),
        ];
        for (from, to, expected) in cases {
            assert!(FILE.contains(from), "{from}");
            let error = StackFile::parse("stack.yaml", &FILE.replacen(from, to, 1)).expect_err(to);
            assert!(error.to_string().contains(expected), "{to}: {error}");
        }
    }

    #[test]
    fn file_modes_read_like_docker() {
        assert_eq!(parse_file_mode("0400"), Ok(0o400));
        assert_eq!(parse_file_mode("0o444"), Ok(0o444));
        assert_eq!(parse_file_mode("256"), Ok(256));
        assert_eq!(parse_file_mode("0"), Ok(0));
        assert!(parse_file_mode("0x1").is_err());
        assert!(parse_file_mode("").is_err());
        assert!(parse_file_mode("077777").is_err());
    }
}
