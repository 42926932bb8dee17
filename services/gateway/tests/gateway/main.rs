//! The gateway's integration tests, in one binary (one link for all of
//! them): each module runs the gateway against the real parts (JetStream,
//! or the embedded log where the test is about the gateway alone, and
//! nats-server instances of their own where a test restarts or
//! re-permissions one).

mod common;

mod approval_attacks;
mod drafts;
mod fuzz;
mod grpc;
mod mcp;
mod mcp_hosts;
mod mcp_signin;
mod mcp_signin_attacks;
mod nats_permissions;
mod nats_restart;
mod oauth;
mod security;
