-- Users, invoices and idempotency keys (SQLite). The Postgres twin in
-- ../postgres differs in column types only: keep the two in step.

CREATE TABLE users (
    -- UUIDv7 as 16 bytes: sorts by creation time, which pagination uses.
    id BLOB PRIMARY KEY NOT NULL,
    -- Lower-cased by the service, so UNIQUE is case-insensitive.
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- argon2id PHC string; never the password.
    password_hash TEXT NOT NULL,
    -- RFC 3339 text, as sqlx writes an OffsetDateTime.
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE invoices (
    id BLOB PRIMARY KEY NOT NULL,
    -- No ON DELETE: a customer with invoices cannot be deleted (409).
    customer_id BLOB NOT NULL REFERENCES users (id),
    currency TEXT NOT NULL,
    -- The lines as a JSON array: they are written once with the invoice
    -- and only ever read whole.
    lines TEXT NOT NULL,
    subtotal INTEGER NOT NULL CHECK (subtotal > 0),
    tax INTEGER NOT NULL CHECK (tax >= 0),
    total INTEGER NOT NULL CHECK (total = subtotal + tax),
    tax_engine TEXT NOT NULL CHECK (tax_engine IN ('v1', 'v2')),
    state TEXT NOT NULL CHECK (state IN ('open', 'paid')),
    created_at TEXT NOT NULL,
    paid_at TEXT
) STRICT;

CREATE INDEX invoices_by_customer ON invoices (customer_id, id);

CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY NOT NULL,
    -- SHA-256 of the request as understood, hex: the same key with another
    -- request is refused rather than answered with the first response.
    request_hash TEXT NOT NULL,
    invoice_id BLOB NOT NULL REFERENCES invoices (id),
    -- The first response, replayed as it was.
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
