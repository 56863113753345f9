//! The service's own problem codes, and how data-layer failures become
//! problems.
//!
//! Codes are a contract with clients: never rename one, add a new one.

use std::time::Duration;

use axum::http::StatusCode;
use opsready::problem::{Code, FieldError, Problem, codes};

use crate::data::DataError;

/// 409: another user has the email address.
pub(crate) const EMAIL_TAKEN: Code = Code::new(
    "EMAIL_TAKEN",
    StatusCode::CONFLICT,
    "Email address taken",
    "Another user has this email address. Use another address, or change that user instead.",
);

/// 409: the user is the customer of invoices.
pub(crate) const USER_HAS_INVOICES: Code = Code::new(
    "USER_HAS_INVOICES",
    StatusCode::CONFLICT,
    "User has invoices",
    "The user is the customer of invoices, which must keep their customer. The user cannot be deleted.",
);

/// 409: the invoice was paid before.
pub(crate) const INVOICE_ALREADY_PAID: Code = Code::new(
    "INVOICE_ALREADY_PAID",
    StatusCode::CONFLICT,
    "Invoice already paid",
    "The invoice is paid already; it is not paid twice. Fetch it to see when it was paid.",
);

/// 400: a request that must be idempotent came without a key.
pub(crate) const IDEMPOTENCY_KEY_MISSING: Code = Code::new(
    "IDEMPOTENCY_KEY_MISSING",
    StatusCode::BAD_REQUEST,
    "Idempotency-Key missing",
    "This request needs an `Idempotency-Key` header: a unique value (a UUID, say) per operation, sent again unchanged on every retry of it.",
);

/// 400: the key is not a value the service stores.
pub(crate) const INVALID_IDEMPOTENCY_KEY: Code = Code::new(
    "INVALID_IDEMPOTENCY_KEY",
    StatusCode::BAD_REQUEST,
    "Invalid Idempotency-Key",
    "The `Idempotency-Key` header must be 1 to 255 visible ASCII characters.",
);

/// 422: the key was used before for another request.
pub(crate) const IDEMPOTENCY_KEY_REUSED: Code = Code::new(
    "IDEMPOTENCY_KEY_REUSED",
    StatusCode::UNPROCESSABLE_ENTITY,
    "Idempotency-Key reused",
    "This `Idempotency-Key` was used before with a different request body. Use a new key for a new operation; resend the first body to retry the first one.",
);

/// 404 for the thing `what` with `id`.
pub(crate) fn not_found(what: &str, id: impl std::fmt::Display) -> Problem {
    Problem::not_found(format!("There is no {what} with id {id}."))
}

impl From<DataError> for Problem {
    fn from(error: DataError) -> Self {
        match error {
            DataError::NotFound => Problem::not_found("Not found."),
            DataError::EmailTaken => Problem::new(EMAIL_TAKEN).with_error(FieldError::pointer(
                "/email",
                "EMAIL_TAKEN",
                "belongs to another user",
            )),
            DataError::HasInvoices => Problem::new(USER_HAS_INVOICES),
            DataError::UnknownCustomer => Problem::validation([FieldError::pointer(
                "/customer_id",
                "UNKNOWN_CUSTOMER",
                "no user has this id",
            )]),
            DataError::AlreadyPaid(_) => Problem::new(INVOICE_ALREADY_PAID),
            // The pool is exhausted or the database out of reach: a retry
            // may well work, and readiness tells the load balancer.
            DataError::Database(
                cause @ (sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)),
            ) => Problem::new(codes::SERVICE_UNAVAILABLE)
                .retry_after(Duration::from_secs(1))
                .with_cause(cause),
            // Busy rather than broken: a lock held past the wait, a
            // server refusing connections for now.
            DataError::Database(cause) if is_busy(&cause) => {
                Problem::new(codes::SERVICE_UNAVAILABLE)
                    .retry_after(Duration::from_secs(1))
                    .with_cause(cause)
            }
            // 5xx: the cause goes to the log, never to the client.
            error @ (DataError::Database(_) | DataError::Corrupt(_)) => Problem::internal(error),
        }
    }
}

/// Whether the database refused `error`'s statement because it is busy,
/// not because the statement or the data are wrong: a retry soon may work.
///
/// SQLite: `SQLITE_BUSY` (another connection holds the write lock past the
/// busy timeout, an operator's `sqlite3` shell or a backup, say) and
/// `SQLITE_LOCKED`, with their extended codes. Postgres:
/// `too_many_connections`, `cannot_connect_now` (starting up or shutting
/// down) and `lock_not_available`.
fn is_busy(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(database) = error else {
        return false;
    };
    if database
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .is_some()
    {
        // The extended code's low byte is the primary code.
        return database
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6));
    }
    if database
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        return database
            .code()
            .is_some_and(|code| matches!(&*code, "53300" | "57P03" | "55P03"));
    }
    false
}
