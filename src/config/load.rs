//! Reading and parsing a config file.
//!
//! The YAML is parsed once into a [`Node`] tree that remembers the line of every key and value.
//! Each section (every target, every scenario, every price, ...) is then decoded on its own with
//! `serde_path_to_error`, so one bad target does not hide the mistakes in another, and every
//! error gets the YAML path of the offending field and its line. Semantic checks and resolution
//! follow in [`super::resolve`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::{MessageFormatter, Spanned};

use super::gpus::GpusConfig;
use super::otlp::OtlpConfig;
use super::servers::ServerConfig;
use super::simulator::SimulatorConfig;
use super::types::{GlobalConfig, JourneyConfig, PriceConfig, ScenarioConfig, TargetConfig};
use super::{ConfigError, ConfigErrors, ConfigWarning, Loaded};

/// Where relative paths and `{env: NAME}` references are resolved.
pub struct Environment<'a> {
    /// Directory against which relative `prompt_file` and `{file: PATH}` paths are resolved:
    /// the config file's own directory.
    pub base_dir: &'a Path,
    /// Looks up an environment variable for `{env: NAME}`.
    pub var: &'a dyn Fn(&str) -> Option<String>,
    /// When false, an API key whose variable is unset or whose file is unreadable is a warning,
    /// not an error: `check-config` runs where the secrets are not (a config repository's CI).
    pub secrets_required: bool,
}

impl fmt::Debug for Environment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("base_dir", &self.base_dir)
            .finish_non_exhaustive()
    }
}

fn process_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads, validates and resolves a config file. Relative paths inside it are taken from the
/// file's directory.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    load_file(path, true)
}

/// Like [`load`], but API keys that cannot be read (unset variable, missing file) are warnings:
/// for `check-config`, which validates a config where its secrets are not available.
pub fn load_for_check(path: &Path) -> Result<Loaded, ConfigErrors> {
    load_file(path, false)
}

fn load_file(path: &Path, secrets_required: bool) -> Result<Loaded, ConfigErrors> {
    let source_name = path.display().to_string();
    let text =
        crate::fsutil::read_to_string(path, crate::fsutil::CONFIG_FILE_LIMIT).map_err(|e| {
            ConfigErrors {
                source_name: source_name.clone(),
                errors: vec![ConfigError {
                    path: String::new(),
                    line: None,
                    message: format!("cannot read config file: {}", io_reason(&e)),
                }],
            }
        })?;
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    load_str_with(
        &text,
        &source_name,
        &Environment {
            base_dir,
            var: &process_var,
            secrets_required,
        },
    )
}

/// Loads, validates and resolves config text; `source_name` names it in errors. Relative paths
/// are taken from the current directory and `{env: NAME}` from the process environment.
pub fn load_str(text: &str, source_name: &str) -> Result<Loaded, ConfigErrors> {
    load_str_with(
        text,
        source_name,
        &Environment {
            base_dir: Path::new("."),
            var: &process_var,
            secrets_required: true,
        },
    )
}

/// Like [`load_str`], with an explicit directory for relative paths and an explicit
/// environment-variable lookup (tests use it to stay independent of the process environment).
pub fn load_str_with(
    text: &str,
    source_name: &str,
    env: &Environment<'_>,
) -> Result<Loaded, ConfigErrors> {
    let fail = |errors: Vec<ConfigError>| ConfigErrors {
        source_name: source_name.to_string(),
        errors,
    };
    let root = parse_tree(text).map_err(|e| fail(vec![e]))?;
    let mut diag = Diag::new(&root);
    let decoded = decode_sections(&root, &mut diag);
    let loaded = super::resolve::resolve(decoded, source_name, env, &mut diag);
    let (mut errors, warnings) = diag.finish();
    match loaded {
        Some(mut loaded) if errors.is_empty() => {
            loaded.warnings = warnings;
            Ok(loaded)
        }
        _ => {
            if errors.is_empty() {
                // Resolution only gives up after reporting why; this keeps the contract
                // ("never empty") even if a future check forgets to.
                errors.push(ConfigError {
                    path: String::new(),
                    line: None,
                    message: "invalid configuration".to_string(),
                });
            }
            Err(fail(errors))
        }
    }
}

