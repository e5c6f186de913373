//! OTLP export: the measurements `/metrics` shows, pushed to an OpenTelemetry receiver.
//!
//! One source for both exporters: the probe and journey outcomes are recorded into the
//! Prometheus families and into the OpenTelemetry instruments here by the same call
//! ([`crate::runtime`]'s `record`), and the GPU and inference-server families are read at each
//! export from the collectors' snapshots, which `/metrics` renders from too. Nothing here reads
//! a value back out of the Prometheus registry.
//!
//! The OpenTelemetry SDK aggregates (cumulative temporality; base-2 exponential histograms for
//! the latency families unless `otlp.histograms: explicit`), and its periodic reader exports on
//! a thread of its own through the OTLP/HTTP exporter, which retries 429/502/503/504 and lost
//! connections with exponential backoff within `otlp.timeout`. A receiver that is down or slow
//! therefore never delays a probe or a scrape: recording is an in-memory update, and the data of
//! a failed export goes out with the next one (cumulative).
//!
//! Probe measurements that have a GenAI semantic convention go out under its names
//! ([`semconv`]); inferprobe's other families go out under their own names, chosen so that
//! Prometheus' OTLP translation (unit suffixes, `_total`) gives back the `/metrics` names
//! ([`otel_name`]).

mod client;
mod families;
pub mod semconv;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, InstrumentKind, PeriodicReader, SdkMeterProvider, Stream, Temporality,
};
use opentelemetry_sdk::Resource;
use tracing::{info, warn};

use crate::config::otlp::{HistogramMode, OtlpSettings};
use crate::journey::JourneyOutcome;
use crate::metrics::gpu::GpuMetrics;
use crate::metrics::otlp::OtlpMetrics;
use crate::metrics::server::ServerMetrics;
use crate::metrics::SkipReason;
use crate::probe::Outcome;

pub use client::ExportStatus;
pub use families::otel_name;
pub use semconv::TargetAttrs;

/// Most buckets of one exponential histogram (the OpenTelemetry SDKs' default).
const EXPONENTIAL_MAX_SIZE: u32 = 160;
/// Finest scale of an exponential histogram; the SDK lowers it as the range grows.
const EXPONENTIAL_MAX_SCALE: i8 = 20;

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The HTTP client (TLS settings) could not be built.
    #[error("otlp: cannot build the HTTP client: {0}")]
    Client(String),
    /// The OTLP exporter refused its settings.
    #[error("otlp: cannot build the exporter: {0}")]
    Exporter(String),
}

/// What the observable families read at each export.
#[derive(Clone, Debug)]
pub struct Sources {
    /// The exporter's own health families (`/metrics` only).
    pub health: OtlpMetrics,
    /// The GPU collector's snapshot.
    pub gpu: GpuMetrics,
    /// The inference-server collector's snapshots.
    pub servers: ServerMetrics,
}

