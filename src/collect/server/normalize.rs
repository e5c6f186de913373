//! From a parsed `/metrics` page to the one vocabulary of [`ServerSnapshot`]: kind detection
//! and the per-kind mapping.
//!
//! Mapping (first source present wins, per model):
//!
//! | quantity | vLLM | SGLang | TGI | llama.cpp | Triton |
//! |---|---|---|---|---|---|
//! | running | `num_requests_running` | `num_running_reqs` | `tgi_batch_current_size` | `requests_processing` | `nv_trt_llm_request_metrics{request_type="active"}` |
//! | waiting | `num_requests_waiting` | `num_queue_reqs` | `tgi_queue_size` | `requests_deferred` | `nv_trt_llm_request_metrics{request_type="waiting"}`, else `nv_inference_pending_request_count` |
//! | KV cache | `kv_cache_usage_perc`, else `gpu_cache_usage_perc` (both 0–1) | `token_usage` | – | `kv_cache_usage_ratio` | `nv_trt_llm_kv_cache_block_metrics` `fraction`, else `used`/`max` |
//! | prompt tokens | `prompt_tokens[_total]` | `prompt_tokens_total` | `tgi_request_input_length_sum` | `prompt_tokens_total` | `nv_llm_input_token_len_sum` |
//! | generated tokens | `generation_tokens[_total]` | `generation_tokens_total` | `tgi_request_generated_tokens_sum` | `tokens_predicted_total` | `nv_llm_output_token_len_sum` |
//! | preemptions | `num_preemptions[_total]` | `num_retracted_requests_total` | – | – | – |
//! | TTFT | `time_to_first_token_seconds` | `time_to_first_token_seconds` | – | – | `nv_inference_first_response_histogram_ms` (ms → s) |
//! | ITL | `inter_token_latency_seconds`, else `time_per_output_token_seconds` | `inter_token_latency_seconds`, else `time_per_output_token_seconds` | `tgi_request_mean_time_per_token_duration` | – | – |
//!
//! Notes on the choices:
//! - vLLM before v0.11 called its per-step inter-token histogram `time_per_output_token_seconds`
//!   (same meaning as the later `inter_token_latency_seconds`). SGLang's and TGI's fallbacks are
//!   per-request *means*, used only where the server has no per-gap histogram; their tails are
//!   narrower than true ITL.
//! - SGLang "retracts" a running request when the KV cache runs out, which is what vLLM calls a
//!   preemption.
//! - TGI's token counts are the sums of its per-request length histograms (input length at
//!   validation, generated tokens at completion); it reports no KV-cache usage and no TTFT.
//! - Triton's microsecond counters (`nv_inference_queue_duration_us`, ...) and execution
//!   counts have no counterpart here and are not mapped. A Triton server running the vLLM
//!   backend exposes `vllm:` metrics, and auto mode reads it as `vllm` since those carry the
//!   LLM quantities.
//! - Names are accepted with `_` in place of the `:` prefix separator (`vllm_`, `sglang_`,
//!   `llamacpp_`) and counters with or without `_total`.
//! - `model` is the `model_name` label (vLLM, SGLang) or `model` label (Triton, vLLM in Triton);
//!   servers without one (TGI, llama.cpp) produce one snapshot with no model.
//! - Label sets of one model (vLLM data-parallel `engine`, SGLang ranks, Triton `version`) are
//!   summed, except KV-cache usage, which takes the maximum: a ratio does not add up, and the
//!   fullest cache is the one that preempts. Histograms are summed when their bucket bounds
//!   match; a label set whose bounds differ from the first one is left out.
//! - A quantity the server does not report is left out (`None`), never reported as 0.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use crate::collect::server::parse::{Family, Sample};
use crate::config::servers::ServerKind;
use crate::metrics::server::{HistogramSnapshot, ModelSnapshot, ServerSnapshot};

