//! What the gate judges: the metrics, their regression limits (flags or a criteria file), the
//! correctness and spend limits.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

/// A metric the gate can compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Median time to first token.
    TtftP50,
    /// 95th percentile time to first token.
    TtftP95,
    /// 99th percentile time to first token.
    TtftP99,
    /// Median inter-token latency (every gap of every successful probe).
    ItlP50,
    /// 95th percentile inter-token latency.
    ItlP95,
    /// 99th percentile inter-token latency.
    ItlP99,
    /// Median time per output token (one value per probe).
    TpotP50,
    /// 95th percentile time per output token.
    TpotP95,
    /// Median end-to-end duration.
    E2eP50,
    /// 95th percentile end-to-end duration.
    E2eP95,
    /// 99th percentile end-to-end duration.
    E2eP99,
    /// Median per-probe output rate (tokens per second of E2E); higher is better.
    OutputRate,
    /// Share of probes that did not end in `success`.
    ErrorRatio,
    /// Share of probes that ended `rate_limited`.
    RateLimitedRatio,
    /// Share of probes whose scenario checks failed (`check_failed`).
    CheckFailedRatio,
    /// Mean cost of a probe, USD.
    CostPerRequest,
    /// Cost of all probes per 1000 successful ones, USD.
    CostPer1kSuccess,
}

/// How a metric is estimated from probes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A nearest-rank quantile `q` of a per-probe value of successful probes.
    Quantile(Field, f64),
    /// A share of all probes; its limit is in absolute points.
    Ratio,
    /// A cost estimate over all probes.
    Cost,
}

/// A per-probe value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// Time to first token.
    Ttft,
    /// Inter-token gaps (several per probe).
    Itl,
    /// Time per output token.
    Tpot,
    /// End to end.
    E2e,
    /// Output tokens per second.
    OutputRate,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 17] = [
        Metric::TtftP50,
        Metric::TtftP95,
        Metric::TtftP99,
        Metric::ItlP50,
        Metric::ItlP95,
        Metric::ItlP99,
        Metric::TpotP50,
        Metric::TpotP95,
        Metric::E2eP50,
        Metric::E2eP95,
        Metric::E2eP99,
        Metric::OutputRate,
        Metric::ErrorRatio,
        Metric::RateLimitedRatio,
        Metric::CheckFailedRatio,
        Metric::CostPerRequest,
        Metric::CostPer1kSuccess,
    ];

    /// The name used in flags, files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::TtftP50 => "ttft_p50",
            Metric::TtftP95 => "ttft_p95",
            Metric::TtftP99 => "ttft_p99",
            Metric::ItlP50 => "itl_p50",
            Metric::ItlP95 => "itl_p95",
            Metric::ItlP99 => "itl_p99",
            Metric::TpotP50 => "tpot_p50",
            Metric::TpotP95 => "tpot_p95",
            Metric::E2eP50 => "e2e_p50",
            Metric::E2eP95 => "e2e_p95",
            Metric::E2eP99 => "e2e_p99",
            Metric::OutputRate => "output_rate",
            Metric::ErrorRatio => "error_ratio",
            Metric::RateLimitedRatio => "rate_limited_ratio",
            Metric::CheckFailedRatio => "check_failed_ratio",
            Metric::CostPerRequest => "cost_per_request",
            Metric::CostPer1kSuccess => "cost_per_1k_success",
        }
    }

    /// The metric named `s`.
    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }

    /// How it is estimated.
    pub fn kind(self) -> Kind {
        use Field::*;
        match self {
            Metric::TtftP50 => Kind::Quantile(Ttft, 0.50),
            Metric::TtftP95 => Kind::Quantile(Ttft, 0.95),
            Metric::TtftP99 => Kind::Quantile(Ttft, 0.99),
            Metric::ItlP50 => Kind::Quantile(Itl, 0.50),
            Metric::ItlP95 => Kind::Quantile(Itl, 0.95),
            Metric::ItlP99 => Kind::Quantile(Itl, 0.99),
            Metric::TpotP50 => Kind::Quantile(Tpot, 0.50),
            Metric::TpotP95 => Kind::Quantile(Tpot, 0.95),
            Metric::E2eP50 => Kind::Quantile(E2e, 0.50),
            Metric::E2eP95 => Kind::Quantile(E2e, 0.95),
            Metric::E2eP99 => Kind::Quantile(E2e, 0.99),
            Metric::OutputRate => Kind::Quantile(OutputRate, 0.50),
            Metric::ErrorRatio | Metric::RateLimitedRatio | Metric::CheckFailedRatio => Kind::Ratio,
            Metric::CostPerRequest | Metric::CostPer1kSuccess => Kind::Cost,
        }
    }

    /// Whether a larger value is the better one (only the output rate).
    pub fn higher_is_better(self) -> bool {
        self == Metric::OutputRate
    }

    /// The unit values are reported in.
    pub fn unit(self) -> &'static str {
        match self.kind() {
            Kind::Quantile(Field::OutputRate, _) => "tokens/s",
            Kind::Quantile(..) => "seconds",
            Kind::Ratio => "ratio",
            Kind::Cost => "USD",
        }
    }

    /// A stable number for this metric (its bootstrap stream).
    pub fn index(self) -> u64 {
        Metric::ALL.iter().position(|m| *m == self).unwrap_or(0) as u64
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metric's limit: how far it may move in its bad direction. Relative (a fraction of the
/// baseline) for quantiles and costs, absolute points for ratios.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit {
    /// The metric.
    pub metric: Metric,
    /// The tolerance as a fraction (`0.15` for `15%`), never negative.
    pub tolerance: f64,
}

