//! [`Limit`]: how many items one page of a list holds.

/// A page size between 1 and [`Limit::MAX`]; [`Limit::DEFAULT`] when the
/// client does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit(u32);

/// Why a number is not a [`Limit`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be between 1 and 100")]
pub(crate) struct LimitError;

impl Limit {
    /// The page size when none is asked for.
    pub(crate) const DEFAULT: Self = Self(20);
    /// The largest page: bounds the memory and time of one request.
    pub(crate) const MAX: u32 = 100;

    /// `requested`, or the default when absent.
    pub(crate) fn parse(requested: Option<i64>) -> Result<Self, LimitError> {
        match requested {
            None => Ok(Self::DEFAULT),
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| (1..=Self::MAX).contains(n))
                .map(Self)
                .ok_or(LimitError),
        }
    }

    /// The number of items.
    pub(crate) fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_means_the_default() {
        assert_eq!(Limit::parse(None), Ok(Limit::DEFAULT));
    }

    #[test]
    fn limits_from_1_to_100_are_accepted() {
        assert_eq!(Limit::parse(Some(1)).map(Limit::get), Ok(1));
        assert_eq!(Limit::parse(Some(100)).map(Limit::get), Ok(100));
    }

    #[test]
    fn zero_negative_and_oversized_limits_are_rejected() {
        assert_eq!(Limit::parse(Some(0)), Err(LimitError));
        assert_eq!(Limit::parse(Some(-5)), Err(LimitError));
        assert_eq!(Limit::parse(Some(101)), Err(LimitError));
    }
}
