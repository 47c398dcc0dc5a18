//! The labels cometctl puts on what it creates, and the ones the Engine and `docker stack` put there: how
//! the observed state is found and recognised.

/// The label every object of a deployment carries, with the deployment's name.
pub const DEPLOYMENT_LABEL: &str = "io.comet.deployment";
/// The label naming the service (spec key or store member) an object belongs to.
pub const SERVICE_LABEL: &str = "io.comet.service";

/// The label the Engine puts on a Swarm task's container, with the task's id.
pub const SWARM_TASK_LABEL: &str = "com.docker.swarm.task.id";

/// The Compose service a container belongs to (several containers per service when it has replicas).
pub const COMPOSE_SERVICE_LABEL: &str = "io.comet.compose-service";
/// The sha256 of the container's create request and the image id it was created from.
pub const CONFIG_HASH_LABEL: &str = "io.comet.config-hash";
/// The label `docker stack` uses for the stack an object belongs to.
pub const STACK_NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
/// The image reference, as `docker stack deploy` records it on a service.
pub const STACK_IMAGE_LABEL: &str = "com.docker.stack.image";
/// On a task's container: the hash of the task template and image it was created from.
pub const TASK_HASH_LABEL: &str = "io.comet.task-hash";
/// On a service: the id of the local image its reference named when it was deployed.
pub const IMAGE_ID_LABEL: &str = "io.comet.image-id";
