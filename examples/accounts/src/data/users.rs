//! [`Users`]: the `users` table.

use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    DataError, Database, Slice, fetch_count, is_foreign_key_violation, is_unique_violation,
    on_connection,
};
use crate::domain::{Email, Limit, PasswordHash, User, UserChanges, UserId, UserName};

/// The users of a [`Database`].
#[derive(Debug)]
pub(crate) struct Users<'a> {
    db: &'a Database,
}

/// A row as stored, before it is parsed back into a [`User`].
#[derive(FromRow)]
struct Row {
    id: Uuid,
    email: String,
    name: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<Row> for User {
    type Error = DataError;

    fn try_from(row: Row) -> Result<Self, DataError> {
        Ok(Self {
            id: UserId::from_uuid(row.id),
            email: Email::parse(&row.email).map_err(DataError::corrupt)?,
            name: UserName::parse(&row.name).map_err(DataError::corrupt)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const COLUMNS: &str = "id, email, name, created_at, updated_at";

impl<'a> Users<'a> {
    pub(super) fn new(db: &'a Database) -> Self {
        Self { db }
    }

    /// Stores a new user with the hash of their password.
    ///
    /// # Errors
    ///
    /// [`DataError::EmailTaken`] when another user has the address.
    pub(crate) async fn insert(&self, user: &User, hash: &PasswordHash) -> Result<(), DataError> {
        let inserted = on_connection!(self.db, |conn| {
            sqlx::query(
                "INSERT INTO users (id, email, name, password_hash, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(user.id.as_uuid())
            .bind(user.email.as_str())
            .bind(user.name.as_str())
            .bind(hash.as_str())
            .bind(user.created_at)
            .bind(user.updated_at)
            .execute(conn)
            .await
            .map(drop)
        });
        inserted.map_err(|error| match error {
            error if is_unique_violation(&error) => DataError::EmailTaken,
            error => DataError::Database(error),
        })
    }

    /// The user with `id`.
    pub(crate) async fn get(&self, id: UserId) -> Result<User, DataError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let row: Option<Row> = on_connection!(self.db, |conn| {
            sqlx::query_as(&sql)
                .bind(id.as_uuid())
                .fetch_optional(conn)
                .await?
        });
        row.ok_or(DataError::NotFound)?.try_into()
    }

    /// Up to `limit` users created after the one with id `after` (from the
    /// first when `None`), oldest first.
    pub(crate) async fn list(
        &self,
        after: Option<UserId>,
        limit: Limit,
    ) -> Result<Slice<User>, DataError> {
        // A nil UUID sorts before every UUIDv7: "from the beginning".
        let after = after.map_or(Uuid::nil(), UserId::as_uuid);
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2");
        let rows: Vec<Row> = on_connection!(self.db, |conn| {
            sqlx::query_as(&sql)
                .bind(after)
                .bind(fetch_count(limit))
                .fetch_all(conn)
                .await?
        });
        let items = rows
            .into_iter()
            .map(User::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Slice::of(items, limit))
    }

    /// Applies `changes` (the password already hashed into `hash`) at
    /// `now`, and returns the user as changed.
    ///
    /// # Errors
    ///
    /// [`DataError::NotFound`], or [`DataError::EmailTaken`] when another
    /// user has the new address.
    pub(crate) async fn update(
        &self,
        id: UserId,
        changes: &UserChanges,
        hash: Option<&PasswordHash>,
        now: OffsetDateTime,
    ) -> Result<User, DataError> {
        // One statement: two concurrent changes cannot interleave a read
        // and a write, and COALESCE keeps what the change leaves out.
        let sql = format!(
            "UPDATE users SET
                 email = COALESCE($2, email),
                 name = COALESCE($3, name),
                 password_hash = COALESCE($4, password_hash),
                 updated_at = $5
             WHERE id = $1
             RETURNING {COLUMNS}"
        );
        let row: Result<Option<Row>, sqlx::Error> = on_connection!(self.db, |conn| {
            sqlx::query_as(&sql)
                .bind(id.as_uuid())
                .bind(changes.email.as_ref().map(Email::as_str))
                .bind(changes.name.as_ref().map(UserName::as_str))
                .bind(hash.map(PasswordHash::as_str))
                .bind(now)
                .fetch_optional(conn)
                .await
        });
        match row {
            Ok(Some(row)) => row.try_into(),
            Ok(None) => Err(DataError::NotFound),
            Err(error) if is_unique_violation(&error) => Err(DataError::EmailTaken),
            Err(error) => Err(DataError::Database(error)),
        }
    }

    /// Deletes the user with `id`.
    ///
    /// # Errors
    ///
    /// [`DataError::NotFound`], or [`DataError::HasInvoices`] when the user
    /// is the customer of an invoice.
    pub(crate) async fn delete(&self, id: UserId) -> Result<(), DataError> {
        let deleted = on_connection!(self.db, |conn| {
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(id.as_uuid())
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        });
        match deleted {
            Ok(0) => Err(DataError::NotFound),
            Ok(_) => Ok(()),
            Err(error) if is_foreign_key_violation(&error) => Err(DataError::HasInvoices),
            Err(error) => Err(DataError::Database(error)),
        }
    }
}
