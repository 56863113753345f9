//! `/billing`: invoices, created idempotently and paid once.
//!
//! | request | answer |
//! |---|---|
//! | `POST /billing/invoices` `{customer_id, currency, lines: [{description, quantity, unit_amount}]}` with `Idempotency-Key` | 201 with the invoice and `Location`; the first answer again for a retry (`Idempotent-Replayed: true`); 400 without a key; 422 for bad fields, an unknown customer, or a key reused with another body |
//! | `GET /billing/invoices?limit=&cursor=&customer_id=` | 200 `{items, next_cursor}` |
//! | `GET /billing/invoices/{id}` | 200; 404 |
//! | `POST /billing/invoices/{id}/pay` | 200 with the paid invoice; 404; 409 `INVOICE_ALREADY_PAID` |
//!
//! Tax is computed by the engine the flag `billing.tax_engine_v2` picks
//! for the customer (see [`crate::domain`]'s invoice module), and the
//! invoice records which one (`tax_engine`).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opsready::flags::EvaluationContext;
use opsready::problem::extract::{Json, Path, Query, ValidJson, Validate, ValidationErrors};
use opsready::problem::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::idempotency::{self, IdempotencyKey};
use super::pagination::{self, List, Page, PageQuery};
use super::problems::{IDEMPOTENCY_KEY_REUSED, not_found};
use crate::data::{DataError, IdempotencyRecord, Outcome};
use crate::domain::{
    self, Currency, Invoice, InvoiceId, Line, LineField, TaxEngine, UserId, check_line_count,
};
use crate::{AppState, TAX_ENGINE_V2};

/// The routes of this module.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/billing/invoices", post(create_invoice).get(list_invoices))
        .route("/billing/invoices/{id}", get(get_invoice))
        .route("/billing/invoices/{id}/pay", post(pay_invoice))
}

/// The body of `POST /billing/invoices`. Serialized, it is what the
/// idempotency fingerprint hashes.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateInvoice {
    customer_id: Uuid,
    /// ISO 4217, one of the supported currencies.
    currency: String,
    lines: Vec<CreateLine>,
}

/// One line of [`CreateInvoice`]; amounts in minor units of the currency.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateLine {
    description: String,
    quantity: i64,
    unit_amount: i64,
}

/// [`CreateInvoice`] parsed: what [`Invoice::open`] takes.
struct InvoiceRequest {
    customer_id: UserId,
    currency: Currency,
    lines: Vec<Line>,
}

impl CreateInvoice {
    fn parse(&self) -> Result<InvoiceRequest, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let currency = Currency::parse(&self.currency)
            .map_err(|e| errors.add("/currency", "INVALID_CURRENCY", e.to_string()));
        if let Err(e) = check_line_count(self.lines.len()) {
            errors.add("/lines", e.code(), e.to_string());
        }
        let mut lines = Vec::with_capacity(self.lines.len());
        // Lines are checked in a currency even when the given one is bad,
        // so that their own mistakes are reported in the same answer.
        let line_currency = currency.unwrap_or(Currency::EUR);
        for (index, line) in self.lines.iter().enumerate() {
            match Line::parse(
                &line.description,
                line.quantity,
                line.unit_amount,
                line_currency,
            ) {
                Ok(line) => lines.push(line),
                Err(found) => {
                    for error in found {
                        let field = match error.field {
                            LineField::Description => "description",
                            LineField::Quantity => "quantity",
                            LineField::UnitAmount => "unit_amount",
                        };
                        errors.add(format!("/lines/{index}/{field}"), error.code, error.detail);
                    }
                }
            }
        }
        match currency {
            Ok(currency) if errors.is_empty() => Ok(InvoiceRequest {
                customer_id: UserId::from_uuid(self.customer_id),
                currency,
                lines,
            }),
            _ => Err(errors),
        }
    }
}

impl Validate for CreateInvoice {
    fn validate(&self, errors: &mut ValidationErrors) {
        if let Err(found) = self.parse() {
            found.iter().cloned().for_each(|error| errors.push(error));
        }
    }
}

/// An invoice as answered.
#[derive(Debug, Serialize)]
pub(crate) struct InvoiceBody {
    id: InvoiceId,
    customer_id: UserId,
    currency: &'static str,
    lines: Vec<LineBody>,
    /// Minor units: the sum of the lines' amounts.
    subtotal: i64,
    /// Minor units.
    tax: i64,
    /// Minor units: subtotal plus tax.
    total: i64,
    /// `v1` or `v2`: which engine computed the tax.
    tax_engine: &'static str,
    /// `open` or `paid`.
    state: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    paid_at: Option<OffsetDateTime>,
}

/// One line as answered.
#[derive(Debug, Serialize)]
pub(crate) struct LineBody {
    description: String,
    quantity: u32,
    unit_amount: i64,
    /// `quantity × unit_amount`.
    amount: i64,
}

