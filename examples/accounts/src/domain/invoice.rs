//! [`Invoice`]: what a customer owes, its [`Line`]s, its tax and its
//! [`InvoiceState`].
//!
//! # Tax
//!
//! One rate, [`TAX_RATE_BASIS_POINTS`] (20 %), computed by one of two
//! engines, chosen per customer by the feature flag `billing.tax_engine_v2`
//! and recorded on the invoice:
//!
//! - [`TaxEngine::V1`]: 20 % of the subtotal, rounded half up once per
//!   invoice.
//! - [`TaxEngine::V2`]: 20 % of each line's amount, each rounded half up,
//!   then summed; what tax authorities that require per-line tax expect.
//!
//! The two differ by rounding only: two lines of 0.03 each are taxed 0.01
//! by v1 (20 % of 0.06 is 0.012) and 0.02 by v2 (0.006 rounds to 0.01,
//! twice).

use time::OffsetDateTime;

use super::money::{Currency, MAX_MINOR, Money, MoneyError};
use super::{InvoiceId, UserId};

/// The tax rate, in hundredths of a percent.
pub(crate) const TAX_RATE_BASIS_POINTS: u32 = 2_000;

/// The most lines one invoice holds.
pub(crate) const MAX_LINES: usize = 100;

/// The largest quantity of one line.
pub(crate) const MAX_QUANTITY: i64 = 10_000;

/// The longest line description, in characters.
const MAX_DESCRIPTION: usize = 200;

/// Where an invoice is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvoiceState {
    /// Issued, not paid yet.
    Open,
    /// Paid; final.
    Paid,
}

/// Paying an invoice that is already paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the invoice is already paid")]
pub(crate) struct AlreadyPaid;

/// A state name that is not one of [`InvoiceState`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an invoice state")]
pub(crate) struct UnknownState(String);

impl InvoiceState {
    /// Parses the stored name: `open` or `paid`.
    pub(crate) fn parse(input: &str) -> Result<Self, UnknownState> {
        match input {
            "open" => Ok(Self::Open),
            "paid" => Ok(Self::Paid),
            other => Err(UnknownState(other.to_owned())),
        }
    }

    /// The name clients and storage use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Paid => "paid",
        }
    }

    /// The state after a payment: only an open invoice can be paid, once.
    pub(crate) fn pay(self) -> Result<Self, AlreadyPaid> {
        match self {
            Self::Open => Ok(Self::Paid),
            Self::Paid => Err(AlreadyPaid),
        }
    }
}

/// How tax is computed; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaxEngine {
    /// Per invoice.
    V1,
    /// Per line.
    V2,
}

impl TaxEngine {
    /// Parses the stored name: `v1` or `v2`.
    pub(crate) fn parse(input: &str) -> Option<Self> {
        match input {
            "v1" => Some(Self::V1),
            "v2" => Some(Self::V2),
            _ => None,
        }
    }

    /// The name clients and storage use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }

    /// The tax on `lines`, whose amounts are all of `currency`.
    fn tax(self, lines: &[Line], subtotal: Money) -> Result<Money, MoneyError> {
        match self {
            Self::V1 => Ok(subtotal.share_half_up(TAX_RATE_BASIS_POINTS)),
            Self::V2 => lines
                .iter()
                .map(|line| line.amount.share_half_up(TAX_RATE_BASIS_POINTS))
                .try_fold(Money::zero(subtotal.currency()), Money::plus),
        }
    }
}

/// Which part of a line is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineField {
    /// `description`
    Description,
    /// `quantity`
    Quantity,
    /// `unit_amount`
    UnitAmount,
}

/// One rule a line breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub(crate) struct LineError {
    pub(crate) field: LineField,
    pub(crate) code: &'static str,
    pub(crate) detail: &'static str,
}

/// One billed item: a description, a quantity and a unit price, whose
/// product is the line's amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) description: String,
    pub(crate) quantity: u32,
    pub(crate) unit_amount: Money,
    /// `quantity × unit_amount`.
    pub(crate) amount: Money,
}

