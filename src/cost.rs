//! Prices and the cost of one request.

use crate::config::PriceConfig;

/// Token counts of one request, as far as the server reported them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenCounts {
    /// Input tokens including cached ones; `None` when the server reported no usage.
    pub input: Option<u64>,
    /// The part of `input` served from the provider's prompt cache.
    pub cached_input: Option<u64>,
    /// Output tokens.
    pub output: u64,
}

/// Cost in USD: uncached input × input price + cached input × cached price (input price when no
/// cached price is configured) + output × output price. Unreported input counts as 0, so a server
/// that reports no usage is under-costed by its input part; `probe` output shows the token source.
pub fn request_cost(price: &PriceConfig, tokens: TokenCounts) -> f64 {
    let input = tokens.input.unwrap_or(0);
    let cached = tokens.cached_input.unwrap_or(0).min(input);
    let cached_price = price
        .cached_input_per_million
        .unwrap_or(price.input_per_million);
    ((input - cached) as f64 * price.input_per_million
        + cached as f64 * cached_price
        + tokens.output as f64 * price.output_per_million)
        / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price() -> PriceConfig {
        PriceConfig {
            input_per_million: 3.0,
            output_per_million: 15.0,
            cached_input_per_million: Some(0.3),
        }
    }

    #[test]
    fn cost_splits_cached_input() {
        let c = request_cost(
            &price(),
            TokenCounts {
                input: Some(1_000),
                cached_input: Some(400),
                output: 100,
            },
        );
        // 600 × 3 + 400 × 0.3 + 100 × 15 = 1800 + 120 + 1500 = 3420 per million.
        assert!((c - 0.003420).abs() < 1e-12, "{c}");
    }

    #[test]
    fn missing_cached_price_falls_back_to_input_price_and_missing_input_is_zero() {
        let p = PriceConfig {
            cached_input_per_million: None,
            ..price()
        };
        let c = request_cost(
            &p,
            TokenCounts {
                input: Some(10),
                cached_input: Some(5),
                output: 0,
            },
        );
        assert!((c - 30.0 / 1e6).abs() < 1e-15);
        let c = request_cost(
            &p,
            TokenCounts {
                input: None,
                cached_input: None,
                output: 2,
            },
        );
        assert!((c - 30.0 / 1e6).abs() < 1e-15);
    }

    #[test]
    fn cached_never_exceeds_input() {
        let c = request_cost(
            &price(),
            TokenCounts {
                input: Some(10),
                cached_input: Some(50),
                output: 0,
            },
        );
        assert!((c - 3.0 / 1e6).abs() < 1e-15);
    }
}