impl From<&Invoice> for InvoiceBody {
    fn from(invoice: &Invoice) -> Self {
        Self {
            id: invoice.id,
            customer_id: invoice.customer_id,
            currency: invoice.currency.code(),
            lines: invoice
                .lines
                .iter()
                .map(|line| LineBody {
                    description: line.description.clone(),
                    quantity: line.quantity,
                    unit_amount: line.unit_amount.minor(),
                    amount: line.amount.minor(),
                })
                .collect(),
            subtotal: invoice.subtotal.minor(),
            tax: invoice.tax.minor(),
            total: invoice.total.minor(),
            tax_engine: invoice.tax_engine.as_str(),
            state: invoice.state.as_str(),
            created_at: invoice.created_at,
            paid_at: invoice.paid_at,
        }
    }
}

/// The engine the flag picks for `customer`. The customer is the targeting
/// key, so a percentage rollout taxes each customer the same way on every
/// invoice, and a kill or rollback of the flag takes effect on the next
/// invoice.
fn tax_engine(state: &AppState, customer: UserId) -> TaxEngine {
    let context = EvaluationContext::new().targeting_key(customer.to_string());
    if state.flags.bool_value(TAX_ENGINE_V2, &context, false) {
        TaxEngine::V2
    } else {
        TaxEngine::V1
    }
}

/// `POST /billing/invoices`
async fn create_invoice(
    State(state): State<AppState>,
    key: IdempotencyKey,
    ValidJson(request): ValidJson<CreateInvoice>,
) -> Result<Response, Problem> {
    let request_hash = idempotency::fingerprint("POST /billing/invoices", &request)?;
    let parsed = request.parse().map_err(Problem::from)?;
    let engine = tax_engine(&state, parsed.customer_id);
    let invoice = Invoice::open(
        parsed.customer_id,
        parsed.currency,
        parsed.lines,
        engine,
        domain::now(),
    )
    .map_err(|e| Problem::validation([FieldError::pointer("/lines", e.code(), e.to_string())]))?;
    // The body is made before it is stored, so a replay answers exactly
    // these bytes, whatever happened to the invoice since.
    let body = serde_json::to_string(&InvoiceBody::from(&invoice)).map_err(Problem::internal)?;
    let record = IdempotencyRecord {
        key: key.as_str(),
        request_hash: &request_hash,
        status: StatusCode::CREATED.as_u16(),
        body: &body,
    };
    match state.db.invoices().create(&invoice, record).await? {
        Outcome::Created => Ok(json_response(StatusCode::CREATED, invoice.id, body, false)),
        Outcome::Replayed {
            invoice_id,
            status,
            body,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            Ok(json_response(status, invoice_id, body, true))
        }
        Outcome::KeyReused => Err(Problem::new(IDEMPOTENCY_KEY_REUSED)),
    }
}

fn json_response(status: StatusCode, id: InvoiceId, body: String, replayed: bool) -> Response {
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::LOCATION, format!("/billing/invoices/{id}")),
        ],
        body,
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert(idempotency::REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// The query of `GET /billing/invoices`.
#[derive(Debug, Deserialize)]
pub(crate) struct InvoiceQuery {
    /// Only this customer's invoices.
    customer_id: Option<UserId>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /billing/invoices`
async fn list_invoices(
    State(state): State<AppState>,
    Query(query): Query<InvoiceQuery>,
) -> Result<Json<Page<InvoiceBody>>, Problem> {
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse(List::Invoices)?;
    let after = page.after.map(InvoiceId::from_uuid);
    let slice = state
        .db
        .invoices()
        .list(after, query.customer_id, page.limit)
        .await?;
    let next_cursor = slice
        .has_more
        .then(|| slice.items.last())
        .flatten()
        .map(|last| pagination::encode(List::Invoices, last.id.as_uuid()));
    Ok(Json(Page {
        items: slice.items.iter().map(InvoiceBody::from).collect(),
        next_cursor,
    }))
}

/// `GET /billing/invoices/{id}`
async fn get_invoice(
    State(state): State<AppState>,
    Path(id): Path<InvoiceId>,
) -> Result<Json<InvoiceBody>, Problem> {
    let invoice = state
        .db
        .invoices()
        .get(id)
        .await
        .map_err(|error| invoice_problem(error, id))?;
    Ok(Json(InvoiceBody::from(&invoice)))
}

/// `POST /billing/invoices/{id}/pay`
async fn pay_invoice(
    State(state): State<AppState>,
    Path(id): Path<InvoiceId>,
) -> Result<Json<InvoiceBody>, Problem> {
    let invoice = state
        .db
        .invoices()
        .pay(id, domain::now())
        .await
        .map_err(|error| invoice_problem(error, id))?;
    Ok(Json(InvoiceBody::from(&invoice)))
}

fn invoice_problem(error: DataError, id: InvoiceId) -> Problem {
    match error {
        DataError::NotFound => not_found("invoice", id),
        error => error.into(),
    }
}