impl Line {
    /// A line of `quantity` × `unit_amount` minor units of `currency`,
    /// reporting every rule it breaks.
    pub(crate) fn parse(
        description: &str,
        quantity: i64,
        unit_amount: i64,
        currency: Currency,
    ) -> Result<Self, Vec<LineError>> {
        let mut errors = Vec::new();
        let error = |field, code, detail| LineError {
            field,
            code,
            detail,
        };
        let description = description.trim();
        if description.is_empty() || description.chars().count() > MAX_DESCRIPTION {
            errors.push(error(
                LineField::Description,
                "INVALID_DESCRIPTION",
                "must be 1 to 200 characters",
            ));
        } else if description.chars().any(char::is_control) {
            errors.push(error(
                LineField::Description,
                "INVALID_DESCRIPTION",
                "must not contain control characters",
            ));
        } else if description.chars().any(super::text::is_invisible_or_bidi) {
            errors.push(error(
                LineField::Description,
                "INVALID_DESCRIPTION",
                "must not contain invisible or direction-changing characters",
            ));
        }
        let quantity = match u32::try_from(quantity) {
            Ok(quantity) if (1..=MAX_QUANTITY).contains(&i64::from(quantity)) => Some(quantity),
            _ => {
                errors.push(error(
                    LineField::Quantity,
                    "INVALID_QUANTITY",
                    "must be between 1 and 10000",
                ));
                None
            }
        };
        let unit_amount = match Money::parse(unit_amount, currency) {
            Ok(amount) if amount.is_positive() => Some(amount),
            Ok(_) | Err(MoneyError::Negative) => {
                errors.push(error(
                    LineField::UnitAmount,
                    "NOT_POSITIVE",
                    "must be greater than 0",
                ));
                None
            }
            Err(MoneyError::TooLarge) => {
                errors.push(error(
                    LineField::UnitAmount,
                    "AMOUNT_TOO_LARGE",
                    "must be at most 10000000000000 minor units",
                ));
                None
            }
        };
        let (Some(quantity), Some(unit_amount)) = (quantity, unit_amount) else {
            return Err(errors);
        };
        let Ok(amount) = unit_amount.times(quantity) else {
            errors.push(error(
                LineField::UnitAmount,
                "AMOUNT_TOO_LARGE",
                "quantity × unit_amount must be at most 10000000000000 minor units",
            ));
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            description: description.to_owned(),
            quantity,
            unit_amount,
            amount,
        })
    }
}

/// A rule the invoice as a whole breaks (its lines each being fine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InvoiceError {
    /// No line, so nothing to bill: the amount would not be positive.
    #[error("must hold at least one line")]
    NoLines,
    /// More than [`MAX_LINES`].
    #[error("must hold at most 100 lines")]
    TooManyLines,
    /// The total is above [`MAX_MINOR`].
    #[error("the total must be at most 10000000000000 minor units")]
    TooLarge,
}

impl InvoiceError {
    /// The field code clients see.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::NoLines => "NO_LINES",
            Self::TooManyLines => "TOO_MANY_LINES",
            Self::TooLarge => "AMOUNT_TOO_LARGE",
        }
    }
}

/// Whether an invoice may hold `count` lines: 1 to [`MAX_LINES`]. Without
/// a line there is nothing to bill and the amount would not be positive.
pub(crate) fn check_line_count(count: usize) -> Result<(), InvoiceError> {
    match count {
        0 => Err(InvoiceError::NoLines),
        n if n > MAX_LINES => Err(InvoiceError::TooManyLines),
        _ => Ok(()),
    }
}

/// An invoice. Built by [`Invoice::open`], which holds its invariants:
/// at least one line, all in its currency, a positive subtotal, and
/// `total = subtotal + tax`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invoice {
    pub(crate) id: InvoiceId,
    pub(crate) customer_id: UserId,
    pub(crate) currency: Currency,
    pub(crate) lines: Vec<Line>,
    pub(crate) subtotal: Money,
    pub(crate) tax: Money,
    pub(crate) total: Money,
    pub(crate) tax_engine: TaxEngine,
    pub(crate) state: InvoiceState,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) paid_at: Option<OffsetDateTime>,
}

