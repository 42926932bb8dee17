//! `spendsignoff.v1.Ledger` over gRPC, with gRPC health and reflection
//! (v1 and v1alpha, since common tools still speak only v1alpha). Protobuf
//! types stop here; errors map to `tonic::Status` only in this module.

use std::pin::Pin;
use std::sync::Arc;

use spend_proto::internal::{Caller, Callers, Guard, Rules};
use spend_proto::v1::ledger_server::{Ledger, LedgerServer};
use spend_proto::v1::{
    Checkpoint, ConsistencyProofRequest, ConsistencyProofResponse, ExportLine, ExportRequest, InclusionProofRequest, InclusionProofResponse,
    LatestCheckpointRequest, QueryEventsRequest, QueryEventsResponse, StoredEvent,
};
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};

use crate::SharedState;
use crate::export::{self, ExportError, LineSink};
use crate::merkle;
use crate::store::{CheckpointRow, EventFilter, EventRow, Store, StoreError};

fn ts(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn from_ts(t: &prost_types::Timestamp, field: &str) -> Result<chrono::DateTime<chrono::Utc>, Status> {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32).ok_or_else(|| Status::invalid_argument(format!("{field}: timestamp out of range")))
}

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::Unavailable(m) => Status::unavailable(m),
        StoreError::Internal(m) => {
            tracing::error!(error = %m, "ledger query failed");
            Status::internal("ledger database error")
        }
    }
}

fn stored_event(e: EventRow) -> StoredEvent {
    StoredEvent {
        index: e.idx,
        seq: e.seq,
        subject: e.subject,
        payload: e.payload,
        leaf_hash: e.leaf_hash.to_vec(),
        id: e.event_id.unwrap_or_default(),
        r#type: e.event_type.unwrap_or_default(),
        org: e.org.unwrap_or_default(),
        time: e.event_time.map(ts),
        rejected: e.reject_reason.is_some(),
        reject_reason: e.reject_reason.unwrap_or_default(),
    }
}

fn checkpoint(c: CheckpointRow) -> Checkpoint {
    Checkpoint {
        origin: c.origin,
        tree_size: c.tree_size,
        root_hash: c.root_hash.to_vec(),
        body: c.body,
        signature: c.signature,
        key_id: c.key_id,
        signed_at: Some(ts(c.signed_at)),
    }
}

struct LedgerService {
    store: Arc<dyn Store>,
    subject_prefix: String,
    state: Arc<SharedState>,
}

impl LedgerService {
    /// Resolves a requested tree size (0 = latest signed) against what is
    /// signed, so proofs are always about a signed root.
    async fn signed_size(&self, requested: u64) -> Result<u64, Status> {
        let tree = self.state.tree.read().await;
        let signed = tree.checkpoint.as_ref().map(|c| c.tree_size).unwrap_or(0);
        let size = if requested == 0 { signed } else { requested };
        if size == 0 {
            return Err(Status::failed_precondition("the ledger has no signed checkpoint yet"));
        }
        if size > tree.leaves.len() as u64 {
            return Err(Status::out_of_range(format!(
                "tree size {size} is larger than the ledger ({} events)",
                tree.leaves.len()
            )));
        }
        Ok(size)
    }
}

struct ChannelSink(tokio::sync::mpsc::Sender<Result<ExportLine, Status>>);

