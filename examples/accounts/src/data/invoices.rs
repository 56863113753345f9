//! [`Invoices`]: the `invoices` table, and the idempotency keys that
//! guard its inserts.

use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{Connection as _, FromRow};
use time::OffsetDateTime;
use uuid::Uuid;

use super::idempotency::{self, IdempotencyRecord, Outcome};
use super::{DataError, Database, Slice, fetch_count, is_foreign_key_violation, on_connection};
use crate::domain::{
    Currency, Invoice, InvoiceId, InvoiceState, Limit, Line, Money, TaxEngine, UserId,
};

/// The invoices of a [`Database`].
#[derive(Debug)]
pub(crate) struct Invoices<'a> {
    db: &'a Database,
}

#[derive(FromRow)]
struct Row {
    id: Uuid,
    customer_id: Uuid,
    currency: String,
    lines: Json<Vec<LineRow>>,
    subtotal: i64,
    tax: i64,
    total: i64,
    tax_engine: String,
    state: String,
    created_at: OffsetDateTime,
    paid_at: Option<OffsetDateTime>,
}

/// One element of the `lines` JSON column. The line's amount is not
/// stored: it is derived.
#[derive(Serialize, Deserialize)]
struct LineRow {
    description: String,
    quantity: i64,
    unit_amount: i64,
}

impl From<&Line> for LineRow {
    fn from(line: &Line) -> Self {
        Self {
            description: line.description.clone(),
            quantity: i64::from(line.quantity),
            unit_amount: line.unit_amount.minor(),
        }
    }
}

impl TryFrom<Row> for Invoice {
    type Error = DataError;

    fn try_from(row: Row) -> Result<Self, DataError> {
        let currency = Currency::parse(&row.currency).map_err(DataError::corrupt)?;
        let lines = row
            .lines
            .0
            .iter()
            .map(|line| {
                Line::parse(&line.description, line.quantity, line.unit_amount, currency)
                    .map_err(|errors| DataError::corrupt(format!("a line is invalid: {errors:?}")))
            })
            .collect::<Result<Vec<Line>, DataError>>()?;
        let money = |minor| Money::parse(minor, currency).map_err(DataError::corrupt);
        Ok(Self {
            id: InvoiceId::from_uuid(row.id),
            customer_id: UserId::from_uuid(row.customer_id),
            currency,
            lines,
            subtotal: money(row.subtotal)?,
            tax: money(row.tax)?,
            total: money(row.total)?,
            tax_engine: TaxEngine::parse(&row.tax_engine)
                .ok_or_else(|| DataError::corrupt(format!("tax engine `{}`", row.tax_engine)))?,
            state: InvoiceState::parse(&row.state).map_err(DataError::corrupt)?,
            created_at: row.created_at,
            paid_at: row.paid_at,
        })
    }
}

const COLUMNS: &str = "id, customer_id, currency, lines, subtotal, tax, total, tax_engine, state, created_at, paid_at";

