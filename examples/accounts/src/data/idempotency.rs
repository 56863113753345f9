//! What an `Idempotency-Key` remembers: the request it came with and the
//! response it got, stored in `idempotency_keys` in the same transaction
//! as the invoice it created.

use sqlx::FromRow;
use uuid::Uuid;

use crate::domain::InvoiceId;

/// The key of a request and the response to remember for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdempotencyRecord<'a> {
    /// The client's `Idempotency-Key`.
    pub(crate) key: &'a str,
    /// The SHA-256 of the request, hex.
    pub(crate) request_hash: &'a str,
    /// The response's status.
    pub(crate) status: u16,
    /// The response's body.
    pub(crate) body: &'a str,
}

/// What storing a keyed request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The key was new: the invoice and the response are stored.
    Created,
    /// The key was used before with the same request: answer what was
    /// answered then. Nothing was stored now.
    Replayed {
        /// The invoice the first request created.
        invoice_id: InvoiceId,
        /// The first response's status.
        status: u16,
        /// The first response's body.
        body: String,
    },
    /// The key was used before with another request: a client bug, since
    /// replaying the first answer would hide that the second was not done.
    KeyReused,
}

/// A stored key.
#[derive(FromRow)]
pub(super) struct Row {
    request_hash: String,
    invoice_id: Uuid,
    status: i64,
    body: String,
}

pub(super) const SELECT: &str =
    "SELECT request_hash, invoice_id, status, body FROM idempotency_keys WHERE key = $1";

impl Row {
    /// What a request hashing to `request_hash` gets for this key.
    pub(super) fn outcome_for(self, request_hash: &str) -> Outcome {
        if self.request_hash != request_hash {
            return Outcome::KeyReused;
        }
        Outcome::Replayed {
            invoice_id: InvoiceId::from_uuid(self.invoice_id),
            // Written from a `u16`; a hand-edited row falls back to 200.
            status: u16::try_from(self.status).unwrap_or(200),
            body: self.body,
        }
    }
}
