//! The service's vocabulary and rules, free of HTTP and SQL.
//!
//! Every input becomes a domain type through a `parse` constructor that
//! says what is wrong, so that past the HTTP layer a value of type
//! [`Email`] is an email address and nothing checks it again ("parse,
//! don't validate"). The rules are tested here, each test named as the
//! sentence it proves.

mod email;
mod ids;
mod invoice;
mod money;
mod page;
mod password;
mod text;
mod user;
mod user_name;

pub(crate) use email::Email;
pub(crate) use ids::{InvoiceId, UserId};
pub(crate) use invoice::{
    AlreadyPaid, Invoice, InvoiceState, Line, LineField, TaxEngine, check_line_count,
};
pub(crate) use money::{CURRENCIES, Currency, Money};
pub(crate) use page::{Limit, LimitError};
pub(crate) use password::{HashError, Hasher, Password, PasswordHash};
pub(crate) use user::{NewUser, User, UserChanges};
pub(crate) use user_name::UserName;

use time::OffsetDateTime;

/// The current time, to the microsecond: Postgres keeps no finer, so a
/// timestamp reads back from either database exactly as it was answered.
pub(crate) fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}