const INSERT: &str = "INSERT INTO invoices
     (id, customer_id, currency, lines, subtotal, tax, total, tax_engine, state, created_at, paid_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

const CLAIM_KEY: &str = "INSERT INTO idempotency_keys
     (key, request_hash, invoice_id, status, body, created_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (key) DO NOTHING";

impl<'a> Invoices<'a> {
    pub(super) fn new(db: &'a Database) -> Self {
        Self { db }
    }

    /// Stores `invoice` and, in the same transaction, `record`: the key,
    /// the request's hash and the response to replay. When the key is
    /// known already nothing is stored, and the outcome says what to
    /// answer instead.
    ///
    /// Two requests racing with one key store one invoice: the second
    /// insert of the key waits for the first transaction (Postgres' unique
    /// index, SQLite's write lock), finds the key taken, and rolls its own
    /// invoice back.
    ///
    /// # Errors
    ///
    /// [`DataError::UnknownCustomer`] when no user is the customer; the key
    /// is not stored then, so a retry after creating the user works.
    pub(crate) async fn create(
        &self,
        invoice: &Invoice,
        record: IdempotencyRecord<'_>,
    ) -> Result<Outcome, DataError> {
        let lines: Vec<LineRow> = invoice.lines.iter().map(LineRow::from).collect();
        let lines = Json(lines);
        let outcome: Result<Outcome, sqlx::Error> = on_connection!(self.db, |conn| {
            // A block of its own, so that `?` and `return` stay inside and
            // a foreign-key error can be told apart below.
            async move {
                // The common retry finds its key at once and writes nothing.
                let stored: Option<idempotency::Row> = sqlx::query_as(idempotency::SELECT)
                    .bind(record.key)
                    .fetch_optional(&mut *conn)
                    .await?;
                if let Some(stored) = stored {
                    return Ok(stored.outcome_for(record.request_hash));
                }
                let mut tx = conn.begin().await?;
                sqlx::query(INSERT)
                    .bind(invoice.id.as_uuid())
                    .bind(invoice.customer_id.as_uuid())
                    .bind(invoice.currency.code())
                    .bind(&lines)
                    .bind(invoice.subtotal.minor())
                    .bind(invoice.tax.minor())
                    .bind(invoice.total.minor())
                    .bind(invoice.tax_engine.as_str())
                    .bind(invoice.state.as_str())
                    .bind(invoice.created_at)
                    .bind(invoice.paid_at)
                    .execute(&mut *tx)
                    .await?;
                let claimed = sqlx::query(CLAIM_KEY)
                    .bind(record.key)
                    .bind(record.request_hash)
                    .bind(invoice.id.as_uuid())
                    .bind(i64::from(record.status))
                    .bind(record.body)
                    .bind(invoice.created_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if claimed == 1 {
                    tx.commit().await?;
                    Ok(Outcome::Created)
                } else {
                    // Another request took the key while this one worked.
                    tx.rollback().await?;
                    let stored: Option<idempotency::Row> = sqlx::query_as(idempotency::SELECT)
                        .bind(record.key)
                        .fetch_optional(&mut *conn)
                        .await?;
                    match stored {
                        Some(stored) => Ok(stored.outcome_for(record.request_hash)),
                        // Claimed and gone again: only a hand edit does that.
                        None => Err(sqlx::Error::RowNotFound),
                    }
                }
            }
            .await
        });
        outcome.map_err(|error| match error {
            error if is_foreign_key_violation(&error) => DataError::UnknownCustomer,
            error => DataError::Database(error),
        })
    }

    /// The invoice with `id`.
    pub(crate) async fn get(&self, id: InvoiceId) -> Result<Invoice, DataError> {
        let sql = format!("SELECT {COLUMNS} FROM invoices WHERE id = $1");
        let row: Option<Row> = on_connection!(self.db, |conn| {
            sqlx::query_as(&sql)
                .bind(id.as_uuid())
                .fetch_optional(conn)
                .await?
        });
        row.ok_or(DataError::NotFound)?.try_into()
    }

    /// Up to `limit` invoices created after the one with id `after`,
    /// oldest first; only `customer`'s when given.
    pub(crate) async fn list(
        &self,
        after: Option<InvoiceId>,
        customer: Option<UserId>,
        limit: Limit,
    ) -> Result<Slice<Invoice>, DataError> {
        let after = after.map_or(Uuid::nil(), InvoiceId::as_uuid);
        // Two statements, not `($2 IS NULL OR customer_id = $2)`, which
        // neither database can answer from the customer's index.
        let rows: Vec<Row> = match customer {
            Some(customer) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM invoices
                     WHERE customer_id = $1 AND id > $2
                     ORDER BY id LIMIT $3"
                );
                on_connection!(self.db, |conn| {
                    sqlx::query_as(&sql)
                        .bind(customer.as_uuid())
                        .bind(after)
                        .bind(fetch_count(limit))
                        .fetch_all(conn)
                        .await?
                })
            }
            None => {
                let sql =
                    format!("SELECT {COLUMNS} FROM invoices WHERE id > $1 ORDER BY id LIMIT $2");
                on_connection!(self.db, |conn| {
                    sqlx::query_as(&sql)
                        .bind(after)
                        .bind(fetch_count(limit))
                        .fetch_all(conn)
                        .await?
                })
            }
        };
        let items = rows
            .into_iter()
            .map(Invoice::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Slice::of(items, limit))
    }

    /// Marks the invoice with `id` paid at `now`, and returns it.
    ///
    /// # Errors
    ///
    /// [`DataError::NotFound`], or [`DataError::AlreadyPaid`].
    pub(crate) async fn pay(
        &self,
        id: InvoiceId,
        now: OffsetDateTime,
    ) -> Result<Invoice, DataError> {
        // The transition of `InvoiceState::pay`, as one conditional
        // statement: of two concurrent payments exactly one matches.
        let paid = InvoiceState::Open.pay()?;
        let sql = format!(
            "UPDATE invoices SET state = $2, paid_at = $3
             WHERE id = $1 AND state = $4
             RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_connection!(self.db, |conn| {
            sqlx::query_as(&sql)
                .bind(id.as_uuid())
                .bind(paid.as_str())
                .bind(now)
                .bind(InvoiceState::Open.as_str())
                .fetch_optional(conn)
                .await?
        });
        match row {
            Some(row) => row.try_into(),
            // Not open: say why through the domain's rule.
            None => {
                let invoice = self.get(id).await?;
                invoice.state.pay()?;
                Err(DataError::corrupt("an open invoice could not be paid"))
            }
        }
    }
}