impl Invoice {
    /// A new open invoice for `customer_id`, taxed by `tax_engine`.
    pub(crate) fn open(
        customer_id: UserId,
        currency: Currency,
        lines: Vec<Line>,
        tax_engine: TaxEngine,
        now: OffsetDateTime,
    ) -> Result<Self, InvoiceError> {
        check_line_count(lines.len())?;
        let subtotal = lines
            .iter()
            .map(|line| line.amount)
            .try_fold(Money::zero(currency), Money::plus)
            .map_err(|_| InvoiceError::TooLarge)?;
        let tax = tax_engine
            .tax(&lines, subtotal)
            .map_err(|_| InvoiceError::TooLarge)?;
        let total = subtotal.plus(tax).map_err(|_| InvoiceError::TooLarge)?;
        // Every line is positive and there is one, so the subtotal is too.
        debug_assert!(subtotal.is_positive());
        debug_assert!(total.minor() <= MAX_MINOR);
        Ok(Self {
            id: InvoiceId::new(),
            customer_id,
            currency,
            lines,
            subtotal,
            tax,
            total,
            tax_engine,
            state: InvoiceState::Open,
            created_at: now,
            paid_at: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn line(quantity: i64, unit_amount: i64) -> Line {
        Line::parse("Widget", quantity, unit_amount, eur()).unwrap()
    }

    fn open(lines: Vec<Line>, engine: TaxEngine) -> Result<Invoice, InvoiceError> {
        Invoice::open(
            UserId::new(),
            eur(),
            lines,
            engine,
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn an_open_invoice_can_be_paid() {
        assert_eq!(InvoiceState::Open.pay(), Ok(InvoiceState::Paid));
    }

    #[test]
    fn a_paid_invoice_cannot_be_paid_again() {
        assert_eq!(InvoiceState::Paid.pay(), Err(AlreadyPaid));
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in [InvoiceState::Open, InvoiceState::Paid] {
            assert_eq!(InvoiceState::parse(state.as_str()), Ok(state));
        }
        assert!(InvoiceState::parse("void").is_err());
    }

    #[test]
    fn a_line_amount_is_quantity_times_unit_amount() {
        assert_eq!(line(3, 1_250).amount.minor(), 3_750);
    }

    #[test]
    fn a_line_reports_every_broken_rule_at_once() {
        let errors = Line::parse(" ", 0, -1, eur()).unwrap_err();
        let fields: Vec<LineField> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                LineField::Description,
                LineField::Quantity,
                LineField::UnitAmount
            ]
        );
    }

    #[test]
    fn a_zero_unit_amount_is_not_positive() {
        let errors = Line::parse("Widget", 1, 0, eur()).unwrap_err();
        assert_eq!(errors[0].code, "NOT_POSITIVE");
    }

    #[test]
    fn a_line_whose_product_is_too_large_is_rejected() {
        let errors = Line::parse("Widget", 10_000, MAX_MINOR, eur()).unwrap_err();
        assert_eq!(errors[0].code, "AMOUNT_TOO_LARGE");
    }

    #[test]
    fn an_invoice_without_lines_is_rejected() {
        assert_eq!(open(vec![], TaxEngine::V1), Err(InvoiceError::NoLines));
    }

    #[test]
    fn an_invoice_with_more_than_100_lines_is_rejected() {
        let lines = vec![line(1, 1); 101];
        assert_eq!(open(lines, TaxEngine::V1), Err(InvoiceError::TooManyLines));
    }

    #[test]
    fn an_invoice_whose_total_is_too_large_is_rejected() {
        let lines = vec![line(1, MAX_MINOR), line(1, 1)];
        assert_eq!(open(lines, TaxEngine::V1), Err(InvoiceError::TooLarge));
    }

    #[test]
    fn a_new_invoice_is_open_and_its_total_is_subtotal_plus_tax() {
        let invoice = open(vec![line(2, 1_250), line(1, 500)], TaxEngine::V1).unwrap();
        assert_eq!(invoice.state, InvoiceState::Open);
        assert_eq!(invoice.subtotal.minor(), 3_000);
        assert_eq!(invoice.tax.minor(), 600);
        assert_eq!(invoice.total.minor(), 3_600);
    }

    #[test]
    fn v1_rounds_the_tax_once_per_invoice() {
        let invoice = open(vec![line(1, 3), line(1, 3)], TaxEngine::V1).unwrap();
        // 20 % of 6 is 1.2.
        assert_eq!(invoice.tax.minor(), 1);
    }

    #[test]
    fn v2_rounds_the_tax_of_each_line() {
        let invoice = open(vec![line(1, 3), line(1, 3)], TaxEngine::V2).unwrap();
        // 20 % of 3 is 0.6, rounded to 1, twice.
        assert_eq!(invoice.tax.minor(), 2);
        assert_eq!(invoice.total.minor(), 8);
    }

    #[test]
    fn both_engines_agree_when_no_line_needs_rounding() {
        let lines = vec![line(2, 1_000), line(1, 500)];
        let v1 = open(lines.clone(), TaxEngine::V1).unwrap();
        let v2 = open(lines, TaxEngine::V2).unwrap();
        assert_eq!(v1.tax, v2.tax);
    }
}
