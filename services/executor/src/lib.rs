//! The executor: the only holder of platform tokens (KMS envelope-encrypted),
//! the platform connectors, pushes of human-approved changes with
//! idempotency keys, one-click rollback, and kill switches
//! (`spend card freeze --all`). Contract: proto/spendsignoff/v1/executor.proto.
//!
//! Not built yet: this crate holds the executor's place in the workspace.
#![forbid(unsafe_code)]
