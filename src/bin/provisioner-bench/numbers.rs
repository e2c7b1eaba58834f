//! Small number helpers shared by the report and the ledger queries.

/// `x` rounded to `digits` decimals, for printing and JSON.
pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}
