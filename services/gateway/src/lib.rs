//! The agents' gateway: the only surface an AI agent can reach, over MCP
//! (Streamable HTTP, at `/mcp`) and gRPC (`spendsignoff.v1.AgentGateway`,
//! proto/spendsignoff/v1/gateway.proto). It authenticates agent API keys,
//! enforces scopes (`mcp.read`, `mcp.draft`; `mcp.approve` is never minted
//! for an agent), the IP allowlist, signed requests and rate limits from
//! SPEND.md's `security:` section, and audits every refusal as a
//! `spend.security.alert.v1` event.
//!
//! Built so far: [`credentials`] (API keys, scopes, the key store every
//! replica builds from the event log). The MCP and gRPC surfaces come next.
#![forbid(unsafe_code)]

pub mod credentials;