/// The kind whose metric names appear on the page, if any. vLLM, SGLang, TGI and llama.cpp
/// are checked before Triton, whose generic `nv_inference_` metrics also sit beside a vLLM
/// backend's.
pub fn detect_kind(families: &[Family]) -> Option<ServerKind> {
    let has = |pred: &dyn Fn(&str) -> bool| {
        families
            .iter()
            .any(|f| pred(&f.name) || f.samples.iter().any(|s| pred(&s.name)))
    };
    ServerKind::CONCRETE.into_iter().find(|kind| match kind {
        ServerKind::Vllm => has(&|n| n.starts_with("vllm:") || n.starts_with("vllm_")),
        ServerKind::Sglang => has(&|n| n.starts_with("sglang:") || n.starts_with("sglang_")),
        ServerKind::Tgi => has(&|n| n.starts_with("tgi_")),
        ServerKind::Llamacpp => has(&|n| n.starts_with("llamacpp:") || n.starts_with("llamacpp_")),
        ServerKind::Triton => {
            has(&|n| n.starts_with("nv_inference_") || n.starts_with("nv_trt_llm_"))
        }
        ServerKind::Auto => false,
    })
}

/// Normalizes a parsed page of a server of `kind`. With [`ServerKind::Auto`] the kind is
/// detected first; a page of no known kind gives an empty snapshot.
pub fn normalize(kind: ServerKind, families: &[Family]) -> ServerSnapshot {
    let kind = match kind {
        ServerKind::Auto => match detect_kind(families) {
            Some(k) => k,
            None => return ServerSnapshot::default(),
        },
        k => k,
    };
    let idx = Index::new(families);
    let mut models: BTreeMap<Option<String>, ModelSnapshot> = BTreeMap::new();
    let mut put = |values: Per<f64>, set: fn(&mut ModelSnapshot, f64)| {
        for (model, v) in values {
            let entry = models
                .entry(model.clone())
                .or_insert_with(|| ModelSnapshot {
                    model,
                    ..ModelSnapshot::default()
                });
            set(entry, v);
        }
    };
    use Agg::{Max, Sum};
    match kind {
        ServerKind::Vllm => {
            put(
                idx.first(&[src("vllm:num_requests_running")], Sum),
                |m, v| m.requests_running = Some(v),
            );
            put(
                idx.first(&[src("vllm:num_requests_waiting")], Sum),
                |m, v| m.requests_waiting = Some(v),
            );
            put(
                idx.first(
                    &[
                        src("vllm:kv_cache_usage_perc"),
                        src("vllm:gpu_cache_usage_perc"),
                    ],
                    Max,
                ),
                |m, v| m.kv_cache_usage_ratio = Some(v),
            );
            put(idx.counter("vllm:prompt_tokens"), |m, v| {
                m.prompt_tokens_total = Some(v)
            });
            put(idx.counter("vllm:generation_tokens"), |m, v| {
                m.generation_tokens_total = Some(v)
            });
            put(idx.counter("vllm:num_preemptions"), |m, v| {
                m.preemptions_total = Some(v)
            });
        }
        ServerKind::Sglang => {
            put(idx.first(&[src("sglang:num_running_reqs")], Sum), |m, v| {
                m.requests_running = Some(v)
            });
            put(idx.first(&[src("sglang:num_queue_reqs")], Sum), |m, v| {
                m.requests_waiting = Some(v)
            });
            put(idx.first(&[src("sglang:token_usage")], Max), |m, v| {
                m.kv_cache_usage_ratio = Some(v)
            });
            put(idx.counter("sglang:prompt_tokens"), |m, v| {
                m.prompt_tokens_total = Some(v)
            });
            put(idx.counter("sglang:generation_tokens"), |m, v| {
                m.generation_tokens_total = Some(v)
            });
            put(idx.counter("sglang:num_retracted_requests"), |m, v| {
                m.preemptions_total = Some(v)
            });
        }
        ServerKind::Tgi => {
            put(idx.first(&[src("tgi_batch_current_size")], Sum), |m, v| {
                m.requests_running = Some(v)
            });
            put(idx.first(&[src("tgi_queue_size")], Sum), |m, v| {
                m.requests_waiting = Some(v)
            });
            put(
                idx.first(&[src("tgi_request_input_length_sum")], Sum),
                |m, v| m.prompt_tokens_total = Some(v),
            );
            put(
                idx.first(&[src("tgi_request_generated_tokens_sum")], Sum),
                |m, v| m.generation_tokens_total = Some(v),
            );
        }
        ServerKind::Llamacpp => {
            put(
                idx.first(&[src("llamacpp:requests_processing")], Sum),
                |m, v| m.requests_running = Some(v),
            );
            put(
                idx.first(&[src("llamacpp:requests_deferred")], Sum),
                |m, v| m.requests_waiting = Some(v),
            );
            put(
                idx.first(&[src("llamacpp:kv_cache_usage_ratio")], Max),
                |m, v| m.kv_cache_usage_ratio = Some(v),
            );
            put(idx.counter("llamacpp:prompt_tokens"), |m, v| {
                m.prompt_tokens_total = Some(v)
            });
            put(idx.counter("llamacpp:tokens_predicted"), |m, v| {
                m.generation_tokens_total = Some(v)
            });
        }
        ServerKind::Triton => {
            const REQ: &str = "nv_trt_llm_request_metrics";
            const KV: &str = "nv_trt_llm_kv_cache_block_metrics";
            put(
                idx.first(&[src_where(REQ, "request_type", "active")], Sum),
                |m, v| m.requests_running = Some(v),
            );
            put(
                idx.first(
                    &[
                        src_where(REQ, "request_type", "waiting"),
                        src("nv_inference_pending_request_count"),
                    ],
                    Sum,
                ),
                |m, v| m.requests_waiting = Some(v),
            );
            let mut kv = idx.first(&[src_where(KV, "kv_cache_block_type", "fraction")], Max);
            let used = idx.first(&[src_where(KV, "kv_cache_block_type", "used")], Sum);
            let max = idx.first(&[src_where(KV, "kv_cache_block_type", "max")], Sum);
            for (model, used) in used {
                if let Some(max) = max.get(&model).filter(|m| **m > 0.0) {
                    kv.entry(model).or_insert(used / max);
                }
            }
            put(kv, |m, v| m.kv_cache_usage_ratio = Some(v));
            put(
                idx.first(&[src("nv_llm_input_token_len_sum")], Sum),
                |m, v| m.prompt_tokens_total = Some(v),
            );
            put(
                idx.first(&[src("nv_llm_output_token_len_sum")], Sum),
                |m, v| m.generation_tokens_total = Some(v),
            );
        }
        ServerKind::Auto => {}
    }

    let (ttft, itl): (HistogramSources, HistogramSources) = match kind {
        ServerKind::Vllm => (
            &[("vllm:time_to_first_token_seconds", 1.0)],
            &[
                ("vllm:inter_token_latency_seconds", 1.0),
                ("vllm:time_per_output_token_seconds", 1.0),
            ],
        ),
        ServerKind::Sglang => (
            &[("sglang:time_to_first_token_seconds", 1.0)],
            &[
                ("sglang:inter_token_latency_seconds", 1.0),
                ("sglang:time_per_output_token_seconds", 1.0),
            ],
        ),
        ServerKind::Tgi => (&[], &[("tgi_request_mean_time_per_token_duration", 1.0)]),
        ServerKind::Triton => (&[("nv_inference_first_response_histogram_ms", 1e-3)], &[]),
        ServerKind::Llamacpp | ServerKind::Auto => (&[], &[]),
    };
    for (model, h) in idx.histogram(ttft) {
        let entry = models
            .entry(model.clone())
            .or_insert_with(|| ModelSnapshot {
                model,
                ..ModelSnapshot::default()
            });
        entry.time_to_first_token_seconds = Some(h);
    }
    for (model, h) in idx.histogram(itl) {
        let entry = models
            .entry(model.clone())
            .or_insert_with(|| ModelSnapshot {
                model,
                ..ModelSnapshot::default()
            });
        entry.inter_token_latency_seconds = Some(h);
    }
    ServerSnapshot {
        models: models.into_values().collect(),
    }
}

