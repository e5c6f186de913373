//! Percentiles and Markdown table output.

use std::time::{Duration, Instant};

/// `a − b` in signed nanoseconds.
pub fn signed_ns(a: Instant, b: Instant) -> i64 {
    if a >= b {
        ns(a - b)
    } else {
        -ns(b - a)
    }
}

/// A duration in nanoseconds, saturating.
pub fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Nearest-rank percentile of a sorted slice (`q` in 0..=1); 0 when empty.
pub fn pct<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// The median of unsorted values.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    pct(&v, 0.5)
}

/// Signed error samples (ns) summarized as the tables print them.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorSummary {
    /// Samples.
    pub n: usize,
    /// Signed median.
    pub p50: i64,
    /// Signed 99th percentile.
    pub p99: i64,
    /// 99th percentile of |error|.
    pub abs_p99: i64,
    /// Largest |error|.
    pub abs_max: i64,
}

impl ErrorSummary {
    /// Summarizes signed samples in nanoseconds.
    pub fn of(samples: &[i64]) -> ErrorSummary {
        let mut s = samples.to_vec();
        s.sort_unstable();
        let mut a: Vec<i64> = samples.iter().map(|x| x.saturating_abs()).collect();
        a.sort_unstable();
        ErrorSummary {
            n: s.len(),
            p50: pct(&s, 0.50),
            p99: pct(&s, 0.99),
            abs_p99: pct(&a, 0.99),
            abs_max: a.last().copied().unwrap_or(0),
        }
    }
}

/// Nanoseconds as microseconds with one decimal.
pub fn us(ns: i64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

/// A Markdown table, printed with padded columns so it also reads well in a terminal.
pub struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells print empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as Markdown text; the first column is left-aligned, the rest right-aligned.
    pub fn render(&self) -> String {
        let cols = self.head.len();
        let cell = |r: &Vec<String>, i: usize| r.get(i).cloned().unwrap_or_default();
        let mut width: Vec<usize> = self.head.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, w) in width.iter_mut().enumerate() {
                *w = (*w).max(cell(r, i).chars().count()).max(3);
            }
        }
        let line = |cells: Vec<String>| {
            let mut s = String::from("|");
            for (i, c) in cells.iter().enumerate() {
                let pad = width[i].saturating_sub(c.chars().count());
                if i == 0 {
                    s.push_str(&format!(" {c}{} |", " ".repeat(pad)));
                } else {
                    s.push_str(&format!(" {}{c} |", " ".repeat(pad)));
                }
            }
            s.push('\n');
            s
        };
        let mut out = line(self.head.clone());
        let mut sep = String::from("|");
        for (i, w) in width.iter().enumerate() {
            if i == 0 {
                sep.push_str(&format!(" {} |", "-".repeat(*w)));
            } else {
                sep.push_str(&format!(" {}: |", "-".repeat(w.saturating_sub(1))));
            }
        }
        out.push_str(&sep);
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line((0..cols).map(|i| cell(r, i)).collect()));
        }
        out
    }
}
