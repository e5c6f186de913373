//! Judging the candidate's probes against the baseline, metric by metric and scenario by
//! scenario. Pure: probes in, rows out.

use serde::{Deserialize, Serialize};

use super::baseline::{Baseline, ProbeSample};
use super::criteria::{Criteria, Field, Kind, Limit, Metric};
use super::stats::{self, Against, Interval, Verdict};

/// One judged metric: the report's row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Metric name (`ttft_p95`, ..., or `check_failures`).
    pub metric: String,
    /// Scenario the row is about.
    pub scenario: String,
    /// Unit of `baseline` and `candidate`.
    pub unit: String,
    /// The limit as given (`+15%`, `-10%`, `+0.5 pt`, `<= 0 probes`).
    pub limit: String,
    /// Baseline value.
    pub baseline: Option<f64>,
    /// Candidate value.
    pub candidate: Option<f64>,
    /// Change: relative (`0.2` = +20%) for latencies, rates and costs; absolute difference of
    /// ratios (`0.01` = +1 point) for ratios.
    pub change: Option<f64>,
    /// `relative`, `absolute` or `count`.
    pub change_kind: String,
    /// 95% interval of the change, low end.
    pub ci_low: Option<f64>,
    /// 95% interval of the change, high end.
    pub ci_high: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// How the interval was computed.
    pub method: String,
    /// Candidate observations the value rests on (successful probes for latencies, all probes
    /// for ratios and costs).
    pub n_candidate: usize,
    /// Baseline observations, for a sampled baseline.
    pub n_baseline: Option<usize>,
    /// For an inconclusive verdict: probes per side that would likely settle it.
    pub needed_probes: Option<u64>,
    /// Why the verdict is what it is, where the numbers do not say it.
    pub note: Option<String>,
}

/// The gate's overall verdict and exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overall {
    /// Every judged metric passed: exit 0.
    Pass,
    /// Some metric regressed beyond its limit: exit 1.
    Fail,
    /// Not enough evidence, nothing judged, or the run was cut short: exit 2.
    Inconclusive,
}

impl Overall {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Overall::Pass => 0,
            Overall::Fail => 1,
            Overall::Inconclusive => 2,
        }
    }

    /// `pass`, `fail`, `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Pass => "pass",
            Overall::Fail => "fail",
            Overall::Inconclusive => "inconclusive",
        }
    }
}

/// Any fail fails the gate (a regression the data shows is not excused by metrics that lack
/// evidence); else any inconclusive row, or no row judged at all, makes it inconclusive.
pub fn overall(rows: &[Evaluation]) -> Overall {
    if rows.iter().any(|r| r.verdict == Verdict::Fail) {
        Overall::Fail
    } else if rows.iter().any(|r| r.verdict == Verdict::Inconclusive)
        || !rows.iter().any(|r| r.verdict == Verdict::Pass)
    {
        Overall::Inconclusive
    } else {
        Overall::Pass
    }
}

/// The scenarios of `probes`, in first-seen order.
pub fn scenarios(probes: &[ProbeSample]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in probes {
        if !out.contains(&p.scenario) {
            out.push(p.scenario.clone());
        }
    }
    out
}

/// Judges every criterion for every scenario of the candidate.
pub fn judge_all(
    criteria: &Criteria,
    candidate: &[ProbeSample],
    baseline: &Baseline,
) -> Vec<Evaluation> {
    let mut rows = Vec::new();
    for scenario in scenarios(candidate) {
        let cand: Vec<&ProbeSample> = candidate
            .iter()
            .filter(|p| p.scenario == scenario)
            .collect();
        for limit in &criteria.limits {
            let base = match baseline {
                Baseline::Samples { samples, .. } => {
                    let b: Vec<&ProbeSample> =
                        samples.iter().filter(|p| p.scenario == scenario).collect();
                    if b.is_empty() {
                        Base::Missing(format!(
                            "the baseline has no probes of scenario {scenario:?}"
                        ))
                    } else {
                        Base::Samples(b)
                    }
                }
                Baseline::Points { values, .. } => match values.get(&limit.metric) {
                    Some(v) => Base::Point(*v),
                    None => Base::Missing("no baseline value for this metric".to_string()),
                },
            };
            rows.push(judge(limit, &scenario, &cand, &base));
        }
        if let Some(max) = criteria.max_check_failures {
            rows.push(check_failures(&scenario, &cand, max));
        }
    }
    rows
}

