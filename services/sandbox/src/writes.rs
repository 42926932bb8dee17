//! The platform's writes, each under an `Idempotency-Key`: applied once per
//! key and answered with the first answer however often it is sent again;
//! campaign edits, charges, refunds and card freezes; and what the
//! platform did with a key.

use super::*;

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(str::to_string)
}

impl Sandbox {
    /// A keyed write, answered: applied once per idempotency key (a key
    /// seen before is answered with its first answer, refusal or success,
    /// and applies nothing), disturbed by the injected faults.
    pub(crate) async fn keyed(
        &self,
        key: Option<String>,
        account: Option<String>,
        write: impl FnOnce() -> Result<(StatusCode, serde_json::Value), ApiError>,
    ) -> Response {
        let (status, body, disturb) = match self.apply_once(key.as_deref(), account, write) {
            Ok(done) => done,
            Err(e) => return e.into_response(),
        };
        let delay = match disturb {
            Disturb::Delay(ms) => Some(std::time::Duration::from_millis(ms)),
            _ => {
                let mut f = self.inner.faults.lock().expect("fault lock");
                (f.delay_next > 0 && status.is_success()).then(|| {
                    f.delay_next -= 1;
                    std::time::Duration::from_millis(f.delay_ms)
                })
            }
        };
        if let Some(d) = delay {
            if let Some(k) = &key
                && let Some(r) = self.inner.keys.lock().expect("keys lock").get_mut(k)
            {
                r.answering = true;
            }
            tokio::time::sleep(d).await;
            if let Some(k) = &key
                && let Some(r) = self.inner.keys.lock().expect("keys lock").get_mut(k)
            {
                r.answering = false;
            }
        }
        if disturb == Disturb::FailAfter {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "injected_fault",
                "the sandbox applied the write, then failed to answer",
            )
            .into_response();
        }
        (status, Json(body)).into_response()
    }

    /// Applies `write` once per idempotency key and keeps its answer.
    pub(crate) fn apply_once(
        &self,
        key: Option<&str>,
        account: Option<String>,
        write: impl FnOnce() -> Result<(StatusCode, serde_json::Value), ApiError>,
    ) -> Result<(StatusCode, serde_json::Value, Disturb), ApiError> {
        let mut keys = self.inner.keys.lock().expect("keys lock");
        if let Some(k) = key
            && let Some(r) = keys.get(k)
        {
            if r.answering {
                return Err(error(
                    StatusCode::CONFLICT,
                    "idempotency_key_in_use",
                    "a request with this idempotency key is still being processed; ask again later",
                ));
            }
            return Ok((r.status, r.body.clone(), Disturb::None));
        }
        let disturb = if key.is_some() {
            self.inner.faults.lock().expect("fault lock").draw()
        } else {
            Disturb::None
        };
        let outcome = match disturb {
            Disturb::FailBefore => {
                return Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "injected_fault",
                    "the sandbox was told to fail before applying",
                ));
            }
            Disturb::Decline => Err(error(StatusCode::PAYMENT_REQUIRED, "declined", "the platform declined this write (injected)")),
            _ => write(),
        };
        let (status, body, applied) = match outcome {
            Ok((status, body)) => (status, body, 1),
            Err(e) => (e.status, serde_json::json!({"error": {"code": e.code, "message": e.message}}), 0),
        };
        if applied == 1 {
            self.inner.applied.lock().expect("applied lock").writes += 1;
        }
        if let Some(k) = key {
            keys.insert(
                k.to_string(),
                KeyRecord {
                    status,
                    body: body.clone(),
                    answering: false,
                    applied,
                    account,
                },
            );
        }
        Ok((status, body, disturb))
    }

    /// What the platform applied (tests).
    pub fn applied_json(&self) -> serde_json::Value {
        let by_key: serde_json::Map<String, serde_json::Value> = self
            .inner
            .keys
            .lock()
            .expect("keys lock")
            .iter()
            .filter(|(_, r)| r.applied > 0)
            .map(|(k, r)| (k.clone(), serde_json::json!(r.applied)))
            .collect();
        let a = self.inner.applied.lock().expect("applied lock");
        let disturbed = self.inner.faults.lock().expect("fault lock").disturbed;
        serde_json::json!({
            "faults": disturbed,
            "writes": a.writes,
            "by_key": by_key,
            "charged_minor": a.charged_minor,
            "charges": a.charges,
            "campaigns": *self.inner.campaigns.lock().expect("campaign lock"),
            "cards": *self.inner.cards_state.lock().expect("cards lock"),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChargeRequest {
    pub(crate) merchant: String,
    pub(crate) amount_minor: i64,
    pub(crate) currency: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
}

/// `POST /v1/cards/{id}/charges`: a charge on a card, refused on a frozen
/// card.
pub(crate) async fn charge(State(sb): State<Sandbox>, headers: HeaderMap, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    if let Err(r) = admit(&sb, &headers, "cards.write").and_then(|p| p.may(CARD_ACCOUNT)) {
        return r.into_response();
    }
    let c: ChargeRequest = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_body", e.to_string()).into_response(),
    };
    let key = idempotency_key(&headers);
    sb.keyed(key, Some(CARD_ACCOUNT.to_string()), || {
        if c.amount_minor <= 0 || c.currency.len() != 3 || c.merchant.is_empty() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_charge",
                "a positive amount, a currency and a merchant are required",
            ));
        }
        let cards = sb.inner.cards_state.lock().expect("cards lock");
        let Some(card) = cards.iter().find(|x| x.id == id) else {
            return Err(error(StatusCode::NOT_FOUND, "not_found", format!("no card {id}")));
        };
        if card.status != "active" {
            return Err(error(StatusCode::CONFLICT, "card_frozen", format!("card {id} is {}", card.status)));
        }
        if c.currency != card.currency {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "currency_mismatch",
                format!("card {id} charges in {}", card.currency),
            ));
        }
        let mut applied = sb.inner.applied.lock().expect("applied lock");
        let charge = serde_json::json!({
            "id": format!("ch_{}", applied.charges.len() + 1),
            "card_id": id,
            "merchant": c.merchant,
            "amount_minor": c.amount_minor,
            "currency": c.currency,
            "description": c.description,
            "status": "captured",
            "refunded_minor": 0,
            "created_at": Utc::now(),
        });
        applied.charged_minor += c.amount_minor;
        applied.charges.push(charge.clone());
        Ok((StatusCode::CREATED, charge))
    })
    .await
}