/// A running OTLP exporter.
pub struct OtlpExporter {
    provider: SdkMeterProvider,
    accounting: std::sync::Arc<client::Accounting>,
    instruments: families::Instruments,
    settings: OtlpSettings,
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OtlpExporter {
    /// Starts exporting every `settings.interval`. Called outside a Tokio runtime it fails (the
    /// export requests run on the runtime it is called in). `buckets` are the configured bucket overrides of
    /// inferprobe's histograms, used for their explicit buckets.
    pub fn start(
        settings: &OtlpSettings,
        sources: Sources,
        buckets: &BTreeMap<String, Vec<f64>>,
    ) -> Result<OtlpExporter, OtlpError> {
        let accounting = client::Accounting::new(sources.health.clone(), settings.endpoint.clone());
        let http = client::ReqwestOnRuntime {
            client: http_client(settings)?,
            runtime: tokio::runtime::Handle::try_current()
                .map_err(|_| OtlpError::Exporter("needs a running async runtime".into()))?,
            accounting: accounting.clone(),
        };
        let status = accounting.clone();
        let headers: HashMap<String, String> = settings
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.expose().to_string()))
            .collect();
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_http_client(http)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(settings.metrics_url.clone())
            .with_timeout(settings.timeout)
            .with_headers(headers)
            .with_temporality(Temporality::Cumulative)
            .build()
            .map_err(|e| OtlpError::Exporter(e.to_string()))?;
        let reader = PeriodicReader::builder(client::CountingExporter {
            inner: exporter,
            accounting,
        })
        .with_interval(settings.interval)
        .build();
        let mut builder = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource(settings));
        if settings.histograms == HistogramMode::Exponential {
            builder = builder.with_view(exponential_latency_view);
        }
        let provider = builder.build();
        let mut scope = InstrumentationScope::builder("inferprobe").with_version(crate::VERSION);
        if let Some(url) = settings.semconv.names().schema_url {
            scope = scope.with_schema_url(url);
        }
        let meter = provider.meter_with_scope(scope.build());
        let instruments = families::Instruments::new(&meter, settings.semconv, buckets);
        families::observe_collectors(&meter, &sources.gpu, &sources.servers);
        info!(
            endpoint = %settings.endpoint,
            interval = %humantime::format_duration(settings.interval),
            semconv = settings.semconv.as_str(),
            "OTLP export started."
        );
        Ok(OtlpExporter {
            provider,
            accounting: status,
            instruments,
            settings: settings.clone(),
        })
    }

    /// How the exports have gone so far.
    pub fn status(&self) -> ExportStatus {
        self.accounting.status()
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &OtlpSettings {
        &self.settings
    }

    /// Records one probe outcome of a target with these GenAI attributes.
    pub fn observe(&self, o: &Outcome, attrs: &TargetAttrs) {
        self.instruments.observe(o, attrs);
    }

    /// Records one journey outcome.
    pub fn observe_journey(&self, o: &JourneyOutcome) {
        self.instruments.observe_journey(o);
    }

    /// Counts a scheduled probe (or journey, `journey` true) that did not run.
    pub fn skipped(&self, target: &str, model: &str, name: &str, journey: bool, r: SkipReason) {
        self.instruments.skipped(target, model, name, journey, r);
    }

    /// Sets the hourly GPU cost of a self-hosted target.
    pub fn gpu_cost_rate(&self, target: &str, model: &str, usd_per_hour: f64) {
        self.instruments.gpu_cost_rate(target, model, usd_per_hour);
    }

    /// Exports what is pending now (blocks up to `otlp.timeout`; call off the async runtime).
    pub fn flush(&self) -> bool {
        self.provider.force_flush().is_ok()
    }

    /// Exports a last time and stops (blocks up to `otlp.timeout`; call off the async runtime).
    pub fn shutdown(&self) {
        if let Err(e) = self
            .provider
            .shutdown_with_timeout(self.settings.timeout + Duration::from_secs(1))
        {
            warn!(error = %e, "OTLP exporter did not shut down cleanly; the last export may be lost.");
        }
    }
}

/// Exponential aggregation for every histogram in seconds.
fn exponential_latency_view(i: &Instrument) -> Option<Stream> {
    if i.kind() != InstrumentKind::Histogram || i.unit() != "s" {
        return None;
    }
    Stream::builder()
        .with_aggregation(Aggregation::Base2ExponentialHistogram {
            max_size: EXPONENTIAL_MAX_SIZE,
            max_scale: EXPONENTIAL_MAX_SCALE,
            record_min_max: true,
        })
        .build()
        .ok()
}

/// The HTTP client of the exporter: no redirects (the headers carry credentials), the export
/// timeout per request, the configured TLS.
fn http_client(s: &OtlpSettings) -> Result<reqwest::Client, OtlpError> {
    crate::probe::engine::install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(s.timeout)
        .connect_timeout(s.timeout)
        .user_agent(concat!("inferprobe/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &s.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|_| OtlpError::Client("otlp.tls.ca_file: no usable certificate".into()))?;
        b = b.tls_certs_merge(certs);
    }
    if let Some(pem) = &s.identity_pem {
        let id = reqwest::Identity::from_pem(pem)
            .map_err(|_| OtlpError::Client("otlp.tls.cert_file: unusable identity".into()))?;
        b = b.identity(id);
    }
    if s.insecure_skip_verify {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    b.build()
        .map_err(|e| OtlpError::Client(e.without_url().to_string()))
}

/// Resource attributes: inferprobe's defaults, then `OTEL_RESOURCE_ATTRIBUTES` and
/// `OTEL_SERVICE_NAME`, then `otlp.resource` (each overriding the one before).
fn resource(s: &OtlpSettings) -> Resource {
    let mut defaults = vec![
        KeyValue::new("service.name", "inferprobe"),
        KeyValue::new("service.version", crate::VERSION),
    ];
    if let Some(host) = hostname() {
        defaults.push(KeyValue::new("service.instance.id", host));
    }
    let mut b = Resource::builder_empty()
        .with_attributes(defaults)
        .with_detector(Box::new(
            opentelemetry_sdk::resource::EnvResourceDetector::new(),
        ));
    if let Some(name) = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
    {
        b = b.with_service_name(name);
    }
    b.with_attributes(
        s.resource
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    )
    .build()
}

/// This machine's host name, the default `service.instance.id`.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success when
    // the name fits, and the length is bounded by the buffer either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}