/// The baseline side of one row.
pub enum Base<'a> {
    /// Raw probes.
    Samples(Vec<&'a ProbeSample>),
    /// An exact value.
    Point(f64),
    /// Nothing to compare with, and why.
    Missing(String),
}

fn row(limit: &Limit, scenario: &str, n_candidate: usize) -> Evaluation {
    let m = limit.metric;
    Evaluation {
        metric: m.name().to_string(),
        scenario: scenario.to_string(),
        unit: m.unit().to_string(),
        limit: limit.display(),
        baseline: None,
        candidate: None,
        change: None,
        change_kind: if m.kind() == Kind::Ratio {
            "absolute"
        } else {
            "relative"
        }
        .to_string(),
        ci_low: None,
        ci_high: None,
        verdict: Verdict::Skipped,
        method: String::new(),
        n_candidate,
        n_baseline: None,
        needed_probes: None,
        note: None,
    }
}

/// Judges one metric of one scenario.
pub fn judge(limit: &Limit, scenario: &str, cand: &[&ProbeSample], base: &Base<'_>) -> Evaluation {
    match limit.metric.kind() {
        Kind::Ratio => judge_ratio(limit, scenario, cand, base),
        Kind::Quantile(..) | Kind::Cost => judge_bootstrap(limit, scenario, cand, base),
    }
}

fn counts(metric: Metric, probes: &[&ProbeSample]) -> u64 {
    probes
        .iter()
        .filter(|p| match metric {
            Metric::ErrorRatio => !p.is_success(),
            Metric::RateLimitedRatio => p.result == "rate_limited",
            _ => p.result == "check_failed",
        })
        .count() as u64
}

fn judge_ratio(
    limit: &Limit,
    scenario: &str,
    cand: &[&ProbeSample],
    base: &Base<'_>,
) -> Evaluation {
    let m = limit.metric;
    let n = cand.len() as u64;
    let k = counts(m, cand);
    let mut r = row(limit, scenario, cand.len());
    if n == 0 {
        r.note = Some("no candidate probe".to_string());
        r.verdict = Verdict::Inconclusive;
        return r;
    }
    let pc = k as f64 / n as f64;
    r.candidate = Some(pc);
    let ci = match base {
        Base::Missing(why) => {
            r.note = Some(why.clone());
            return r;
        }
        Base::Point(pb) => {
            r.baseline = Some(*pb);
            r.method = "Wilson score interval of the candidate, minus the baseline value".into();
            stats::wilson(k, n).map(|w| Interval {
                lo: w.lo - pb,
                hi: w.hi - pb,
            })
        }
        Base::Samples(b) => {
            let nb = b.len() as u64;
            let kb = counts(m, b);
            r.baseline = Some(kb as f64 / nb as f64);
            r.n_baseline = Some(b.len());
            r.method = "Newcombe hybrid score interval of the difference".into();
            stats::newcombe(k, n, kb, nb)
        }
    };
    let (Some(ci), Some(pb)) = (ci, r.baseline) else {
        r.verdict = Verdict::Inconclusive;
        return r;
    };
    let change = pc - pb;
    settle(&mut r, change, ci, limit, cand.len());
    if r.verdict == Verdict::Inconclusive {
        let base = match base {
            Base::Point(_) => stats::RatioBaseline::Point(pb),
            _ => stats::RatioBaseline::Sample(pb),
        };
        r.needed_probes = stats::needed_probes_ratio(pc, base, limit.tolerance, cand.len());
        r.note = Some(inconclusive_note(r.needed_probes));
    }
    r
}

fn inconclusive_note(needed: Option<u64>) -> String {
    match needed {
        Some(k) if k >= stats::MAX_NEEDED => format!(
            "not enough evidence: the interval straddles the limit; more than {} probes per \
             side would be needed",
            stats::MAX_NEEDED
        ),
        Some(k) => format!(
            "not enough evidence: the interval straddles the limit; about {k} probes per side \
             would settle it"
        ),
        None => "not enough evidence: the estimate sits on the limit".to_string(),
    }
}