#[tonic::async_trait]
impl LineSink for ChannelSink {
    async fn line(&mut self, json: String) -> Result<(), ExportError> {
        self.0
            .send(Ok(ExportLine { json }))
            .await
            .map_err(|_| ExportError::Io(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away")))
    }
}

#[tonic::async_trait]
impl Ledger for LedgerService {
    #[tracing::instrument(skip_all, fields(org = %request.get_ref().org))]
    async fn query_events(&self, request: Request<QueryEventsRequest>) -> Result<Response<QueryEventsResponse>, Status> {
        let r = request.into_inner();
        let opt = |s: String| (!s.is_empty()).then_some(s);
        let limit = if r.limit == 0 { 100 } else { r.limit.min(1000) };
        let filter = EventFilter {
            org: opt(r.org),
            event_type: opt(r.r#type),
            subject: opt(r.subject),
            from: r.from.as_ref().map(|t| from_ts(t, "from")).transpose()?,
            to: r.to.as_ref().map(|t| from_ts(t, "to")).transpose()?,
            after_index: r.after_index,
            limit,
        };
        let rows = self.store.query_events(&filter).await.map_err(store_status)?;
        let next = (rows.len() as u32 == limit).then(|| rows.last().map(|e| e.idx)).flatten();
        Ok(Response::new(QueryEventsResponse {
            events: rows.into_iter().map(stored_event).collect(),
            next_after_index: next,
        }))
    }

    async fn latest_checkpoint(&self, _: Request<LatestCheckpointRequest>) -> Result<Response<Checkpoint>, Status> {
        let cp = self.state.tree.read().await.checkpoint.clone();
        let cp = match cp {
            Some(cp) => cp,
            None => self
                .store
                .latest_checkpoint()
                .await
                .map_err(store_status)?
                .ok_or_else(|| Status::not_found("the ledger has no signed checkpoint yet"))?,
        };
        Ok(Response::new(checkpoint(cp)))
    }

    async fn inclusion_proof(&self, request: Request<InclusionProofRequest>) -> Result<Response<InclusionProofResponse>, Status> {
        let r = request.into_inner();
        let size = self.signed_size(r.tree_size).await?;
        if r.index >= size {
            return Err(Status::out_of_range(format!("index {} is not in a tree of {size} events", r.index)));
        }
        let tree = self.state.tree.read().await;
        let leaves = &tree.leaves[..size as usize];
        Ok(Response::new(InclusionProofResponse {
            index: r.index,
            tree_size: size,
            leaf_hash: leaves[r.index as usize].to_vec(),
            audit_path: merkle::inclusion_proof(leaves, r.index as usize).into_iter().map(|h| h.to_vec()).collect(),
            root_hash: merkle::root(leaves).to_vec(),
        }))
    }

    async fn consistency_proof(&self, request: Request<ConsistencyProofRequest>) -> Result<Response<ConsistencyProofResponse>, Status> {
        let r = request.into_inner();
        let new = self.signed_size(r.new_size).await?;
        if r.old_size == 0 || r.old_size > new {
            return Err(Status::invalid_argument(format!("old_size must be between 1 and {new}")));
        }
        let tree = self.state.tree.read().await;
        let leaves = &tree.leaves[..new as usize];
        Ok(Response::new(ConsistencyProofResponse {
            old_size: r.old_size,
            new_size: new,
            proof: merkle::consistency_proof(leaves, r.old_size as usize).into_iter().map(|h| h.to_vec()).collect(),
            old_root: merkle::root(&leaves[..r.old_size as usize]).to_vec(),
            new_root: merkle::root(leaves).to_vec(),
        }))
    }

    type ExportStream = Pin<Box<dyn Stream<Item = Result<ExportLine, Status>> + Send + 'static>>;

    async fn export(&self, request: Request<ExportRequest>) -> Result<Response<Self::ExportStream>, Status> {
        let r = request.into_inner();
        let plan = export::plan(self.store.as_ref(), r.from_index, r.to_index).await.map_err(|e| match e {
            ExportError::Store(s) => store_status(s),
            other => Status::failed_precondition(other.to_string()),
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let store = self.store.clone();
        let prefix = self.subject_prefix.clone();
        tokio::spawn(async move {
            let mut sink = ChannelSink(tx.clone());
            if let Err(e) = export::write(store.as_ref(), plan, &prefix, &mut sink, |_| {}).await {
                let _ = tx.send(Err(Status::internal(format!("export failed: {e}")))).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Who may call each RPC (docs/architecture.md lists them): auditors and
/// the operator; no service reads the ledger over gRPC.
pub const RULES: Rules = &[
    ("QueryEvents", READERS),
    ("LatestCheckpoint", READERS),
    ("InclusionProof", READERS),
    ("ConsistencyProof", READERS),
    ("Export", READERS),
];
const READERS: &[Caller] = &[Caller::Auditor, Caller::Operator];

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    subject_prefix: String,
    state: Arc<SharedState>,
    callers: Option<Callers>,
    alerts: spend_eventlog::alerts::AlertSink,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    spend_proto::internal::check_exposure("the ledger", listener.local_addr()?, callers.as_ref()).map_err(anyhow::Error::msg)?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<LedgerServer<LedgerService>>().await;
    let reflection_v1 = spend_proto::reflection(&["spendsignoff.v1.Ledger"]).build_v1()?;
    let reflection_v1alpha = spend_proto::reflection(&["spendsignoff.v1.Ledger"]).build_v1alpha()?;
    tracing::info!(addr = %listener.local_addr()?, "ledger gRPC listening");
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(Guard::new(LedgerServer::new(LedgerService { store, subject_prefix, state }), RULES, callers).audited_by(alerts.refuser()))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod rules_tests {
    #[test]
    fn every_rpc_says_who_may_call_it() {
        spend_proto::internal::assert_rules_cover("spendsignoff.v1.Ledger", super::RULES);
    }
}
