//! The chat REST API, `/v3`, shaped like CometChat's public REST API v3: resource names, field names and
//! the `{"data": …}` / `{"error": {"code", "message"}}` envelopes. A function builds the `Router`, so tests
//! call it without a socket and the server mounts it beside health and metrics.

mod admission;
mod auth;
mod blocks;
mod body;
mod conversations;
mod edge;
mod error;
mod groups;
mod messages;
mod moderation;
mod names;
mod notifications;
mod openapi;
mod reactions;
mod users;
mod views;
mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, patch, post, put};
use comet_store::Store;

pub use admission::{Admission, AdmissionLimits, Rate};
pub use blocks::MAX_BLOCKED_UIDS;
pub use body::MAX_PER_PAGE;
pub use edge::{MAX_HEADER_BYTES, MAX_HEADERS, MAX_URI_BYTES, request_timeout};
pub use error::ApiError;
pub use messages::{MAX_MESSAGE_BYTES, MAX_TAGS};
pub use openapi::OPENAPI_JSON;

/// Largest request body accepted: a message's 64 KiB of data plus its envelope.
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// Keys the API accepts. Several of each may be valid at once, so keys rotate without downtime.
#[derive(Clone)]
pub struct ApiConfig {
    pub full_keys: Vec<String>,
    pub auth_keys: Vec<String>,
    /// Checks webhook URLs (the SSRF guard with the operator's allow-list).
    pub webhook_guard: comet_webhooks::Guard,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("full_keys", &format_args!("[{} redacted]", self.full_keys.len()))
            .field("auth_keys", &format_args!("[{} redacted]", self.auth_keys.len()))
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    /// Where the webhook configurations live (MongoDB when deployed, else `store`).
    pub webhooks: std::sync::Arc<dyn comet_webhooks::WebhookConfigs>,
    pub config: std::sync::Arc<ApiConfig>,
    /// The process's bound on requests in flight and the callers' rates.
    pub admission: std::sync::Arc<Admission>,
    /// The moderation data (MongoDB when deployed, else `store`) and the rules compiled from it.
    pub moderation: comet_moderation::Moderation,
    /// Where notification preferences, defaults and mutes live (MongoDB when deployed, else `store`).
    pub notifications: std::sync::Arc<dyn comet_notifications::PreferenceStore>,
}

