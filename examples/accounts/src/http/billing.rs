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

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opsready::flags::EvaluationContext;
use opsready::problem::extract::{Json, Path, Query, ValidJson, Validate, ValidationErrors};
use opsready::problem::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::idempotency::{self, IdempotencyKey};
use super::openapi::{InternalError, PayloadTooLarge, Unavailable, UnsupportedMediaType};
use super::pagination::{List, Page, PageQuery, invalid_query};
use super::problems::{IDEMPOTENCY_KEY_REUSED, not_found};
use crate::data::{DataError, IdempotencyRecord, Outcome};
use crate::domain::{
    self, CURRENCIES, Currency, Invoice, InvoiceId, InvoiceState, Line, LineField, TaxEngine,
    UserId, check_line_count,
};
use crate::{AppState, TAX_ENGINE_V2};

/// The routes of this module, each with its OpenAPI description.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_invoice, list_invoices))
        .routes(routes!(get_invoice))
        .routes(routes!(pay_invoice))
}

/// `currency` in the contract: the supported codes, from the domain's list.
fn currency_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(CURRENCIES))
        .description(Some("ISO 4217, one of the supported currencies."))
        .build()
}

/// `tax_engine` in the contract.
fn tax_engine_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([TaxEngine::V1.as_str(), TaxEngine::V2.as_str()]))
        .description(Some("Which engine computed the tax."))
        .build()
}

/// `state` in the contract.
fn state_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([
            InvoiceState::Open.as_str(),
            InvoiceState::Paid.as_str(),
        ]))
        .description(Some("`open`, then `paid` once."))
        .build()
}

/// The body of `POST /billing/invoices`. Serialized, it is what the
/// idempotency fingerprint hashes.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateInvoice {
    /// The id of an existing user.
    #[schema(value_type = String, format = Uuid)]
    customer_id: Uuid,
    /// ISO 4217, one of the supported currencies.
    #[schema(schema_with = currency_schema)]
    currency: String,
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    lines: Vec<CreateLine>,
}

/// One line of an invoice to create; amounts in minor units of the currency.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateInvoiceLine)]
pub(crate) struct CreateLine {
    /// 1 to 200 characters, trimmed.
    #[schema(min_length = 1, max_length = 200)]
    description: String,
    /// 1 to 10 000.
    #[schema(minimum = 1, maximum = 10_000)]
    quantity: i64,
    /// Minor units (cents), positive, at most 10^13.
    #[schema(minimum = 1, maximum = 10_000_000_000_000_i64)]
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
            // Not each line too: a body of thousands of bad lines would
            // make an answer of tens of thousands of errors.
            return Err(errors);
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
// Closed in the contract, as `UserBody` says why.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Invoice)]
pub(crate) struct InvoiceBody {
    #[schema(value_type = String, format = Uuid)]
    id: InvoiceId,
    #[schema(value_type = String, format = Uuid)]
    customer_id: UserId,
    #[schema(schema_with = currency_schema)]
    currency: &'static str,
    lines: Vec<LineBody>,
    /// Minor units: the sum of the lines' amounts.
    subtotal: i64,
    /// Minor units.
    tax: i64,
    /// Minor units: subtotal plus tax.
    total: i64,
    /// `v1` or `v2`: which engine computed the tax.
    #[schema(schema_with = tax_engine_schema)]
    tax_engine: &'static str,
    /// `open` or `paid`.
    #[schema(schema_with = state_schema)]
    state: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    /// `null` while open.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    paid_at: Option<OffsetDateTime>,
}

/// One line as answered.
// Closed in the contract, as `UserBody` says why.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = InvoiceLine)]
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
#[utoipa::path(
    post,
    path = "/billing/invoices",
    tag = "billing",
    summary = "Creates an invoice, once per `Idempotency-Key`.",
    description = "Taxed at 20 % by the engine the flag `billing.tax_engine_v2` picks for the customer. \
                   A retry with the same key and body answers the first response again, byte for byte, \
                   with `Idempotent-Replayed: true`.",
    params(
        ("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
            description = "A unique value per operation (a UUID, say), sent again unchanged on every retry."),
    ),
    request_body = CreateInvoice,
    responses(
        (status = 201, description = "The invoice as created, or the first answer again for a retry.",
            body = InvoiceBody,
            headers(
                ("location" = String, description = "`/billing/invoices/{id}`"),
                ("idempotent-replayed" = String, description = "`true` on a replayed answer; absent otherwise."),
            )),
        (status = 400, description = "`IDEMPOTENCY_KEY_MISSING`, `INVALID_IDEMPOTENCY_KEY` or `MALFORMED_JSON`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "`VALIDATION_FAILED` (every bad field with its pointer: `INVALID_CURRENCY`, \
                                      `NO_LINES`, `NOT_POSITIVE`, `UNKNOWN_CUSTOMER`, …) or `IDEMPOTENCY_KEY_REUSED`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
        (status = 500, response = InternalError),
    ),
)]
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
// Not `IntoParams` by name: `#[utoipa::path]` calls it by its full path,
// which the `unused_qualifications` lint flags when the name is in scope.
// Unknown parameters are refused: a misspelt filter (`customerId`) would
// otherwise answer every customer's invoices.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct InvoiceQuery {
    /// Only this customer's invoices.
    // Text, read by the handler with the page parameters, so that every
    // bad parameter is named in one answer.
    #[param(value_type = Option<uuid::Uuid>)]
    customer_id: Option<String>,
    /// 1 to 100; 20 when absent.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page; the first page when absent.
    cursor: Option<String>,
}

