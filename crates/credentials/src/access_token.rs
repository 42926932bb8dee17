//! The claims of an MCP access token: what the authorization server
//! (`spend-mcp-signin`) signs and what every gateway reads, defined once so
//! that issuer and resource can never drift apart. The token itself is a
//! compact ES256 JWS (`typ` `at+jwt`, RFC 9068); signing is the issuer's
//! and verifying the gateway's, each with its own keys.
//!
//! Every claim is optional when read, so a token that lacks one is refused
//! by the gateway with an error naming it rather than failing to parse.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The authorization server that issued it.
    #[serde(default)]
    pub iss: String,
    /// The resource (the gateway's MCP URL) it is for.
    #[serde(default)]
    pub aud: Audience,
    /// The human who granted the scopes (their approver id).
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub org: String,
    /// Space-separated scopes (`mcp.read mcp.draft`).
    #[serde(default)]
    pub scope: String,
    /// The grant it was issued under: gateways refuse it once that is
    /// revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// `aud`: one resource, or several (RFC 7519 allows both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Default for Audience {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl Audience {
    /// Whether `resource` is one the token is for.
    pub fn contains(&self, resource: &str) -> bool {
        match self {
            Self::One(a) => a == resource,
            Self::Many(list) => list.iter().any(|a| a == resource),
        }
    }
}

impl std::fmt::Display for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| std::fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuers_claims_read_back_as_written_and_an_audience_may_be_a_list() {
        let claims = AccessClaims {
            iss: "https://approve.example.com".into(),
            aud: Audience::One("https://spend.example.com/mcp".into()),
            sub: "u_ada".into(),
            client_id: "c_1".into(),
            org: "acme".into(),
            scope: "mcp.read mcp.draft".into(),
            grant_id: Some("gr_1".into()),
            iat: Some(1),
            nbf: Some(1),
            exp: Some(2),
            jti: Some("j".into()),
        };
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(
            json["aud"], "https://spend.example.com/mcp",
            "one audience is a string, as RFC 9068 issuers write it"
        );
        assert_eq!(serde_json::from_value::<AccessClaims>(json).unwrap(), claims);
        let listed: AccessClaims = serde_json::from_str(r#"{"aud": ["https://other", "https://spend.example.com/mcp"]}"#).unwrap();
        assert!(listed.aud.contains("https://spend.example.com/mcp"));
        assert!(!listed.aud.contains("https://spend.example.com"));
        let bare: AccessClaims = serde_json::from_str("{}").unwrap();
        assert_eq!((bare.exp, bare.aud.contains("")), (None, false), "a missing claim reads as missing");
    }
}
