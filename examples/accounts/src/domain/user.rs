//! [`User`]: a person with an account, and the changes one can make.

use time::OffsetDateTime;

use super::{Email, Password, UserId, UserName};

/// A user as the service shows it: never with a password or its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub(crate) id: UserId,
    pub(crate) email: Email,
    pub(crate) name: UserName,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_at: OffsetDateTime,
}

/// What signing up takes, every part already parsed.
#[derive(Debug, Clone)]
pub(crate) struct NewUser {
    pub(crate) email: Email,
    pub(crate) name: UserName,
    pub(crate) password: Password,
}

/// A partial update: `None` leaves the field as it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserChanges {
    pub(crate) email: Option<Email>,
    pub(crate) name: Option<UserName>,
    pub(crate) password: Option<Password>,
}

impl User {
    /// The user `new` describes, created at `now`.
    pub(crate) fn register(new: NewUser, now: OffsetDateTime) -> (Self, Password) {
        let user = Self {
            id: UserId::new(),
            email: new.email,
            name: new.name,
            created_at: now,
            updated_at: now,
        };
        (user, new.password)
    }
}