impl Limit {
    /// The limit as written: `15%`, `-10%` for the output rate, `0.5 pt` for ratios.
    pub fn display(&self) -> String {
        let pct = fmt_pct(self.tolerance * 100.0);
        match (self.metric.kind(), self.metric.higher_is_better()) {
            (Kind::Ratio, _) => format!("+{pct} pt"),
            (_, true) => format!("-{pct}%"),
            _ => format!("+{pct}%"),
        }
    }
}

/// A percentage without trailing zeros: `15`, `0.5`.
pub fn fmt_pct(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Parses `METRIC=PCT` (`ttft_p95=15%`, `error_ratio=0.5%`, `output_rate=-10%`). The sign is
/// optional where it agrees with the metric's bad direction; a limit always applies to the bad
/// direction (up for latencies, ratios and costs, down for the output rate).
pub fn parse_limit(s: &str) -> Result<Limit, String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected METRIC=PCT, e.g. ttft_p95=15%"))?;
    let metric = Metric::parse(name.trim()).ok_or_else(|| {
        format!(
            "{:?}: unknown metric; known: {}",
            name.trim(),
            Metric::ALL.map(|m| m.name()).join(", ")
        )
    })?;
    let tolerance = parse_pct(metric, value.trim())?;
    Ok(Limit { metric, tolerance })
}

fn parse_pct(metric: Metric, v: &str) -> Result<f64, String> {
    let num = v
        .strip_suffix('%')
        .ok_or_else(|| format!("{metric}={v}: give the limit in percent, e.g. {metric}=15%"))?;
    let x: f64 = num
        .trim()
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite())
        .ok_or_else(|| format!("{metric}={v}: not a number"))?;
    if x < 0.0 && !metric.higher_is_better() {
        return Err(format!(
            "{metric}={v}: a limit is how far the metric may get worse (higher, for {metric}); \
             give a positive percentage"
        ));
    }
    if x > 0.0 && metric.higher_is_better() && num.trim().starts_with('+') {
        return Err(format!(
            "{metric}={v}: a higher {metric} is better; the limit is how far it may drop, e.g. \
             {metric}=-10%"
        ));
    }
    let tol = x.abs() / 100.0;
    if metric.kind() == Kind::Ratio && tol > 1.0 {
        return Err(format!("{metric}={v}: a ratio limit is at most 100%"));
    }
    Ok(tol)
}

/// The limits that apply when neither flags nor a criteria file give any.
pub fn default_limits() -> Vec<Limit> {
    vec![
        Limit {
            metric: Metric::TtftP95,
            tolerance: 0.15,
        },
        Limit {
            metric: Metric::E2eP95,
            tolerance: 0.15,
        },
        Limit {
            metric: Metric::ErrorRatio,
            tolerance: 0.05,
        },
    ]
}

/// A criteria file (`--criteria FILE`), YAML.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CriteriaFile {
    /// Regression limit per metric, in percent: `ttft_p95: 15%`.
    #[serde(default)]
    pub max_regression: BTreeMap<String, String>,
    /// Most candidate probes whose scenario checks may fail.
    #[serde(default)]
    pub max_check_failures: Option<u64>,
    /// Most the gate run may spend on its probes, USD.
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
}

/// Everything the gate judges, after flags over file over defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Criteria {
    /// Regression limits, in report order, one per metric.
    pub limits: Vec<Limit>,
    /// Most candidate probes whose scenario checks may fail; `None`: not judged.
    pub max_check_failures: Option<u64>,
    /// Spending cap of the run, USD.
    pub max_cost_usd: Option<f64>,
}

