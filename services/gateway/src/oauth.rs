//! MCP authorization, resource-server side (OAuth 2.1 as the MCP spec
//! describes it): the protected resource metadata of RFC 9728, so that an
//! interactive client given only the server URL can discover which
//! authorization server to ask and which scopes exist. Refusals carry
//! `WWW-Authenticate: Bearer resource_metadata="…"` pointing here.
//!
//! The authorization server itself — dynamic client registration, PKCE,
//! and the consent step where a signed-in human grants mcp.read and/or
//! mcp.draft — belongs with the approval service's human sign-in.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::get;

use crate::GatewayState;

pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The scopes an agent can be granted. `mcp.approve` is not one of them.
pub const SCOPES: &[&str] = &["mcp.read", "mcp.draft"];

async fn metadata(State(state): State<Arc<GatewayState>>) -> Json<serde_json::Value> {
    let resource = state
        .config
        .resource_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/mcp", state.config.listen));
    Json(serde_json::json!({
        "resource": resource,
        "authorization_servers": state.config.authorization_servers,
        "scopes_supported": SCOPES,
        "bearer_methods_supported": ["header"],
        "resource_name": "SpendSignoff agents' gateway",
        "resource_documentation": "docs/gateway.md",
    }))
}

/// The metadata, at the root path and at the path of the MCP endpoint
/// (RFC 9728 §3.1 inserts the resource's path after the well-known part).
pub fn router(state: Arc<GatewayState>) -> axum::Router {
    axum::Router::new()
        .route(METADATA_PATH, get(metadata))
        .route(&format!("{METADATA_PATH}/mcp"), get(metadata))
        .with_state(state)
}

/// The `WWW-Authenticate` value of a 401.
pub fn challenge(state: &GatewayState) -> String {
    match &state.config.resource_url {
        Some(url) => {
            let origin = url.trim_end_matches("/mcp");
            format!("Bearer resource_metadata=\"{origin}{METADATA_PATH}\", scope=\"{}\"", SCOPES.join(" "))
        }
        None => format!("Bearer resource_metadata=\"{METADATA_PATH}\", scope=\"{}\"", SCOPES.join(" ")),
    }
}
