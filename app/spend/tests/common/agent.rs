//! An agent on the gateway's gRPC `AgentGateway`, with its API key.

use std::time::{Duration, Instant};

use spend_proto::v1 as pb;
use spend_proto::v1::agent_gateway_client::AgentGatewayClient;

pub struct Agent {
    pub client: AgentGatewayClient<tonic::transport::Channel>,
    bearer: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

/// A payment of `minor` US cents to openai.com from `account`.
pub fn payment(account: &str, minor: i64, rationale: &str) -> pb::ProposeChangeRequest {
    pb::ProposeChangeRequest {
        account_id: account.into(),
        rationale: rationale.into(),
        change: Some(pb::propose_change_request::Change::Payment(pb::Payment {
            amount: Some(pb::Money {
                minor_units: minor,
                currency: "USD".into(),
            }),
            merchant: "openai.com".into(),
            card_id: "crd_1".into(),
            url: "https://openai.com/billing".into(),
            ..Default::default()
        })),
    }
}

impl Agent {
    /// Connects to the gateway at `addr` (`127.0.0.1:PORT`) with `key`.
    pub async fn connect(addr: &str, key: &str) -> Self {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            client: AgentGatewayClient::new(channel),
            bearer: format!("Bearer {key}").parse().unwrap(),
        }
    }

    /// `m` with the agent's key.
    pub fn req<T>(&self, m: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(m);
        r.metadata_mut().insert("authorization", self.bearer.clone());
        r
    }

    /// A raise of `campaign`'s daily budget to `minor` US cents.
    pub async fn raise(&mut self, account: &str, campaign: &str, minor: i64, rationale: &str) -> pb::Draft {
        let req = self.req(pb::ProposeChangeRequest {
            account_id: account.into(),
            rationale: rationale.into(),
            change: Some(pb::propose_change_request::Change::Budget(pb::BudgetChange {
                campaign_id: campaign.into(),
                new_daily_budget: Some(pb::Money {
                    minor_units: minor,
                    currency: "USD".into(),
                }),
            })),
        });
        self.client
            .propose_change(req)
            .await
            .expect("a budget draft")
            .into_inner()
            .draft
            .expect("a draft")
    }

    pub async fn pay(&mut self, account: &str, minor: i64, rationale: &str) -> Result<pb::Draft, tonic::Status> {
        let req = self.req(payment(account, minor, rationale));
        Ok(self.client.propose_change(req).await?.into_inner().draft.expect("a draft"))
    }

    /// [`Agent::pay`], waiting out a gateway that has not read the key
    /// from the log yet (it just started).
    pub async fn pay_once_known(&mut self, account: &str, minor: i64, rationale: &str) -> pb::Draft {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.pay(account, minor, rationale).await {
                Ok(d) => return d,
                Err(e) if e.code() == tonic::Code::Unauthenticated && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("proposing a payment: {e}"),
            }
        }
    }

    pub async fn draft(&mut self, draft_id: &str) -> pb::Draft {
        let req = self.req(pb::GetDraftStatusRequest { draft_id: draft_id.into() });
        self.client.get_draft_status(req).await.unwrap().into_inner()
    }

    pub async fn status(&mut self, draft_id: &str) -> String {
        self.draft(draft_id).await.status
    }
}