/// Fills in change, interval, verdict and needed size. `ci` is the interval of the change in
/// its own direction.
fn settle(r: &mut Evaluation, change: f64, ci: Interval, limit: &Limit, n: usize) {
    r.change = Some(change);
    r.ci_low = Some(ci.lo);
    r.ci_high = Some(ci.hi);
    let (bad, est_bad) = if limit.metric.higher_is_better() {
        (ci.negated(), -change)
    } else {
        (ci, change)
    };
    r.verdict = stats::judge(bad, limit.tolerance);
    if r.verdict == Verdict::Inconclusive {
        r.needed_probes = stats::needed_probes(n, est_bad, bad, limit.tolerance);
        r.note = Some(inconclusive_note(r.needed_probes));
    }
}

/// The values a quantile metric is taken over, from successful probes.
fn field_values(field: Field, probes: &[&&ProbeSample]) -> Vec<f64> {
    let ok = probes.iter().filter(|p| p.is_success());
    match field {
        Field::Itl => ok.flat_map(|p| p.itl.iter().copied()).collect(),
        _ => ok
            .filter_map(|p| match field {
                Field::Ttft => p.ttft,
                Field::Tpot => p.tpot,
                Field::E2e => p.e2e,
                Field::OutputRate => p.output_rate,
                Field::Itl => None,
            })
            .filter(|v| v.is_finite())
            .collect(),
    }
}

/// The metric's value over `probes`.
pub fn estimate(metric: Metric, probes: &[&&ProbeSample]) -> Option<f64> {
    match metric.kind() {
        Kind::Quantile(field, q) => stats::quantile(&mut field_values(field, probes), q),
        Kind::Ratio => {
            let v: Vec<&ProbeSample> = probes.iter().map(|p| **p).collect();
            (!v.is_empty()).then(|| counts(metric, &v) as f64 / v.len() as f64)
        }
        Kind::Cost => {
            let costs: Vec<f64> = probes.iter().filter_map(|p| p.cost_usd).collect();
            if costs.is_empty() {
                return None;
            }
            let total: f64 = costs.iter().sum();
            match metric {
                Metric::CostPerRequest => Some(total / costs.len() as f64),
                _ => {
                    let ok = probes.iter().filter(|p| p.is_success()).count();
                    (ok > 0).then(|| total / ok as f64 * 1000.0)
                }
            }
        }
    }
}

/// Observations a metric rests on, and the fewest it needs.
fn observations(metric: Metric, probes: &[&ProbeSample]) -> (usize, usize) {
    match metric.kind() {
        Kind::Quantile(field, q) => {
            let refs: Vec<&&ProbeSample> = probes.iter().collect();
            let ok = probes
                .iter()
                .filter(|p| p.is_success())
                .filter(|p| match field {
                    Field::Itl => !p.itl.is_empty(),
                    Field::Ttft => p.ttft.is_some(),
                    Field::Tpot => p.tpot.is_some(),
                    Field::E2e => p.e2e.is_some(),
                    Field::OutputRate => p.output_rate.is_some(),
                })
                .count();
            if field == Field::Itl {
                // Gaps of one stream move together: also ask for ten streams.
                let gaps = field_values(field, &refs).len();
                let enough = gaps >= stats::min_samples_for_quantile(q) && ok >= 10;
                (if enough { ok } else { ok.min(9) }, 10)
            } else {
                (ok, stats::min_samples_for_quantile(q))
            }
        }
        Kind::Ratio => (probes.len(), 1),
        Kind::Cost => (probes.iter().filter(|p| p.cost_usd.is_some()).count(), 10),
    }
}

