//! [`UserId`] and [`InvoiceId`]: UUIDv7, so that ids sort by creation time
//! and a page of "everything after this id" is a page of newer rows.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub(crate) struct $name(Uuid);

        impl $name {
            /// A new id, later than every id made before it in this process.
            pub(crate) fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// An id read from storage or a cursor.
            pub(crate) fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID, for storage.
            pub(crate) fn as_uuid(self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id! {
    /// Identifies a user, who is also the customer of their invoices.
    UserId
}

id! {
    /// Identifies an invoice.
    InvoiceId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_later_sort_later() {
        let ids: Vec<UserId> = (0..1_000).map(|_| UserId::new()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn an_id_serializes_as_its_hyphenated_uuid() {
        let id = InvoiceId::from_uuid(Uuid::nil());
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            r#""00000000-0000-0000-0000-000000000000""#
        );
    }
}
