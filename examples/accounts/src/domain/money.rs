//! [`Money`]: an amount in minor units (cents) with its [`Currency`].
//!
//! Amounts are integers of the currency's smallest unit: floating point
//! cannot hold 0.10 exactly, and a sum of invoices must add up to the cent.

use std::fmt;

/// An ISO 4217 code this service bills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Currency(&'static str);

/// The currencies invoices may use. A short list on purpose: each one is a
/// promise that tax and rounding were thought through for it.
pub(crate) const CURRENCIES: [&str; 5] = ["CHF", "EUR", "GBP", "SEK", "USD"];

/// Why a string is not a [`Currency`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of CHF, EUR, GBP, SEK, USD")]
pub(crate) struct CurrencyError;

impl Currency {
    /// The euro.
    pub(crate) const EUR: Self = Self("EUR");

    /// Parses an upper-case ISO 4217 code from [`CURRENCIES`].
    pub(crate) fn parse(input: &str) -> Result<Self, CurrencyError> {
        CURRENCIES
            .iter()
            .find(|code| **code == input)
            .map(|code| Self(code))
            .ok_or(CurrencyError)
    }

    /// The ISO 4217 code.
    pub(crate) fn code(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The largest amount, in minor units, anything here holds: 100 billion
/// in major units. Far above any real invoice, and far enough below
/// `i64::MAX` that no sum or tax of amounts below it can overflow.
pub(crate) const MAX_MINOR: i64 = 10_000_000_000_000;

/// A non-negative amount of a currency, in minor units, at most
/// [`MAX_MINOR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Money {
    minor: i64,
    currency: Currency,
}

/// Why an amount is not [`Money`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MoneyError {
    /// Below zero.
    #[error("must not be negative")]
    Negative,
    /// Above [`MAX_MINOR`].
    #[error("must be at most 10000000000000 minor units")]
    TooLarge,
}

impl Money {
    /// `minor` units of `currency`.
    pub(crate) fn parse(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::Negative);
        }
        if minor > MAX_MINOR {
            return Err(MoneyError::TooLarge);
        }
        Ok(Self { minor, currency })
    }

    /// Nothing of `currency`.
    pub(crate) fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    /// The amount in minor units.
    pub(crate) fn minor(self) -> i64 {
        self.minor
    }

    /// The currency.
    pub(crate) fn currency(self) -> Currency {
        self.currency
    }

    /// Whether the amount is above zero.
    pub(crate) fn is_positive(self) -> bool {
        self.minor > 0
    }

    /// The sum, or an error past [`MAX_MINOR`]. Both amounts must be of the
    /// same currency; the invoice, which holds one currency, makes sure.
    pub(crate) fn plus(self, other: Self) -> Result<Self, MoneyError> {
        debug_assert_eq!(self.currency, other.currency);
        Self::parse(self.minor + other.minor, self.currency)
    }

    /// `quantity` times the amount, or an error past [`MAX_MINOR`].
    pub(crate) fn times(self, quantity: u32) -> Result<Self, MoneyError> {
        // Both factors are bounded (2^44 and 2^32), so i128 cannot overflow.
        let product = i128::from(self.minor) * i128::from(quantity);
        let minor = i64::try_from(product).map_err(|_| MoneyError::TooLarge)?;
        Self::parse(minor, self.currency)
    }

    /// The share `basis_points` / 10000 of the amount, rounded half up
    /// (away from zero, since amounts are never negative): 12.5 cents is
    /// 13 cents.
    pub(crate) fn share_half_up(self, basis_points: u32) -> Self {
        let scaled = i128::from(self.minor) * i128::from(basis_points);
        let rounded = (scaled + 5_000) / 10_000;
        // At most the amount itself times 2^32 / 10^4: inside i64 for every
        // amount up to MAX_MINOR and any rate up to 100 %.
        let minor = i64::try_from(rounded).unwrap_or(i64::MAX);
        Self {
            minor,
            currency: self.currency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(minor: i64) -> Money {
        Money::parse(minor, Currency::parse("EUR").unwrap()).unwrap()
    }

    #[test]
    fn supported_currencies_are_accepted() {
        for code in CURRENCIES {
            assert_eq!(Currency::parse(code).unwrap().code(), code);
        }
    }

    #[test]
    fn lower_case_and_unknown_currency_codes_are_rejected() {
        assert_eq!(Currency::parse("eur"), Err(CurrencyError));
        assert_eq!(Currency::parse("XYZ"), Err(CurrencyError));
        assert_eq!(Currency::parse(""), Err(CurrencyError));
    }

    #[test]
    fn negative_amounts_are_rejected() {
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(Money::parse(-1, eur), Err(MoneyError::Negative));
    }

    #[test]
    fn amounts_above_the_maximum_are_rejected() {
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(
            Money::parse(MAX_MINOR, eur).map(Money::minor),
            Ok(MAX_MINOR)
        );
        assert_eq!(Money::parse(MAX_MINOR + 1, eur), Err(MoneyError::TooLarge));
    }

    #[test]
    fn sums_past_the_maximum_are_an_error_not_an_overflow() {
        assert_eq!(eur(MAX_MINOR).plus(eur(1)), Err(MoneyError::TooLarge));
        assert_eq!(eur(MAX_MINOR).times(u32::MAX), Err(MoneyError::TooLarge));
    }

    #[test]
    fn a_product_is_exact() {
        assert_eq!(eur(1_250).times(3), Ok(eur(3_750)));
    }

    #[test]
    fn a_share_rounds_half_up() {
        // 20 % of 2.5 cents is 0.5 cents: up to 1.
        assert_eq!(eur(25).share_half_up(200).minor(), 1);
        assert_eq!(eur(6).share_half_up(2_000).minor(), 1); // 1.2 → 1
        assert_eq!(eur(8).share_half_up(2_000).minor(), 2); // 1.6 → 2
        assert_eq!(eur(0).share_half_up(2_000).minor(), 0);
    }

    #[test]
    fn a_share_of_the_largest_amount_does_not_overflow() {
        assert_eq!(eur(MAX_MINOR).share_half_up(10_000).minor(), MAX_MINOR);
    }
}
