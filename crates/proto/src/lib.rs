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

/// Authentication between services: the policy, executor and ledger gRPC
/// services are internal (agents reach only the gateway), so each checks a
/// shared token in the `x-spend-internal-token` metadata when one is
/// configured (`SPEND__INTERNAL__TOKEN`), and refuses to listen beyond
/// loopback without one ([`check_exposure`]) — so nothing offers reads
/// around the gateway's guard. Health stays open for probes.
pub mod internal {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use subtle::ConstantTimeEq as _;
    use tonic::metadata::{Ascii, MetadataValue};
    use tonic::service::Interceptor;
    use tonic::{Request, Status};

    pub const HEADER: &str = "x-spend-internal-token";

    /// Server side: requires the token when one is configured.
    #[derive(Clone, Default)]
    pub struct Require(Option<Arc<[u8]>>);

    impl Require {
        pub fn new(token: Option<&str>) -> Self {
            Self(token.filter(|t| !t.is_empty()).map(|t| Arc::from(t.as_bytes())))
        }
    }

    impl Interceptor for Require {
        fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
            let Some(expected) = &self.0 else { return Ok(req) };
            let given = req.metadata().get(HEADER).map(|v| v.as_bytes()).unwrap_or_default();
            if given.len() == expected.len() && bool::from(given.ct_eq(expected)) {
                Ok(req)
            } else {
                tracing::warn!("internal gRPC call refused: missing or wrong {HEADER}");
                Err(Status::unauthenticated(format!(
                    "this is an internal SpendSignoff service: send the shared token in {HEADER}"
                )))
            }
        }
    }

    /// Client side: sends the token when one is configured.
    #[derive(Clone, Default)]
    pub struct Attach(Option<MetadataValue<Ascii>>);

    impl Attach {
        pub fn new(token: Option<&str>) -> Result<Self, String> {
            token
                .filter(|t| !t.is_empty())
                .map(|t| {
                    t.parse::<MetadataValue<Ascii>>()
                        .map_err(|_| "the internal token must be printable ASCII".to_string())
                })
                .transpose()
                .map(Self)
        }
    }

    impl Interceptor for Attach {
        fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
            if let Some(v) = &self.0 {
                req.metadata_mut().insert(HEADER, v.clone());
            }
            Ok(req)
        }
    }

    /// Refuses to serve `service` beyond loopback without a token.
    pub fn check_exposure(service: &str, addr: SocketAddr, token: Option<&str>) -> Result<(), String> {
        if addr.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
            return Ok(());
        }
        Err(format!(
            "{service} would listen on {addr} without authentication: set SPEND__INTERNAL__TOKEN (the same on every service) or listen on 127.0.0.1"
        ))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_wrong_or_missing_token_is_refused_and_an_open_address_needs_one() {
            let mut require = Require::new(Some("s3cret"));
            assert!(require.call(Request::new(())).is_err());
            let mut ok = Attach::new(Some("s3cret")).unwrap();
            assert!(require.call(ok.call(Request::new(())).unwrap()).is_ok());
            let mut wrong = Attach::new(Some("s3creT")).unwrap();
            assert!(require.call(wrong.call(Request::new(())).unwrap()).is_err());
            assert!(Require::new(None).call(Request::new(())).is_ok());
            assert!(check_exposure("policy", "0.0.0.0:7102".parse().unwrap(), None).is_err());
            assert!(check_exposure("policy", "127.0.0.1:7102".parse().unwrap(), None).is_ok());
            assert!(check_exposure("policy", "0.0.0.0:7102".parse().unwrap(), Some("t")).is_ok());
        }
    }
}