fn judge_bootstrap(
    limit: &Limit,
    scenario: &str,
    cand: &[&ProbeSample],
    base: &Base<'_>,
) -> Evaluation {
    let m = limit.metric;
    let (n_c, min) = observations(m, cand);
    let mut r = row(limit, scenario, n_c);
    let cand_refs: Vec<&&ProbeSample> = cand.iter().collect();
    r.candidate = estimate(m, &cand_refs);
    let est = |s: &[&&ProbeSample]| estimate(m, s);
    let (against, base_n) = match base {
        Base::Missing(why) => {
            r.note = Some(why.clone());
            return r;
        }
        Base::Point(v) => {
            r.baseline = Some(*v);
            r.method = format!(
                "percentile bootstrap ({} resamples) of the candidate against the baseline value",
                stats::RESAMPLES
            );
            (Against::Point(*v), None)
        }
        Base::Samples(b) => {
            let refs: Vec<&&ProbeSample> = b.iter().collect();
            r.baseline = estimate(m, &refs);
            r.n_baseline = Some(observations(m, b).0);
            r.method = format!(
                "percentile bootstrap ({} resamples) of both samples",
                stats::RESAMPLES
            );
            (Against::Sample(b), Some(observations(m, b).0))
        }
    };
    if m.kind() == Kind::Cost && (r.candidate.is_none() || r.baseline.is_none()) {
        r.note = Some(if r.candidate.is_none() {
            "not measured: the candidate has no price (give prices in the config or --input-price/--output-price)".to_string()
        } else {
            "no baseline value for this metric".to_string()
        });
        return r;
    }
    let short = n_c < min || base_n.is_some_and(|n| n < min);
    if short {
        r.verdict = Verdict::Inconclusive;
        r.needed_probes = Some(min as u64);
        r.note =
            Some(format!(
            "not enough evidence: {m} needs at least {min} successful probes per side (candidate \
             {n_c}{})",
            base_n.map(|n| format!(", baseline {n}")).unwrap_or_default()
        ));
        return r;
    }
    let (Some(c), Some(b)) = (r.candidate, r.baseline) else {
        r.verdict = Verdict::Inconclusive;
        return r;
    };
    let Some(change) = stats::relative_change(c, b) else {
        r.note = Some("the baseline value is zero: no relative change".to_string());
        return r;
    };
    // Resample the candidate's probes (all of them: a resample's share of failures varies too).
    let Some(ci) = stats::bootstrap_relative(cand, &against, &est, m.index()) else {
        r.verdict = Verdict::Inconclusive;
        r.note = Some("not enough evidence: too few resamples gave a value".to_string());
        return r;
    };
    settle(&mut r, change, ci, limit, cand.len());
    r
}

