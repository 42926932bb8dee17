//! Generated gRPC contracts for every SpendSignoff service
//! (proto/spendsignoff/v1). Services convert these types at their edges
//! (`TryFrom`) so domain code never sees protobuf types.
#![allow(clippy::all)]

pub mod v1 {
    tonic::include_proto!("spendsignoff.v1");
}

/// Encoded file descriptor set for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("spendsignoff_descriptor");

/// gRPC reflection for a server that serves `services` (fully qualified,
/// e.g. `spendsignoff.v1.Ledger`) and gRPC health: it lists exactly those,
/// and describes them from every SpendSignoff contract. For `.build_v1()`
/// and `.build_v1alpha()` (grpcurl speaks the latter).
pub fn reflection(services: &[&str]) -> tonic_reflection::server::Builder<'static> {
    let mut b = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health");
    for s in services {
        b = b.with_service_name(*s);
    }
    b
}

pub mod internal;