/// Reads and checks a criteria file; errors name the file and the key.
pub fn read_criteria_file(path: &Path) -> Result<CriteriaFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--criteria {}: cannot read: {e}", path.display()))?;
    parse_criteria_file(&text).map_err(|e| format!("--criteria {}: {e}", path.display()))
}

/// Parses criteria file text.
pub fn parse_criteria_file(text: &str) -> Result<CriteriaFile, String> {
    serde_saphyr::from_str::<CriteriaFile>(text).map_err(|e| e.to_string())
}

/// Combines flag limits over file limits (a flag wins for its metric); with neither, the
/// defaults. Errors name the offending entry.
pub fn resolve(
    flags: &[Limit],
    file: Option<&CriteriaFile>,
    max_check_failures: Option<u64>,
    max_cost_usd: Option<f64>,
) -> Result<Criteria, String> {
    let mut by_metric: BTreeMap<Metric, Limit> = BTreeMap::new();
    if let Some(f) = file {
        for (name, value) in &f.max_regression {
            let l = parse_limit(&format!("{name}={value}"))
                .map_err(|e| format!("max_regression.{name}: {e}"))?;
            by_metric.insert(l.metric, l);
        }
    }
    for l in flags {
        by_metric.insert(l.metric, *l);
    }
    let max_check_failures = max_check_failures.or(file.and_then(|f| f.max_check_failures));
    let max_cost_usd = max_cost_usd.or(file.and_then(|f| f.max_cost_usd));
    if let Some(c) = max_cost_usd {
        if !(c.is_finite() && c > 0.0) {
            return Err(format!("--max-cost-usd must be above 0, got {c}"));
        }
    }
    let limits = if by_metric.is_empty() && max_check_failures.is_none() {
        default_limits()
    } else {
        by_metric.into_values().collect()
    };
    Ok(Criteria {
        limits,
        max_check_failures,
        max_cost_usd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_with_their_direction() {
        assert_eq!(
            parse_limit("ttft_p95=15%"),
            Ok(Limit {
                metric: Metric::TtftP95,
                tolerance: 0.15
            })
        );
        assert_eq!(parse_limit("error_ratio=0.5%").unwrap().tolerance, 0.005);
        assert_eq!(parse_limit("output_rate=-10%").unwrap().tolerance, 0.1);
        assert_eq!(parse_limit("output_rate=10%").unwrap().tolerance, 0.1);
        assert!(parse_limit("output_rate=+10%").is_err());
        assert!(parse_limit("ttft_p95=-5%")
            .unwrap_err()
            .contains("positive percentage"));
        assert!(parse_limit("ttft_p95=0.15")
            .unwrap_err()
            .contains("in percent"));
        assert!(parse_limit("ttft_p42=15%")
            .unwrap_err()
            .contains("unknown metric; known: ttft_p50"));
        assert!(parse_limit("error_ratio=150%").is_err());
        assert!(parse_limit("ttft_p95").is_err());
        assert_eq!(parse_limit("output_rate=-10%").unwrap().display(), "-10%");
        assert_eq!(
            parse_limit("error_ratio=0.5%").unwrap().display(),
            "+0.5 pt"
        );
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.name()), Some(m));
        }
    }

    #[test]
    fn flags_override_the_file_and_defaults_apply_only_without_either() {
        let file = parse_criteria_file(
            "max_regression:\n  ttft_p95: 20%\n  error_ratio: 1%\nmax_cost_usd: 0.5\n",
        )
        .unwrap();
        let c = resolve(
            &[parse_limit("ttft_p95=10%").unwrap()],
            Some(&file),
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            c.limits,
            vec![
                Limit {
                    metric: Metric::TtftP95,
                    tolerance: 0.10
                },
                Limit {
                    metric: Metric::ErrorRatio,
                    tolerance: 0.01
                }
            ]
        );
        assert_eq!(c.max_cost_usd, Some(0.5));
        assert_eq!(
            resolve(&[], None, None, None).unwrap().limits,
            default_limits()
        );
        let bad = parse_criteria_file("max_regression:\n  ttft_p95: 20\n").unwrap();
        assert!(resolve(&[], Some(&bad), None, None)
            .unwrap_err()
            .starts_with("max_regression.ttft_p95: "));
        assert!(parse_criteria_file("max_regresion: {}\n").is_err());
        assert!(resolve(&[], None, None, Some(0.0)).is_err());
    }
}
