use std::fmt;

use crate::{FieldError, Problem};

/// Business rules checked after the body deserialized; used by
/// [`ValidJson`](super::ValidJson).
///
/// Report every violation, not just the first: the client fixes them all
/// in one round trip.
///
/// ```
/// use opsready_problem::extract::{Validate, ValidationErrors};
///
/// struct Transfer {
///     amount: i64,
///     currency: String,
/// }
///
/// impl Validate for Transfer {
///     fn validate(&self, errors: &mut ValidationErrors) {
///         if self.amount <= 0 {
///             errors.add("/amount", "NOT_POSITIVE", "must be greater than 0");
///         }
///         if self.currency.len() != 3 {
///             errors.add("/currency", "INVALID_CURRENCY", "must be an ISO 4217 code");
///         }
///     }
/// }
///
/// let mut errors = ValidationErrors::new();
/// Transfer { amount: 0, currency: "euro".into() }.validate(&mut errors);
/// assert_eq!(errors.len(), 2);
/// ```
pub trait Validate {
    /// Adds one entry to `errors` per violated rule.
    fn validate(&self, errors: &mut ValidationErrors);
}

/// The violations collected by [`Validate::validate`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// No violations yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation at the JSON Pointer `pointer` (e.g. `/email`,
    /// `/items/0/quantity`), with a machine-readable `code` and a `detail`
    /// for people.
    pub fn add(
        &mut self,
        pointer: impl Into<String>,
        code: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.errors.push(FieldError::pointer(pointer, code, detail));
    }

    /// Records a ready-made field error.
    pub fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// Whether no rule was violated.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The number of violations.
    #[must_use]
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// The violations, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.errors.iter()
    }

    /// `Ok` when empty, else a 422 `VALIDATION_FAILED` problem listing every
    /// violation; handy when validating outside an extractor.
    ///
    /// # Errors
    ///
    /// The problem, when there is at least one violation.
    pub fn into_result(self) -> Result<(), Problem> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(self.errors))
        }
    }

    pub(crate) fn into_vec(self) -> Vec<FieldError> {
        self.errors
    }
}

impl fmt::Debug for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.errors).finish()
    }
}

impl From<ValidationErrors> for Problem {
    fn from(errors: ValidationErrors) -> Self {
        Self::validation(errors.errors)
    }
}