/// Histogram base names in order of preference, each with the factor that turns its unit
/// into seconds.
type HistogramSources = &'static [(&'static str, f64)];

/// Values keyed by model (`None` where the server has no model label).
type Per<T> = BTreeMap<Option<String>, T>;

#[derive(Clone, Copy)]
enum Agg {
    Sum,
    Max,
}

/// A sample name, optionally restricted to samples whose label equals a value.
struct Source<'a> {
    name: &'a str,
    filter: Option<(&'a str, &'a str)>,
}

fn src(name: &str) -> Source<'_> {
    Source { name, filter: None }
}

fn src_where<'a>(name: &'a str, label: &'a str, value: &'a str) -> Source<'a> {
    Source {
        name,
        filter: Some((label, value)),
    }
}

/// Samples by canonical name (`vllm_x` → `vllm:x`, ...).
struct Index<'a> {
    by_name: HashMap<Cow<'a, str>, Vec<&'a Sample>>,
}

fn canonical(name: &str) -> Cow<'_, str> {
    for prefix in ["vllm", "sglang", "llamacpp"] {
        if let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')) {
            return Cow::Owned(format!("{prefix}:{rest}"));
        }
    }
    Cow::Borrowed(name)
}

/// The model a sample is about: `model_name` (vLLM, SGLang) or `model` (Triton).
fn model_of(sample: &Sample) -> Option<String> {
    sample
        .label("model_name")
        .or_else(|| sample.label("model"))
        .map(str::to_string)
}