/// `POST /v1/charges/{id}/refunds`: refunds a charge in full.
pub(crate) async fn refund(State(sb): State<Sandbox>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = admit(&sb, &headers, "cards.write").and_then(|p| p.may(CARD_ACCOUNT)) {
        return r.into_response();
    }
    let key = idempotency_key(&headers);
    sb.keyed(key, Some(CARD_ACCOUNT.to_string()), || {
        let mut applied = sb.inner.applied.lock().expect("applied lock");
        let Some(pos) = applied.charges.iter().position(|c| c["id"] == id.as_str()) else {
            return Err(error(StatusCode::NOT_FOUND, "not_found", format!("no charge {id}")));
        };
        let amount = applied.charges[pos]["amount_minor"].as_i64().unwrap_or(0);
        if applied.charges[pos]["status"] == "refunded" {
            return Err(error(StatusCode::CONFLICT, "already_refunded", format!("charge {id} was refunded")));
        }
        applied.charges[pos]["status"] = "refunded".into();
        applied.charges[pos]["refunded_minor"] = amount.into();
        applied.charged_minor -= amount;
        Ok((
            StatusCode::CREATED,
            serde_json::json!({"charge_id": id, "amount_minor": amount, "status": "refunded"}),
        ))
    })
    .await
}

/// `GET /v1/idempotency-keys/{key}`: what the platform did with a key, for
/// a caller that never got (or could not trust) its answer.
pub(crate) async fn idempotency_key_state(State(sb): State<Sandbox>, headers: HeaderMap, Path(key): Path<String>) -> Response {
    let who = match admit(&sb, &headers, "ads.write").or_else(|_| admit(&sb, &headers, "cards.write")) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let keys = sb.inner.keys.lock().expect("keys lock");
    let found = keys.get(&key).filter(|r| r.account.as_deref().is_none_or(|a| who.may(a).is_ok()));
    match found {
        Some(r) => Json(serde_json::json!({
            "key": key,
            "state": if r.applied > 0 { "applied" } else { "refused" },
            "status": r.status.as_u16(),
            "answer": r.body,
        }))
        .into_response(),
        None => error(StatusCode::NOT_FOUND, "unknown_key", "no request with this idempotency key ever started here").into_response(),
    }
}

/// `POST /v1/cards/{id}/freeze`: charges on the card are refused from now on.
pub(crate) async fn freeze_card(State(sb): State<Sandbox>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = admit(&sb, &headers, "cards.write").and_then(|p| p.may(CARD_ACCOUNT)) {
        return r.into_response();
    }
    let mut cards = sb.inner.cards_state.lock().expect("cards lock");
    let Some(card) = cards.iter_mut().find(|x| x.id == id) else {
        return error(StatusCode::NOT_FOUND, "not_found", format!("no card {id}")).into_response();
    };
    card.status = "frozen".into();
    Json(card.clone()).into_response()
}
