-- Users, invoices and idempotency keys (Postgres). The SQLite twin in
-- ../sqlite differs in column types only: keep the two in step.

CREATE TABLE users (
    -- UUIDv7: sorts by creation time, which pagination uses.
    id UUID PRIMARY KEY,
    -- Lower-cased by the service, so UNIQUE is case-insensitive.
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- argon2id PHC string; never the password.
    password_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE invoices (
    id UUID PRIMARY KEY,
    -- No ON DELETE: a customer with invoices cannot be deleted (409).
    customer_id UUID NOT NULL REFERENCES users (id),
    currency TEXT NOT NULL,
    -- The lines as a JSON array: they are written once with the invoice
    -- and only ever read whole.
    lines JSONB NOT NULL,
    subtotal BIGINT NOT NULL CHECK (subtotal > 0),
    tax BIGINT NOT NULL CHECK (tax >= 0),
    total BIGINT NOT NULL CHECK (total = subtotal + tax),
    tax_engine TEXT NOT NULL CHECK (tax_engine IN ('v1', 'v2')),
    state TEXT NOT NULL CHECK (state IN ('open', 'paid')),
    created_at TIMESTAMPTZ NOT NULL,
    paid_at TIMESTAMPTZ
);

CREATE INDEX invoices_by_customer ON invoices (customer_id, id);

CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    -- SHA-256 of the request as understood, hex: the same key with another
    -- request is refused rather than answered with the first response.
    request_hash TEXT NOT NULL,
    invoice_id UUID NOT NULL REFERENCES invoices (id),
    -- The first response, replayed as it was.
    status BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
