//! The executor's read contract over gRPC (`spendsignoff.v1.Executor`):
//! the conversions between protobuf messages and the [`crate::types`]
//! shapes, the mapping of [`ReadError`] to gRPC codes and back, and
//! [`ExecutorClient`], the gateway's side of the wire. Protobuf types stop
//! here: the server (in the executor) and the client both convert.

use chrono::{DateTime, Utc};
use spend_proto::v1 as pb;
use spend_proto::v1::executor_client::ExecutorClient as PbClient;
use tonic::Status;
use tonic::transport::Channel;

use crate::reads::{ReadError, Reads};
use crate::types::{Account, AccountHealth, Campaign, Card, Merchant, Performance, TokenHealth, Transaction};

pub fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn from_ts(t: Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

fn money(minor: i64, currency: &str) -> Option<pb::Money> {
    Some(pb::Money {
        minor_units: minor,
        currency: currency.to_string(),
    })
}

pub fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

impl From<ReadError> for Status {
    fn from(e: ReadError) -> Self {
        let m = e.to_string();
        match e {
            ReadError::NotFound(_) => Status::not_found(m),
            ReadError::Invalid(_) => Status::invalid_argument(m),
            ReadError::TokenRefused(_) | ReadError::NotConnected(_) => Status::failed_precondition(m),
            ReadError::Throttled => Status::resource_exhausted(m),
            ReadError::Unavailable(_) => Status::unavailable(m),
        }
    }
}

fn read_error(s: Status) -> ReadError {
    let m = s.message().to_string();
    match s.code() {
        tonic::Code::NotFound => ReadError::NotFound(m),
        tonic::Code::InvalidArgument => ReadError::Invalid(m),
        tonic::Code::FailedPrecondition => match m.strip_prefix("not connected: ") {
            Some(rest) => ReadError::NotConnected(rest.to_string()),
            None => ReadError::TokenRefused(m),
        },
        tonic::Code::ResourceExhausted => ReadError::Throttled,
        _ => ReadError::Unavailable(format!("executor: {m}")),
    }
}

pub fn account_pb(a: &Account) -> pb::Account {
    pb::Account {
        id: a.id.clone(),
        platform: a.platform.clone(),
        name: a.name.clone(),
        currency: a.currency.clone(),
    }
}

pub fn campaign_pb(c: &Campaign) -> pb::Campaign {
    pb::Campaign {
        id: c.id.clone(),
        account_id: c.account_id.clone(),
        name: c.name.clone(),
        status: c.status.clone(),
        daily_budget: money(c.daily_budget_minor, &c.currency),
        bid: money(c.bid_minor, &c.currency),
        updated_at: Some(ts(c.updated_at)),
    }
}

pub fn performance_pb(p: &Performance) -> pb::GetPerformanceResponse {
    pb::GetPerformanceResponse {
        impressions: p.impressions,
        clicks: p.clicks,
        conversions: p.conversions,
        spend: money(p.spend_minor, &p.currency),
        account_id: p.account_id.clone(),
        campaign_id: p.campaign_id.clone().unwrap_or_default(),
        from: Some(ts(p.from)),
        to: Some(ts(p.to)),
    }
}

pub fn card_pb(c: &Card) -> pb::Card {
    pb::Card {
        id: c.id.clone(),
        last4: c.last4.clone(),
        status: c.status.clone(),
        limit: money(c.limit_minor, &c.currency),
    }
}

pub fn transaction_pb(t: &Transaction) -> pb::Transaction {
    pb::Transaction {
        id: t.id.clone(),
        status: t.status.clone(),
        amount: money(t.amount_minor, &t.currency),
        merchant: t.merchant.clone(),
        time: Some(ts(t.time)),
        card_id: t.card_id.clone(),
    }
}

pub fn token_health_pb(h: &TokenHealth) -> pb::CheckTokenHealthResponse {
    pb::CheckTokenHealthResponse {
        healthy: h.healthy,
        expires_at: h.expires_at.map(ts),
        granted_platform_scopes: h.granted_scopes.clone(),
        problem: h.problem.clone().unwrap_or_default(),
        accounts: h
            .accounts
            .iter()
            .map(|a| pb::AccountHealth {
                account_id: a.account_id.clone(),
                platform: a.platform.clone(),
                status: a.status.clone(),
                scopes: a.scopes.clone(),
                access_expires_at: a.access_expires_at.map(ts),
                consent_expires_at: a.consent_expires_at.map(ts),
                problem: a.problem.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

/// A health answer as the read contract holds it.
pub fn token_health_from(r: pb::CheckTokenHealthResponse) -> TokenHealth {
    TokenHealth {
        healthy: r.healthy,
        expires_at: from_ts(r.expires_at),
        granted_scopes: r.granted_platform_scopes,
        problem: non_empty(&r.problem).map(str::to_string),
        accounts: r
            .accounts
            .into_iter()
            .map(|a| AccountHealth {
                account_id: a.account_id,
                platform: a.platform,
                status: a.status,
                scopes: a.scopes,
                access_expires_at: from_ts(a.access_expires_at),
                consent_expires_at: from_ts(a.consent_expires_at),
                problem: non_empty(&a.problem).map(str::to_string),
            })
            .collect(),
    }
}

/// The organisation a call to the executor is for: gRPC metadata, set by
/// the gateway from the agent key (never from anything the agent sends).
pub const ORG_HEADER: &str = spend_proto::internal::ORG_HEADER;

/// A request for `org`.
fn for_org<T>(org: &str, message: T) -> Result<tonic::Request<T>, ReadError> {
    let mut r = tonic::Request::new(message);
    let value = org.parse().map_err(|_| ReadError::Invalid(format!("{org:?} is not an organisation id")))?;
    r.metadata_mut().insert(ORG_HEADER, value);
    Ok(r)
}

/// The organisation a request is for (the executor's side).
pub fn org_of<T>(r: &tonic::Request<T>) -> Result<String, tonic::Status> {
    r.metadata()
        .get(ORG_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|o| spend_core::subject::is_valid_token(o))
        .map(str::to_string)
        .ok_or_else(|| tonic::Status::invalid_argument(format!("the {ORG_HEADER} metadata must name the organisation")))
}

pub fn merchant_pb(m: &Merchant) -> pb::Merchant {
    pb::Merchant {
        domain: m.domain.clone(),
        name: m.name.clone(),
        category: m.category.clone(),
        country: m.country.clone().unwrap_or_default(),
        https: m.https,
    }
}

fn money_parts(m: Option<pb::Money>) -> (i64, String) {
    m.map(|m| (m.minor_units, m.currency)).unwrap_or_default()
}

/// The gateway's client of a separately deployed executor.
#[derive(Clone)]
pub struct ExecutorClient {
    inner: PbClient<tonic::service::interceptor::InterceptedService<Channel, spend_proto::internal::Attach>>,
}

impl ExecutorClient {
    /// Connects lazily: an executor that is down fails reads with
    /// `Unavailable`, not the gateway's start-up.
    /// A lazy connection to `url`, sending the internal token when given.
    pub fn connect_lazy(url: &str, token: Option<&str>) -> Result<Self, ReadError> {
        let channel = Channel::from_shared(url.to_string())
            .map_err(|e| ReadError::Invalid(format!("executor url {url:?}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(15))
            .connect_lazy();
        let attach = spend_proto::internal::Attach::new(token).map_err(ReadError::Invalid)?;
        Ok(Self {
            inner: PbClient::with_interceptor(channel, attach),
        })
    }
}

#[async_trait::async_trait]
impl Reads for ExecutorClient {
    async fn accounts(&self, org: &str) -> Result<Vec<Account>, ReadError> {
        let r = self
            .inner
            .clone()
            .list_accounts(for_org(org, pb::ListAccountsRequest {})?)
            .await
            .map_err(read_error)?;
        Ok(r.into_inner()
            .accounts
            .into_iter()
            .map(|a| Account {
                id: a.id,
                platform: a.platform,
                name: a.name,
                currency: a.currency,
            })
            .collect())
    }

    async fn campaigns(&self, org: &str, account_id: &str) -> Result<Vec<Campaign>, ReadError> {
        let r = self
            .inner
            .clone()
            .list_campaigns(for_org(
                org,
                pb::ListCampaignsRequest {
                    account_id: account_id.to_string(),
                },
            )?)
            .await
            .map_err(read_error)?;
        Ok(r.into_inner()
            .campaigns
            .into_iter()
            .map(|c| {
                let (budget, currency) = money_parts(c.daily_budget);
                let (bid, _) = money_parts(c.bid);
                Campaign {
                    id: c.id,
                    account_id: c.account_id,
                    name: c.name,
                    status: c.status,
                    daily_budget_minor: budget,
                    bid_minor: bid,
                    currency,
                    updated_at: from_ts(c.updated_at).unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn performance(
        &self,
        org: &str,
        account_id: &str,
        campaign_id: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Performance, ReadError> {
        let r = self
            .inner
            .clone()
            .get_performance(for_org(
                org,
                pb::GetPerformanceRequest {
                    account_id: account_id.to_string(),
                    campaign_id: campaign_id.unwrap_or_default().to_string(),
                    from: from.map(ts),
                    to: to.map(ts),
                },
            )?)
            .await
            .map_err(read_error)?
            .into_inner();
        let (spend, currency) = money_parts(r.spend);
        Ok(Performance {
            account_id: r.account_id,
            campaign_id: non_empty(&r.campaign_id).map(str::to_string),
            from: from_ts(r.from).unwrap_or_default(),
            to: from_ts(r.to).unwrap_or_default(),
            impressions: r.impressions,
            clicks: r.clicks,
            conversions: r.conversions,
            spend_minor: spend,
            currency,
        })
    }

    async fn cards(&self, org: &str) -> Result<Vec<Card>, ReadError> {
        let r = self
            .inner
            .clone()
            .list_cards(for_org(org, pb::ListCardsRequest {})?)
            .await
            .map_err(read_error)?;
        Ok(r.into_inner()
            .cards
            .into_iter()
            .map(|c| {
                let (limit, currency) = money_parts(c.limit);
                Card {
                    id: c.id,
                    last4: c.last4,
                    status: c.status,
                    limit_minor: limit,
                    currency,
                }
            })
            .collect())
    }

    async fn transactions(&self, org: &str, status: Option<&str>, from: Option<DateTime<Utc>>) -> Result<Vec<Transaction>, ReadError> {
        let r = self
            .inner
            .clone()
            .list_transactions(for_org(
                org,
                pb::ListTransactionsRequest {
                    status: status.unwrap_or_default().to_string(),
                    from: from.map(ts),
                },
            )?)
            .await
            .map_err(read_error)?;
        Ok(r.into_inner()
            .transactions
            .into_iter()
            .map(|t| {
                let (amount, currency) = money_parts(t.amount);
                Transaction {
                    id: t.id,
                    card_id: t.card_id,
                    status: t.status,
                    amount_minor: amount,
                    currency,
                    merchant: t.merchant,
                    time: from_ts(t.time).unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn token_health(&self, org: &str, account_id: Option<&str>) -> Result<TokenHealth, ReadError> {
        let request = pb::CheckTokenHealthRequest {
            account_id: account_id.unwrap_or_default().to_string(),
        };
        let r = self
            .inner
            .clone()
            .check_token_health(for_org(org, request)?)
            .await
            .map_err(read_error)?
            .into_inner();
        Ok(token_health_from(r))
    }

    async fn merchant(&self, org: &str, domain: &str) -> Result<Option<Merchant>, ReadError> {
        let r = self
            .inner
            .clone()
            .get_merchant(for_org(org, pb::GetMerchantRequest { domain: domain.to_string() })?)
            .await
            .map_err(read_error)?
            .into_inner();
        Ok(r.merchant.map(|m| Merchant {
            domain: m.domain,
            name: m.name,
            category: m.category,
            country: Some(m.country).filter(|c| !c.is_empty()),
            https: m.https,
        }))
    }
}

fn connect_error(s: Status) -> crate::ConnectError {
    let m = s.message().to_string();
    match s.code() {
        tonic::Code::InvalidArgument | tonic::Code::NotFound => crate::ConnectError::Invalid(m),
        tonic::Code::PermissionDenied => match m.split_once(": ") {
            Some((error, description)) => crate::ConnectError::Platform {
                error: error.to_string(),
                description: description.to_string(),
            },
            None => crate::ConnectError::Platform {
                error: "refused".into(),
                description: m,
            },
        },
        _ => crate::ConnectError::Unavailable(format!("executor: {m}")),
    }
}

impl From<crate::ConnectError> for Status {
    fn from(e: crate::ConnectError) -> Self {
        match e {
            crate::ConnectError::Invalid(m) => Status::invalid_argument(m),
            crate::ConnectError::Platform { error, description } => Status::permission_denied(format!("{error}: {description}")),
            crate::ConnectError::Unavailable(m) => Status::unavailable(m),
        }
    }
}

/// An account's health as gRPC carries it.
pub fn account_health_pb(a: &AccountHealth) -> pb::AccountHealth {
    token_health_pb(&TokenHealth {
        healthy: true,
        expires_at: None,
        granted_scopes: vec![],
        problem: None,
        accounts: vec![a.clone()],
    })
    .accounts
    .remove(0)
}

fn account_health_from(a: Option<pb::AccountHealth>) -> Result<AccountHealth, crate::ConnectError> {
    let a = a.ok_or_else(|| crate::ConnectError::Unavailable("the executor answered without the account".into()))?;
    Ok(token_health_from(pb::CheckTokenHealthResponse {
        accounts: vec![a],
        ..Default::default()
    })
    .accounts
    .remove(0))
}

#[async_trait::async_trait]
impl crate::Connect for ExecutorClient {
    async fn begin(
        &self,
        org: &str,
        account_id: Option<&str>,
        write: Option<&str>,
        redirect_uri: &str,
        purpose: &str,
    ) -> Result<crate::Begun, crate::ConnectError> {
        let r = self
            .inner
            .clone()
            .begin_connection(pb::BeginConnectionRequest {
                org: org.into(),
                account_id: account_id.unwrap_or_default().into(),
                write: write.is_some(),
                redirect_uri: redirect_uri.into(),
                purpose: purpose.into(),
                draft_id: write.unwrap_or_default().into(),
            })
            .await
            .map_err(connect_error)?
            .into_inner();
        Ok(crate::Begun {
            authorize_url: r.authorize_url,
            expires_at: from_ts(r.expires_at).unwrap_or_default(),
        })
    }

    async fn complete(&self, state: &str, outcome: Result<&str, (&str, &str)>) -> Result<AccountHealth, crate::ConnectError> {
        let (code, error, description) = match outcome {
            Ok(c) => (c, "", ""),
            Err((e, d)) => ("", e, d),
        };
        let r = self
            .inner
            .clone()
            .complete_connection(pb::CompleteConnectionRequest {
                state: state.into(),
                code: code.into(),
                error: error.into(),
                error_description: description.into(),
            })
            .await
            .map_err(connect_error)?
            .into_inner();
        account_health_from(r.account)
    }

    async fn abandon(&self, state: &str, reason: &str) -> Result<(), crate::ConnectError> {
        self.inner
            .clone()
            .abandon_connection(pb::AbandonConnectionRequest {
                state: state.into(),
                reason: reason.into(),
            })
            .await
            .map_err(connect_error)?;
        Ok(())
    }

    async fn list(&self, org: &str) -> Result<Vec<AccountHealth>, crate::ConnectError> {
        let r = self
            .inner
            .clone()
            .list_connections(pb::ListConnectionsRequest { org: org.into() })
            .await
            .map_err(connect_error)?
            .into_inner();
        Ok(token_health_from(pb::CheckTokenHealthResponse {
            accounts: r.accounts,
            ..Default::default()
        })
        .accounts)
    }

    async fn disconnect(&self, org: &str, account_id: &str, by: &str) -> Result<AccountHealth, crate::ConnectError> {
        let r = self
            .inner
            .clone()
            .disconnect(pb::DisconnectRequest {
                org: org.into(),
                account_id: account_id.into(),
                by: by.into(),
            })
            .await
            .map_err(connect_error)?
            .into_inner();
        account_health_from(r.account)
    }
}
