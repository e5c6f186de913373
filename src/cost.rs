//! Prices and the cost of one request.

use std::time::Duration;

use crate::config::{PriceConfig, SelfHostedConfig};

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

/// The hourly cost of a self-hosted endpoint: `gpus × gpu_hour_usd`, plus, when an electricity
/// price is set and NVML reports power, `gpus × mean GPU power (kW) × energy_usd_per_kwh`.
pub fn self_hosted_hourly_usd(cfg: &SelfHostedConfig, mean_gpu_power_watts: Option<f64>) -> f64 {
    let gpus = f64::from(cfg.gpus);
    let energy = match (cfg.energy_usd_per_kwh, mean_gpu_power_watts) {
        (Some(price), Some(w)) if w.is_finite() && w >= 0.0 => gpus * w / 1000.0 * price,
        _ => 0.0,
    };
    gpus * cfg.gpu_hour_usd + energy
}

/// The share of the hourly rate one request used: its duration, divided among the requests the
/// server was running (at least 1: the probe itself). Without server data the whole rate is
/// charged, an upper bound.
pub fn self_hosted_request_cost(hourly_usd: f64, duration: Duration, running: Option<f64>) -> f64 {
    let sharing = running.filter(|r| r.is_finite()).unwrap_or(1.0).max(1.0);
    hourly_usd * duration.as_secs_f64() / 3600.0 / sharing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_hosted(energy: Option<f64>) -> SelfHostedConfig {
        SelfHostedConfig {
            gpus: 2,
            gpu_hour_usd: 3.0,
            energy_usd_per_kwh: energy,
            server: None,
        }
    }

    #[test]
    fn self_hosted_rate_adds_measured_energy_only_when_priced_and_measured() {
        assert_eq!(self_hosted_hourly_usd(&self_hosted(None), Some(400.0)), 6.0);
        assert_eq!(self_hosted_hourly_usd(&self_hosted(Some(0.2)), None), 6.0);
        // 2 GPUs × 0.4 kW × 0.2 USD/kWh = 0.16 USD/h on top of 6 USD/h.
        let r = self_hosted_hourly_usd(&self_hosted(Some(0.2)), Some(400.0));
        assert!((r - 6.16).abs() < 1e-12, "{r}");
    }

    #[test]
    fn self_hosted_request_shares_the_rate_with_running_requests() {
        // 7.2 USD/h = 0.002 USD/s; a 3 s request alone costs 0.006 USD.
        let alone = self_hosted_request_cost(7.2, Duration::from_secs(3), None);
        assert!((alone - 0.006).abs() < 1e-12, "{alone}");
        let shared = self_hosted_request_cost(7.2, Duration::from_secs(3), Some(4.0));
        assert!((shared - 0.0015).abs() < 1e-12, "{shared}");
        // A server reporting 0 running still ran our probe.
        assert_eq!(
            self_hosted_request_cost(7.2, Duration::from_secs(3), Some(0.0)),
            alone
        );
    }

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