/// Whether config text says, in so many words, that it has no targets: a top-level
/// `targets: []`. A reload refuses to stop every running target on anything less (an empty or
/// truncated file, a `targets:` whose entries were commented out).
pub fn declares_no_targets(text: &str) -> bool {
    let Ok(root) = parse_tree(text) else {
        return false;
    };
    matches!(
        root.get(&YamlPath::root().key("targets")),
        Some(Node { kind: Kind::Seq(items), .. }) if items.is_empty()
    )
}

/// A short, platform-independent reason for an I/O failure (no OS error codes, so error
/// fixtures stay stable).
pub(crate) fn io_reason(e: &std::io::Error) -> Cow<'static, str> {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "no such file".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::InvalidData => "not valid UTF-8".into(),
        ErrorKind::IsADirectory => "is a directory".into(),
        _ => e.to_string().into(),
    }
}

// ---------------------------------------------------------------------------------------------
// YAML paths

/// One step of a YAML path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A path into the document, displayed as `targets[2].schedule.every`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct YamlPath(Vec<Seg>);

impl YamlPath {
    /// The document root.
    pub(crate) fn root() -> YamlPath {
        YamlPath(Vec::new())
    }
    /// This path extended by a mapping key.
    pub(crate) fn key(&self, key: &str) -> YamlPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_string()));
        p
    }
    /// This path extended by a sequence index.
    pub(crate) fn index(&self, index: usize) -> YamlPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(index));
        p
    }
    /// This path extended by a path that `serde_path_to_error` reports relative to it.
    fn join_serde(&self, inner: &serde_path_to_error::Path) -> YamlPath {
        use serde_path_to_error::Segment;
        let mut p = self.clone();
        for seg in inner.iter() {
            match seg {
                Segment::Seq { index } => p.0.push(Seg::Index(*index)),
                Segment::Map { key } | Segment::Enum { variant: key } => {
                    p.0.push(Seg::Key(key.clone()))
                }
                Segment::Unknown => break,
            }
        }
        p
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The document tree

/// A YAML node with the line it starts on.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// 1-based line, where the parser knows it.
    pub(crate) line: Option<u64>,
    /// The value.
    pub(crate) kind: Kind,
}

/// A YAML value.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One key of a mapping, in document order.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) key_line: Option<u64>,
    pub(crate) value: Node,
}