/// The `/v3` routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v3/openapi.json", get(openapi::document))
        .route("/v3/users", post(users::create).get(users::list))
        .route("/v3/users/{uid}", get(users::get))
        .route("/v3/users/{uid}/auth_tokens", post(users::create_auth_token))
        .route("/v3/users/{uid}", axum::routing::put(users::update).delete(users::delete))
        .route("/v3/users/{uid}/restore", axum::routing::put(users::restore))
        .route("/v3/users/{uid}/auth_tokens", get(users::list_auth_tokens))
        .route("/v3/users/{uid}/auth_tokens/{id}", axum::routing::delete(users::revoke_auth_token))
        .route("/v3/users/{uid}/blockedusers", post(blocks::block).get(blocks::list).delete(blocks::unblock))
        .route("/v3/users/{uid}/messages", get(messages::direct_history))
        .route("/v3/groups", post(groups::create))
        .route("/v3/groups/{guid}", get(groups::get))
        .route("/v3/groups/{guid}/members", post(groups::add_members).get(groups::list_members))
        .route("/v3/groups/{guid}/messages", get(messages::group_history))
        .route("/v3/groups", get(groups::list))
        .route("/v3/groups/{guid}", put(groups::update).delete(groups::delete))
        .route("/v3/groups/{guid}/members/{uid}", put(groups::change_scope).delete(groups::remove_member))
        .route("/v3/groups/{guid}/owner", axum::routing::patch(groups::transfer_ownership))
        .route("/v3/groups/{guid}/bannedusers", get(groups::list_bans))
        .route("/v3/groups/{guid}/bannedusers/{uid}", post(groups::ban).delete(groups::unban))
        .route("/v3/messages", post(messages::send))
        .route("/v3/messages/{id}", get(messages::get).put(messages::edit).delete(messages::delete))
        .route("/v3/messages/{id}/thread", get(messages::thread))
        .route("/v3/messages/{id}/reactions", get(reactions::list))
        .route("/v3/messages/{id}/reactions/{reaction}", post(reactions::add).delete(reactions::remove))
        .route("/v3/users/{uid}/conversation", axum::routing::delete(conversations::reset_direct))
        .route("/v3/users/{uid}/conversation/read", post(conversations::read_direct))
        .route("/v3/users/{uid}/conversation/delivered", post(conversations::delivered_direct))
        .route("/v3/groups/{guid}/conversation", axum::routing::delete(conversations::reset_group))
        .route("/v3/groups/{guid}/conversation/read", post(conversations::read_group))
        .route("/v3/groups/{guid}/conversation/delivered", post(conversations::delivered_group))
        .route("/v3/users/{uid}/conversations", get(conversations::list))
        .route("/v3/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/v3/webhooks/{webhookId}", get(webhooks::get).put(webhooks::update).delete(webhooks::delete))
        .route(
            "/v3/webhooks/{webhookId}/triggers",
            post(webhooks::add_triggers).get(webhooks::list_triggers).delete(webhooks::remove_triggers),
        )
        .route("/v3/webhooks/{webhookId}/secret/rotate", post(webhooks::rotate_secret))
        .route("/v3/webhooks/{webhookId}/deliveries", get(webhooks::list_deliveries))
        .route("/v3/webhooks/{webhookId}/deliveries/replay", post(webhooks::replay_range))
        .route("/v3/webhooks/{webhookId}/deliveries/{deliveryId}", get(webhooks::get_delivery))
        .route("/v3/webhooks/{webhookId}/deliveries/{deliveryId}/replay", post(webhooks::replay_delivery))
        .route("/v3/notifications/tokens", post(notifications::register_token).get(notifications::list_tokens))
        .route("/v3/notifications/tokens/{pushTokenId}", axum::routing::delete(notifications::delete_token))
        .route(
            "/v3/notifications/preferences",
            get(notifications::get_preferences)
                .put(notifications::put_preferences)
                .delete(notifications::reset_preferences),
        )
        .route("/v3/notifications/mutes", get(notifications::list_mutes))
        .route(
            "/v3/notifications/mutes/{receiverType}/{receiver}",
            put(notifications::mute).delete(notifications::unmute),
        )
        .route("/v3/notifications/providers", post(notifications::create_provider).get(notifications::list_providers))
        .route(
            "/v3/notifications/providers/{providerId}",
            get(notifications::get_provider).put(notifications::update_provider).delete(notifications::delete_provider),
        )
        .route("/v3/notifications/defaults", get(notifications::get_defaults).put(notifications::put_defaults))
        .route("/v3/notifications/log", get(notifications::list_log))
        .route("/v3/moderation/rules", post(moderation::rules::create).get(moderation::rules::list))
        .route(
            "/v3/moderation/rules/{ruleId}",
            get(moderation::rules::get).put(moderation::rules::update).delete(moderation::rules::delete),
        )
        .route("/v3/moderation/rules/{ruleId}/revisions", get(moderation::rules::revisions))
        .route("/v3/moderation/lists", post(moderation::lists::create).get(moderation::lists::list))
        .route(
            "/v3/moderation/lists/{listId}",
            get(moderation::lists::get).put(moderation::lists::update).delete(moderation::lists::delete),
        )
        .route("/v3/moderation/lists/{listId}/import", post(moderation::lists::import))
        .route("/v3/moderation/blocked-messages", get(moderation::queues::blocked))
        .route("/v3/moderation/blocked-messages/{reviewId}", patch(moderation::queues::decide_blocked))
        .route("/v3/moderation/flagged-messages", get(moderation::queues::flagged))
        .route("/v3/moderation/flagged-messages/{reviewId}", patch(moderation::queues::decide_flagged))
        .route("/v3/moderation/reviewed-messages", get(moderation::queues::reviewed))
        .route("/v3/moderation/audit", get(moderation::queues::audit_log))
        .route("/v3/messages/{id}/flagged", post(moderation::queues::report))
        .method_not_allowed_fallback(edge::method_not_allowed)
        .fallback(|| async { ApiError::not_found("ERR_ROUTE_NOT_FOUND", "no such endpoint under /v3") })
        .layer(axum::middleware::from_fn_with_state(state.admission.clone(), admission::admit))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(edge::limits))
        .layer(axum::middleware::from_fn(edge::envelope))
        .with_state(state)
}

/// Milliseconds since the epoch; the API's only clock.
pub(crate) fn now() -> comet_model::Millis {
    comet_model::now_millis()
}