impl<'a> Index<'a> {
    fn new(families: &'a [Family]) -> Index<'a> {
        let mut by_name: HashMap<Cow<'a, str>, Vec<&'a Sample>> = HashMap::new();
        for s in families.iter().flat_map(|f| &f.samples) {
            by_name.entry(canonical(&s.name)).or_default().push(s);
        }
        Index { by_name }
    }

    fn samples(&self, name: &str) -> &[&'a Sample] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Per model, the aggregate of the first source that has samples for that model.
    fn first(&self, sources: &[Source<'_>], agg: Agg) -> Per<f64> {
        let mut out: Per<f64> = BTreeMap::new();
        for source in sources {
            let mut found: Per<f64> = BTreeMap::new();
            for s in self.samples(source.name) {
                if let Some((label, value)) = source.filter {
                    if s.label(label) != Some(value) {
                        continue;
                    }
                }
                // A NaN gauge (e.g. before the first engine step) says nothing.
                if s.value.is_nan() {
                    continue;
                }
                found
                    .entry(model_of(s))
                    .and_modify(|acc| {
                        *acc = match agg {
                            Agg::Sum => *acc + s.value,
                            Agg::Max => acc.max(s.value),
                        }
                    })
                    .or_insert(s.value);
            }
            for (model, v) in found {
                out.entry(model).or_insert(v);
            }
        }
        out
    }

    /// A counter, with or without the `_total` suffix.
    fn counter(&self, base: &str) -> Per<f64> {
        let total = format!("{base}_total");
        self.first(&[src(&total), src(base)], Agg::Sum)
    }

    /// Per model, the first histogram base present, scaled (`le` and sum) into seconds.
    fn histogram(&self, bases: &[(&str, f64)]) -> Per<HistogramSnapshot> {
        let mut out: Per<HistogramSnapshot> = BTreeMap::new();
        for (base, scale) in bases {
            for (model, h) in self.one_histogram(base, *scale) {
                out.entry(model).or_insert(h);
            }
        }
        out
    }

    fn one_histogram(&self, base: &str, scale: f64) -> Per<HistogramSnapshot> {
        // Group by every label but `le`, so each server-side series is rebuilt on its own.
        type Key = (Option<String>, Vec<(String, String)>);
        #[derive(Default)]
        struct Parts {
            buckets: Vec<(f64, f64)>,
            sum: Option<f64>,
            count: Option<f64>,
        }
        let key = |s: &Sample| -> Key {
            let mut rest: Vec<(String, String)> = s
                .labels
                .iter()
                .filter(|(k, _)| k != "le")
                .cloned()
                .collect();
            rest.sort();
            (model_of(s), rest)
        };
        let mut groups: BTreeMap<Key, Parts> = BTreeMap::new();
        for s in self.samples(&format!("{base}_bucket")) {
            let Some(le) = s.label("le").and_then(parse_le) else {
                continue;
            };
            groups
                .entry(key(s))
                .or_default()
                .buckets
                .push((le, s.value));
        }
        for s in self.samples(&format!("{base}_sum")) {
            groups.entry(key(s)).or_default().sum = Some(s.value);
        }
        for s in self.samples(&format!("{base}_count")) {
            groups.entry(key(s)).or_default().count = Some(s.value);
        }

        let mut out: Per<HistogramSnapshot> = BTreeMap::new();
        for ((model, _), parts) in groups {
            let Some(h) = build_histogram(parts.buckets, parts.sum, parts.count, scale) else {
                continue;
            };
            match out.get_mut(&model) {
                None => {
                    out.insert(model, h);
                }
                Some(acc) => {
                    let same_bounds = acc.buckets.len() == h.buckets.len()
                        && acc.buckets.iter().zip(&h.buckets).all(|(a, b)| a.0 == b.0);
                    if same_bounds {
                        for (a, b) in acc.buckets.iter_mut().zip(&h.buckets) {
                            a.1 = a.1.saturating_add(b.1);
                        }
                        acc.count = acc.count.saturating_add(h.count);
                        acc.sum += h.sum;
                    }
                }
            }
        }
        out
    }
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        _ => s.parse::<f64>().ok().filter(|v| !v.is_nan()),
    }
}

/// A count as the integer it stands for; `None` for negative, NaN or infinite values.
fn as_count(v: f64) -> Option<u64> {
    (v.is_finite() && v >= 0.0 && v <= u64::MAX as f64).then(|| v.round() as u64)
}

/// Builds one histogram from its parts: the `+Inf` bucket (or `_count`) is the count, finite
/// bounds are scaled. `None` when the parts do not make a histogram.
fn build_histogram(
    mut buckets: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
    scale: f64,
) -> Option<HistogramSnapshot> {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let inf = buckets
        .iter()
        .find(|(le, _)| le.is_infinite() && *le > 0.0)
        .map(|b| b.1);
    let count = as_count(count.or(inf)?)?;
    let sum = sum.filter(|s| !s.is_nan())?;
    let mut finite = Vec::with_capacity(buckets.len());
    for (le, c) in buckets.into_iter().filter(|(le, _)| le.is_finite()) {
        let le = le * scale;
        // A repeated bound is a malformed page; keep the first.
        if finite.last().is_some_and(|(prev, _)| *prev == le) {
            continue;
        }
        finite.push((le, as_count(c)?));
    }
    Some(HistogramSnapshot {
        buckets: finite,
        count,
        sum: sum * scale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::server::parse::parse;

    fn norm(kind: ServerKind, text: &str) -> ServerSnapshot {
        normalize(kind, &parse(text).expect("parses"))
    }

    #[test]
    fn underscore_prefix_and_counter_without_total() {
        let snap = norm(
            ServerKind::Auto,
            "vllm_num_requests_running 3\nvllm:num_preemptions 4\nvllm_prompt_tokens 7\n",
        );
        assert_eq!(
            snap.models,
            vec![ModelSnapshot {
                model: None,
                requests_running: Some(3.0),
                prompt_tokens_total: Some(7.0),
                preemptions_total: Some(4.0),
                ..ModelSnapshot::default()
            }]
        );
    }

    #[test]
    fn new_name_wins_per_model_and_old_fills_in() {
        let snap = norm(
            ServerKind::Vllm,
            "vllm:kv_cache_usage_perc{model_name=\"a\"} 0.5\n\
             vllm:gpu_cache_usage_perc{model_name=\"a\"} 0.9\n\
             vllm:gpu_cache_usage_perc{model_name=\"b\"} 0.25\n",
        );
        let kv: Vec<_> = snap
            .models
            .iter()
            .map(|m| (m.model.as_deref(), m.kv_cache_usage_ratio))
            .collect();
        assert_eq!(kv, vec![(Some("a"), Some(0.5)), (Some("b"), Some(0.25))]);
    }

    #[test]
    fn itl_prefers_the_per_gap_histogram() {
        let h = |name: &str, sum: f64| {
            format!(
                "{name}_bucket{{le=\"0.1\"}} 1\n{name}_bucket{{le=\"+Inf\"}} 2\n{name}_sum {sum}\n{name}_count 2\n"
            )
        };
        let itl = |text: &str, kind| {
            norm(kind, text).models[0]
                .inter_token_latency_seconds
                .clone()
        };
        let old = h("vllm:time_per_output_token_seconds", 0.5);
        let new = h("vllm:inter_token_latency_seconds", 0.25);
        assert_eq!(itl(&old, ServerKind::Vllm).map(|h| h.sum), Some(0.5));
        assert_eq!(
            itl(&(old + &new), ServerKind::Vllm).map(|h| h.sum),
            Some(0.25)
        );
        let tpot = h("sglang:time_per_output_token_seconds", 0.75);
        assert_eq!(itl(&tpot, ServerKind::Sglang).map(|h| h.sum), Some(0.75));
    }

    #[test]
    fn triton_kv_from_blocks_when_no_fraction() {
        let snap = norm(
            ServerKind::Auto,
            "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"used\",model=\"tensorrt_llm\",version=\"1\"} 1560\n\
             nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"max\",model=\"tensorrt_llm\",version=\"1\"} 6240\n",
        );
        assert_eq!(snap.models.len(), 1);
        assert_eq!(snap.models[0].kv_cache_usage_ratio, Some(0.25));
    }

    #[test]
    fn histograms_merge_matching_bounds_and_skip_others() {
        let text = "h_bucket{engine=\"0\",le=\"0.1\"} 1\nh_bucket{engine=\"0\",le=\"+Inf\"} 2\nh_sum{engine=\"0\"} 0.5\nh_count{engine=\"0\"} 2\n\
                    h_bucket{engine=\"1\",le=\"0.1\"} 3\nh_bucket{engine=\"1\",le=\"+Inf\"} 4\nh_sum{engine=\"1\"} 1.5\nh_count{engine=\"1\"} 4\n\
                    h_bucket{engine=\"2\",le=\"0.2\"} 3\nh_bucket{engine=\"2\",le=\"+Inf\"} 4\nh_sum{engine=\"2\"} 9\nh_count{engine=\"2\"} 4\n";
        let families = parse(text).expect("parses");
        let idx = Index::new(&families);
        let h = idx.histogram(&[("h", 1.0)]);
        assert_eq!(
            h.get(&None),
            Some(&HistogramSnapshot {
                buckets: vec![(0.1, 4)],
                count: 6,
                sum: 2.0
            })
        );
    }

    #[test]
    fn incomplete_histograms_are_left_out() {
        let families = parse("h_bucket{le=\"1\"} 1\nh_sum 3\n").expect("parses");
        assert!(Index::new(&families).histogram(&[("h", 1.0)]).is_empty());
        // No _count but a +Inf bucket: the bucket is the count.
        let families =
            parse("h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\n").expect("ok");
        let h = Index::new(&families).histogram(&[("h", 1.0)]);
        assert_eq!(h.get(&None).map(|h| h.count), Some(2));
    }

    #[test]
    fn unknown_page_gives_nothing() {
        assert_eq!(detect_kind(&parse("node_load1 0.5\n").expect("ok")), None);
        assert_eq!(
            norm(ServerKind::Auto, "node_load1 0.5\n"),
            ServerSnapshot::default()
        );
    }

    #[test]
    fn nan_gauges_are_skipped() {
        let snap = norm(
            ServerKind::Llamacpp,
            "llamacpp:kv_cache_usage_ratio NaN\nllamacpp:requests_processing 1\n",
        );
        assert_eq!(snap.models[0].kv_cache_usage_ratio, None);
        assert_eq!(snap.models[0].requests_running, Some(1.0));
    }
}