fn known_line(loc: serde_saphyr::Location) -> Option<u64> {
    Some(loc.line()).filter(|l| *l > 0)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        let spanned = Spanned::<Kind>::deserialize(d)?;
        Ok(Node {
            line: known_line(spanned.referenced),
            kind: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
        Ok(Kind::UInt(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Kind, E> {
        i64::try_from(v)
            .map(Kind::Int)
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Kind, E> {
        u64::try_from(v)
            .map(Kind::UInt)
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Kind, E> {
        Ok(Kind::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Kind, E> {
        Ok(Kind::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        Kind::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Kind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Node>()?;
            entries.push(Entry {
                key: key.value,
                key_line: known_line(key.referenced),
                value,
            });
        }
        Ok(Kind::Map(entries))
    }
}

impl Node {
    /// The node as JSON, for typed decoding. Non-finite floats become strings so that the typed
    /// decoder reports them as a wrong type instead of silently reading `null`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::UInt(u) => Value::from(*u),
            Kind::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => Value::Number(n),
                None => Value::String(f.to_string()),
            },
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// The line of the deepest node along `path`: the key's line for mapping entries.
    pub(crate) fn line_at(&self, path: &YamlPath) -> Option<u64> {
        let mut node = self;
        let mut line = self.line;
        for seg in &path.0 {
            match (seg, &node.kind) {
                (Seg::Key(k), Kind::Map(entries)) => match entries.iter().find(|e| &e.key == k) {
                    Some(e) => {
                        line = e.key_line.or(e.value.line).or(line);
                        node = &e.value;
                    }
                    None => break,
                },
                (Seg::Index(i), Kind::Seq(items)) => match items.get(*i) {
                    Some(n) => {
                        line = n.line.or(line);
                        node = n;
                    }
                    None => break,
                },
                _ => break,
            }
        }
        line
    }

    /// The value at `path`, if present.
    pub(crate) fn get(&self, path: &YamlPath) -> Option<&Node> {
        let mut node = self;
        for seg in &path.0 {
            node = match (seg, &node.kind) {
                (Seg::Key(k), Kind::Map(entries)) => &entries.iter().find(|e| &e.key == k)?.value,
                (Seg::Index(i), Kind::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// How serde would name this value's type in an "invalid type" message.
    fn describe(&self) -> String {
        match &self.kind {
            Kind::Null => "null".to_string(),
            Kind::Bool(b) => format!("boolean `{b}`"),
            Kind::Int(i) => format!("integer `{i}`"),
            Kind::UInt(u) => format!("integer `{u}`"),
            Kind::Float(f) => format!("floating point `{f}`"),
            Kind::Str(s) => format!("string {s:?}"),
            Kind::Seq(_) => "sequence".to_string(),
            Kind::Map(_) => "map".to_string(),
        }
    }
}

/// Parses the document into a [`Node`] tree. An empty document is an empty mapping.
fn parse_tree(text: &str) -> Result<Node, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Node {
            line: None,
            kind: Kind::Map(Vec::new()),
        });
    }
    match serde_saphyr::from_str::<Node>(text) {
        Ok(node) => Ok(node),
        Err(e) => {
            let message = serde_saphyr::DefaultMessageFormatter
                .format_message(e.without_snippet())
                .into_owned();
            Err(ConfigError {
                path: String::new(),
                line: e.location().and_then(known_line),
                message: format!("invalid YAML: {message}"),
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Diagnostics

/// Collects errors and warnings, attaching lines from the document tree.
pub(crate) struct Diag<'a> {
    root: &'a Node,
    errors: Vec<ConfigError>,
    warnings: Vec<(Option<u64>, ConfigWarning)>,
}

impl<'a> Diag<'a> {
    pub(crate) fn new(root: &'a Node) -> Diag<'a> {
        Diag {
            root,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Records an error at `path`.
    pub(crate) fn error(&mut self, path: &YamlPath, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.to_string(),
            line: self.root.line_at(path),
            message: message.into(),
        });
    }

    /// Records a warning at `path`.
    pub(crate) fn warn(&mut self, path: &YamlPath, message: impl Into<String>) {
        let line = self.root.line_at(path);
        self.warnings.push((
            line,
            ConfigWarning {
                path: path.to_string(),
                message: message.into(),
            },
        ));
    }

    /// Whether the node at `path` is present in the document (used to tell "set" from
    /// "defaulted").
    pub(crate) fn is_set(&self, path: &YamlPath) -> bool {
        self.root
            .get(path)
            .is_some_and(|n| !matches!(n.kind, Kind::Null))
    }

    /// Number of errors so far.
    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// Errors and warnings in document order (by line; file-level problems first).
    pub(crate) fn finish(self) -> (Vec<ConfigError>, Vec<ConfigWarning>) {
        let mut errors = self.errors;
        errors.sort_by_key(|e| e.line);
        let mut warnings = self.warnings;
        warnings.sort_by_key(|(line, _)| *line);
        (errors, warnings.into_iter().map(|(_, w)| w).collect())
    }
}

/// Most errors reported inside one section (a target, a scenario, ...).
const MAX_ERRORS_PER_SECTION: usize = 20;

/// Decodes `node` as a `T`, reporting every failure at `path` plus the path inside the node.
///
/// serde stops at the first error, so after each one the offending value is removed and the
/// section decoded again, until it decodes or nothing more can be removed. A removed field that
/// is required comes back as "missing field": that is a consequence, not a mistake of the file,
/// so it is not reported; the map holding it is removed instead and decoding goes on. A bad
/// item of a sequence removes the whole sequence, so later items keep their indices.
fn decode<T: DeserializeOwned>(node: &Node, path: &YamlPath, diag: &mut Diag<'_>) -> Option<T> {
    let mut json = match node.kind {
        // An empty section (`gpus:`) means "all defaults".
        Kind::Null => serde_json::Value::Object(serde_json::Map::new()),
        _ => node.to_json(),
    };
    let mut removed: Vec<Vec<Seg>> = Vec::new();
    let mut reported = 0;
    loop {
        let e = match serde_path_to_error::deserialize::<_, T>(json.clone()) {
            Ok(v) => return (reported == 0).then_some(v),
            Err(e) => e,
        };
        let inner = YamlPath::root().join_serde(e.path()).0;
        let message = e.into_inner().to_string();
        let missing = missing_field(&message);
        let consequence = missing.is_some_and(|f| {
            let mut p = inner.clone();
            p.push(Seg::Key(f.to_string()));
            removed.contains(&p)
        });
        if !consequence {
            let mut full = path.clone();
            full.0.extend(inner.iter().cloned());
            diag.error(&full, plain_expectation(&message));
            reported += 1;
        }
        // What to remove to get past this error: the value itself, or for a missing field the
        // map that misses it; a sequence item takes its whole sequence along.
        let mut cut = inner;
        while matches!(cut.last(), Some(Seg::Index(_))) {
            cut.pop();
        }
        if cut.is_empty() || reported >= MAX_ERRORS_PER_SECTION || !remove_at(&mut json, &cut) {
            return None;
        }
        removed.push(cut);
    }
}

/// The field named by serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// Removes the value at `path` (a mapping entry); false when there is none.
fn remove_at(json: &mut serde_json::Value, path: &[Seg]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut v = json;
    for seg in parents {
        v = match (seg, v) {
            (Seg::Key(k), serde_json::Value::Object(m)) => match m.get_mut(k) {
                Some(x) => x,
                None => return false,
            },
            (Seg::Index(i), serde_json::Value::Array(a)) => match a.get_mut(*i) {
                Some(x) => x,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, v) {
        (Seg::Key(k), serde_json::Value::Object(m)) => m.remove(k).is_some(),
        _ => false,
    }
}

/// Serde names Rust types in "expected ..." (`struct TargetConfig`, `u32`); this says what to
/// write in YAML terms instead.
fn plain_expectation(message: &str) -> String {
    let Some(at) = message.rfind(", expected ") else {
        return message.to_string();
    };
    let (head, expected) = message.split_at(at + ", expected ".len());
    let plain = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        e if e.starts_with("struct ") || e.starts_with("a map") => "a map",
        _ => return message.to_string(),
    };
    format!("{head}{plain}")
}

/// The entries of a mapping section; `null` is an empty mapping.
fn map_entries<'n>(node: &'n Node, path: &YamlPath, diag: &mut Diag<'_>) -> &'n [Entry] {
    match &node.kind {
        Kind::Map(entries) => entries,
        Kind::Null => &[],
        _ => {
            diag.error(
                path,
                format!("invalid type: {}, expected a map", node.describe()),
            );
            &[]
        }
    }
}

/// The items of a sequence section; `null` is an empty sequence.
fn seq_items<'n>(node: &'n Node, path: &YamlPath, diag: &mut Diag<'_>) -> &'n [Node] {
    match &node.kind {
        Kind::Seq(items) => items,
        Kind::Null => &[],
        _ => {
            diag.error(
                path,
                format!("invalid type: {}, expected a sequence", node.describe()),
            );
            &[]
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sections

/// The sections of the file, each decoded on its own. `None` marks a part that failed to decode
/// (its error is already recorded); it is kept so that later checks neither miss nor
/// misreport it (e.g. a scenario that failed to decode still exists for references to it).
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub(crate) global: Option<GlobalConfig>,
    pub(crate) scenarios: BTreeMap<String, Option<ScenarioConfig>>,
    pub(crate) journeys: BTreeMap<String, Option<JourneyConfig>>,
    pub(crate) targets: Vec<Option<TargetConfig>>,
    pub(crate) prices: BTreeMap<String, Option<PriceConfig>>,
    pub(crate) buckets: BTreeMap<String, Option<Vec<f64>>>,
    pub(crate) simulator: Option<Option<SimulatorConfig>>,
    pub(crate) gpus: Option<GpusConfig>,
    pub(crate) servers: Vec<Option<ServerConfig>>,
    pub(crate) otlp: Option<Option<OtlpConfig>>,
}

/// The top-level keys, in the order the example file uses them.
const TOP_LEVEL_KEYS: &[&str] = &[
    "global",
    "scenarios",
    "journeys",
    "targets",
    "prices",
    "buckets",
    "simulator",
    "gpus",
    "servers",
    "otlp",
];

fn decode_sections(root: &Node, diag: &mut Diag<'_>) -> Decoded {
    let mut out = Decoded {
        global: Some(GlobalConfig::default()),
        gpus: Some(GpusConfig::default()),
        ..Decoded::default()
    };
    let top = YamlPath::root();
    let entries = match &root.kind {
        Kind::Map(entries) => entries.as_slice(),
        Kind::Null => &[],
        _ => {
            diag.error(
                &top,
                format!(
                    "invalid type: {}, expected a map with keys {}",
                    root.describe(),
                    one_of(TOP_LEVEL_KEYS)
                ),
            );
            &[]
        }
    };
    for entry in entries {
        let path = top.key(&entry.key);
        let node = &entry.value;
        match entry.key.as_str() {
            "global" => out.global = decode(node, &path, diag),
            "scenarios" => {
                for e in map_entries(node, &path, diag) {
                    let p = path.key(&e.key);
                    let v = decode(&e.value, &p, diag);
                    out.scenarios.insert(e.key.clone(), v);
                }
            }
            "journeys" => {
                for e in map_entries(node, &path, diag) {
                    let p = path.key(&e.key);
                    let v = decode(&e.value, &p, diag);
                    out.journeys.insert(e.key.clone(), v);
                }
            }
            "targets" => {
                for (i, n) in seq_items(node, &path, diag).iter().enumerate() {
                    out.targets.push(decode(n, &path.index(i), diag));
                }
            }
            "prices" => {
                for e in map_entries(node, &path, diag) {
                    let v = decode(&e.value, &path.key(&e.key), diag);
                    out.prices.insert(e.key.clone(), v);
                }
            }
            "buckets" => {
                for e in map_entries(node, &path, diag) {
                    let v = decode(&e.value, &path.key(&e.key), diag);
                    out.buckets.insert(e.key.clone(), v);
                }
            }
            "simulator" => out.simulator = Some(decode(node, &path, diag)),
            "gpus" => out.gpus = decode(node, &path, diag),
            "otlp" => out.otlp = Some(decode(node, &path, diag)),
            "servers" => {
                for (i, n) in seq_items(node, &path, diag).iter().enumerate() {
                    out.servers.push(decode(n, &path.index(i), diag));
                }
            }
            // Extension keys hold YAML anchors for reuse (`x-defaults: &defaults`), as in
            // Compose files.
            other if other.starts_with("x-") => {}
            other => diag.error(
                &path,
                format!(
                    "unknown field `{other}`, expected one of {} (or an `x-` key for anchors)",
                    one_of(TOP_LEVEL_KEYS)
                ),
            ),
        }
    }
    out
}

/// `` `a`, `b`, `c` `` like serde's own "expected one of" lists.
pub(crate) fn one_of(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Node {
        parse_tree(text).unwrap()
    }

    #[test]
    fn lines_of_keys_and_items() {
        let root = tree("global:\n  schedule:\n    every: 5s\ntargets:\n  - name: a\n  - name: b\n    model: m\n");
        let p = YamlPath::root().key("global").key("schedule").key("every");
        assert_eq!(p.to_string(), "global.schedule.every");
        assert_eq!(root.line_at(&p), Some(3));
        assert_eq!(
            root.line_at(&YamlPath::root().key("global").key("schedule")),
            Some(2)
        );
        let t1 = YamlPath::root().key("targets").index(1);
        assert_eq!(t1.key("model").to_string(), "targets[1].model");
        assert_eq!(root.line_at(&t1), Some(6));
        assert_eq!(root.line_at(&t1.key("model")), Some(7));
        // A missing key falls back to the deepest existing node.
        assert_eq!(root.line_at(&t1.key("nope").key("deeper")), Some(6));
    }

    #[test]
    fn scalars_become_json() {
        let root = tree("a: 1\nb: -2\nc: 1.5\nd: true\ne: ~\nf: text\ng: [1, x]\n");
        assert_eq!(
            root.to_json(),
            serde_json::json!({
                "a": 1, "b": -2, "c": 1.5, "d": true, "e": null, "f": "text", "g": [1, "x"]
            })
        );
    }

    #[test]
    fn syntax_error_has_a_line() {
        let err = parse_tree("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert_eq!(err.path, "");
        assert!(err.line.is_some());
        assert!(err.message.starts_with("invalid YAML: "), "{}", err.message);
    }

    #[test]
    fn expectations_in_yaml_terms() {
        assert_eq!(
            plain_expectation("invalid type: string \"x\", expected struct TargetConfig"),
            "invalid type: string \"x\", expected a map"
        );
        assert_eq!(
            plain_expectation("invalid value: integer `-5`, expected u32"),
            "invalid value: integer `-5`, expected a non-negative integer"
        );
        assert_eq!(
            plain_expectation("invalid type: string \"x\", expected f64"),
            "invalid type: string \"x\", expected a number"
        );
        assert_eq!(
            plain_expectation("missing field `model`"),
            "missing field `model`"
        );
    }

    #[test]
    fn only_an_empty_sequence_declares_no_targets() {
        assert!(declares_no_targets("targets: []\n"));
        assert!(declares_no_targets(
            "global: {}\ntargets: []  # moved away\n"
        ));
        for text in [
            "",
            "# nothing\n",
            "targets:\n",
            "targets: ~\n",
            "x: [\n",
            "targets: [{name: a}]\n",
        ] {
            assert!(!declares_no_targets(text), "{text:?}");
        }
    }

    #[test]
    fn several_mistakes_in_one_section_are_all_reported() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Inner {
            n: u32,
            #[serde(default)]
            m: Option<u32>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Section {
            name: String,
            #[serde(default)]
            count: u32,
            inner: Inner,
            #[serde(default)]
            list: Vec<u32>,
        }
        let root = tree(
            "s:\n  name: 5\n  count: x\n  inner:\n    n: bad\n    m: z\n  list: [1, q, r]\n  extra: 1\n",
        );
        let mut diag = Diag::new(&root);
        let path = YamlPath::root().key("s");
        let node = root.get(&path).unwrap();
        assert!(decode::<Section>(node, &path, &mut diag).is_none());
        let (errors, _) = diag.finish();
        let got: Vec<String> = errors.iter().map(|e| e.path.clone()).collect();
        // Required fields that were removed (name, inner.n) do not come back as "missing".
        assert_eq!(
            got,
            [
                "s.name",
                "s.count",
                "s.inner.n",
                "s.inner.m",
                "s.list[1]",
                "s.extra"
            ],
            "{errors:?}"
        );
        // A field that is really missing is reported once.
        let root = tree("s: {count: 1}\n");
        let mut diag = Diag::new(&root);
        let node = root.get(&path).unwrap();
        assert!(decode::<Section>(node, &path, &mut diag).is_none());
        let (errors, _) = diag.finish();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].message, "missing field `name`");
    }

    #[test]
    fn duplicate_keys_are_a_syntax_error() {
        let err = parse_tree("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.line, Some(2));
    }
}