fn check_failures(scenario: &str, cand: &[&ProbeSample], max: u64) -> Evaluation {
    let k = counts(Metric::CheckFailedRatio, cand);
    Evaluation {
        metric: "check_failures".to_string(),
        scenario: scenario.to_string(),
        unit: "probes".to_string(),
        limit: format!("<= {max} probes"),
        baseline: None,
        candidate: Some(k as f64),
        change: None,
        change_kind: "count".to_string(),
        ci_low: None,
        ci_high: None,
        verdict: if k > max {
            Verdict::Fail
        } else {
            Verdict::Pass
        },
        method: "count of candidate probes whose scenario checks failed".to_string(),
        n_candidate: cand.len(),
        n_baseline: None,
        needed_probes: None,
        note: (k > max).then(|| format!("{k} candidate probes failed their scenario checks")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::criteria::parse_limit;

    fn probe(ttft: f64, result: &str) -> ProbeSample {
        ProbeSample {
            scenario: "s".into(),
            result: result.into(),
            ttft: Some(ttft),
            tpot: Some(0.01),
            e2e: Some(ttft + 0.2),
            output_rate: Some(20.0 / (ttft + 0.2)),
            cost_usd: Some(0.001),
            itl: vec![0.01; 19],
        }
    }

    fn spread(center: f64, n: usize) -> Vec<ProbeSample> {
        // ±5% spread, evenly.
        (0..n)
            .map(|i| probe(center * (0.95 + 0.1 * i as f64 / n as f64), "success"))
            .collect()
    }

    fn run(limit: &str, cand: &[ProbeSample], base: &[ProbeSample]) -> Evaluation {
        let c: Vec<&ProbeSample> = cand.iter().collect();
        let b: Vec<&ProbeSample> = base.iter().collect();
        judge(&parse_limit(limit).unwrap(), "s", &c, &Base::Samples(b))
    }

    #[test]
    fn a_clear_regression_fails_an_equal_pair_passes_a_small_change_never_fails() {
        let base = spread(0.3, 40);
        let slow = run("ttft_p95=15%", &spread(0.36, 40), &base);
        assert_eq!(slow.verdict, Verdict::Fail, "{slow:?}");
        assert!((slow.change.unwrap() - 0.2).abs() < 0.02, "{slow:?}");
        assert!(slow.ci_low.unwrap() > 0.15);
        let same = run("ttft_p95=15%", &spread(0.3, 40), &base);
        assert_eq!(same.verdict, Verdict::Pass, "{same:?}");
        let near = run("ttft_p95=15%", &spread(0.31, 30), &spread(0.3, 30));
        assert_ne!(near.verdict, Verdict::Fail, "{near:?}");
        // The output rate drops when TTFT grows: a -10% limit in the bad direction.
        let rate = run("output_rate=-10%", &spread(0.6, 40), &base);
        assert_eq!(rate.verdict, Verdict::Fail, "{rate:?}");
        assert!(rate.change.unwrap() < -0.1);
    }

    #[test]
    fn few_probes_are_inconclusive_with_the_size_needed() {
        let r = run("ttft_p99=15%", &spread(0.3, 40), &spread(0.3, 40));
        assert_eq!(r.verdict, Verdict::Inconclusive);
        assert_eq!(r.needed_probes, Some(100));
        assert!(r.note.unwrap().contains("at least 100"));
    }

    #[test]
    fn error_ratios_use_score_intervals_in_points() {
        let mut cand = spread(0.3, 80);
        cand[3].result = "http_5xx".into();
        let base = spread(0.3, 80);
        // 1/80 vs 0/80: cannot show it is within 0.5 points, nor beyond.
        let r = run("error_ratio=0.5%", &cand, &base);
        assert_eq!(r.verdict, Verdict::Inconclusive, "{r:?}");
        assert!(r.needed_probes.unwrap() > 80);
        assert!((r.change.unwrap() - 0.0125).abs() < 1e-12);
        // Within 10 points it is.
        assert_eq!(run("error_ratio=10%", &cand, &base).verdict, Verdict::Pass);
        // Half the probes failing is beyond 10 points whatever the noise.
        for p in cand.iter_mut().step_by(2) {
            p.result = "http_5xx".into();
        }
        assert_eq!(run("error_ratio=10%", &cand, &base).verdict, Verdict::Fail);
        assert_eq!(
            overall(&[
                run("error_ratio=10%", &cand, &base),
                run("ttft_p99=1%", &cand, &base)
            ]),
            Overall::Fail
        );
    }

    #[test]
    fn costs_per_request_and_per_thousand_successes() {
        let mut v = spread(0.3, 4);
        v[0].result = "http_5xx".into();
        v[0].cost_usd = Some(0.0);
        let refs: Vec<&ProbeSample> = v.iter().collect();
        let refs2: Vec<&&ProbeSample> = refs.iter().collect();
        // 0 + 3 × 0.001 over 4 probes; over 3 successes, per 1000.
        let per = estimate(Metric::CostPerRequest, &refs2).unwrap();
        assert!((per - 0.00075).abs() < 1e-12);
        let per_k = estimate(Metric::CostPer1kSuccess, &refs2).unwrap();
        assert!((per_k - 1.0).abs() < 1e-12);
        // Dearer candidate: +50% per request is beyond a 10% limit.
        let base = spread(0.3, 40);
        let mut cand = spread(0.3, 40);
        for p in &mut cand {
            p.cost_usd = Some(0.0015);
        }
        let r = run("cost_per_request=10%", &cand, &base);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!((r.change.unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(
            run("cost_per_1k_success=10%", &base, &base).verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn point_baselines_and_missing_values() {
        let cand = spread(0.36, 40);
        let c: Vec<&ProbeSample> = cand.iter().collect();
        let l = parse_limit("ttft_p95=15%").unwrap();
        let r = judge(&l, "s", &c, &Base::Point(0.3));
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(r.method.contains("against the baseline value"));
        let r = judge(&l, "s", &c, &Base::Missing("no baseline value".into()));
        assert_eq!(r.verdict, Verdict::Skipped);
        assert_eq!(overall(std::slice::from_ref(&r)), Overall::Inconclusive);
        let pass = judge(&l, "s", &c, &Base::Point(0.4));
        assert_eq!(overall(&[r, pass]), Overall::Pass);
    }
}