/// `GET /billing/invoices`
#[utoipa::path(
    get,
    path = "/billing/invoices",
    tag = "billing",
    summary = "Lists invoices, oldest first, a page at a time.",
    params(InvoiceQuery),
    responses(
        (status = 200, description = "A page of invoices.", body = Page<InvoiceBody>),
        (status = 400, description = "`INVALID_QUERY_PARAMETER`: a parameter is invalid; each is named.",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
        (status = 500, response = InternalError),
    ),
)]
async fn list_invoices(
    State(state): State<AppState>,
    Query(query): Query<InvoiceQuery>,
) -> Result<Json<Page<InvoiceBody>>, Problem> {
    let mut errors = ValidationErrors::new();
    let customer = match query.customer_id.as_deref().map(str::trim) {
        None => Some(None),
        Some(text) => match Uuid::parse_str(text) {
            Ok(uuid) => Some(Some(UserId::from_uuid(uuid))),
            Err(_) => {
                errors.push(FieldError::parameter(
                    "customer_id",
                    "INVALID_VALUE",
                    "is not a user id (a UUID)",
                ));
                None
            }
        },
    };
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse_into(List::Invoices, &mut errors);
    let (Some(customer), Some(page)) = (customer, page) else {
        return Err(invalid_query(&errors));
    };
    let after = page.after.map(InvoiceId::from_uuid);
    let slice = state
        .db
        .invoices()
        .list(after, customer, page.limit)
        .await?;
    Ok(Json(Page::of(
        List::Invoices,
        slice,
        |invoice| invoice.id.as_uuid(),
        |invoice| InvoiceBody::from(&invoice),
    )))
}

/// `GET /billing/invoices/{id}`
#[utoipa::path(
    get,
    path = "/billing/invoices/{id}",
    tag = "billing",
    summary = "Reads an invoice.",
    params(("id" = String, Path, format = Uuid, description = "The invoice's id.")),
    responses(
        (status = 200, description = "The invoice.", body = InvoiceBody),
        (status = 400, description = "`INVALID_PATH_PARAMETER`: the id is not a UUID.",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`NOT_FOUND`: no invoice has the id.",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
        (status = 500, response = InternalError),
    ),
)]
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
#[utoipa::path(
    post,
    path = "/billing/invoices/{id}/pay",
    tag = "billing",
    summary = "Pays an open invoice.",
    params(("id" = String, Path, format = Uuid, description = "The invoice's id.")),
    responses(
        (status = 200, description = "The invoice as paid.", body = InvoiceBody),
        (status = 400, description = "`INVALID_PATH_PARAMETER`: the id is not a UUID.",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`NOT_FOUND`: no invoice has the id.",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`INVOICE_ALREADY_PAID`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
        (status = 500, response = InternalError),
    ),
)]
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
