//! A small block-style YAML writer for rule files: maps, sequences and scalars, with strings
//! left plain where YAML reads them back unchanged and double-quoted otherwise.
//!
//! Our own rather than a serializer so the output reads like hand-written Prometheus rules
//! (plain `expr:` lines, key order as built) without a new dependency feature.

use std::fmt::Write as _;

/// A YAML value.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// A string, quoted only when needed.
    Str(String),
    /// A number or other literal written as is (caller guarantees it is a valid scalar).
    Raw(String),
    /// A mapping in insertion order.
    Map(Vec<(String, Node)>),
    /// A sequence.
    Seq(Vec<Node>),
}

impl Node {
    /// A string node.
    pub fn str(s: impl Into<String>) -> Node {
        Node::Str(s.into())
    }
}

/// Renders `node` as a YAML document body (no `---`), ending with a newline.
pub fn render(node: &Node) -> String {
    let mut out = String::new();
    match node {
        Node::Map(m) if !m.is_empty() => write_map(m, 0, &mut out),
        Node::Seq(s) if !s.is_empty() => write_seq(s, 0, &mut out),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

fn pad(indent: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn is_block(node: &Node) -> bool {
    matches!(node, Node::Map(m) if !m.is_empty()) || matches!(node, Node::Seq(s) if !s.is_empty())
}

fn inline(node: &Node) -> String {
    match node {
        Node::Str(s) => scalar(s),
        Node::Raw(r) => r.clone(),
        Node::Map(_) => "{}".to_string(),
        Node::Seq(_) => "[]".to_string(),
    }
}

fn write_map(entries: &[(String, Node)], indent: usize, out: &mut String) {
    for (i, (k, v)) in entries.iter().enumerate() {
        // The first entry of a map inside a sequence item follows the `- ` on the same line.
        if i > 0 || !out.ends_with("- ") {
            pad(indent, out);
        }
        out.push_str(&scalar(k));
        out.push(':');
        write_value(v, indent, out);
    }
}

fn write_seq(items: &[Node], indent: usize, out: &mut String) {
    for item in items {
        pad(indent, out);
        out.push_str("- ");
        match item {
            Node::Map(m) if !m.is_empty() => write_map(m, indent + 2, out),
            Node::Seq(s) if !s.is_empty() => {
                out.push('\n');
                write_seq(s, indent + 2, out);
            }
            other => {
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

fn write_value(v: &Node, indent: usize, out: &mut String) {
    if is_block(v) {
        out.push('\n');
        match v {
            Node::Map(m) => write_map(m, indent + 2, out),
            Node::Seq(s) => write_seq(s, indent, out),
            _ => {}
        }
    } else {
        out.push(' ');
        out.push_str(&inline(v));
        out.push('\n');
    }
}

/// Words YAML 1.1 or 1.2 readers turn into booleans or null.
const RESERVED: [&str; 12] = [
    "true", "false", "yes", "no", "on", "off", "null", "~", "y", "n", "nan", "inf",
];

/// Whether `s` can be written as a plain scalar and read back as the same string.
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) || first.is_whitespace() {
        return false;
    }
    if s.ends_with(char::is_whitespace) || s.ends_with(':') {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.chars().any(|c| c.is_control()) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    let bare = lower.trim_start_matches(['+', '-', '.']);
    if RESERVED.contains(&lower.as_str()) || RESERVED.contains(&bare) {
        return false;
    }
    // Anything that might read as a number, date or time (1e3, 0x1f, 2024-01-01, 1:30) is
    // quoted; `5m` cannot and stays plain.
    if s.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == '+')
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || "._:+-xXoO".contains(c))
    {
        return false;
    }
    true
}

/// A scalar for `s`: plain when safe, double-quoted with escapes otherwise.
pub fn scalar(s: &str) -> String {
    if plain_ok(s) {
        return s.to_string();
    }
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_yaml_would_misread() {
        assert_eq!(scalar("InferprobeTTFT"), "InferprobeTTFT");
        assert_eq!(
            scalar(
                r#"histogram_quantile(0.95, sum by (target, le) (rate(x_bucket{target="a"}[10m]))) > 0.5"#
            ),
            r#"histogram_quantile(0.95, sum by (target, le) (rate(x_bucket{target="a"}[10m]))) > 0.5"#
        );
        assert_eq!(scalar("10m"), "10m");
        assert_eq!(scalar("1e3"), "\"1e3\"");
        assert_eq!(scalar("2024-01-01"), "\"2024-01-01\"");
        assert_eq!(scalar("yes"), "\"yes\"");
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar("{{ $labels.target }}"), "\"{{ $labels.target }}\"");
        assert_eq!(scalar("x #y"), "\"x #y\"");
        assert_eq!(scalar("say \"hi\"\\\n"), r#""say \"hi\"\\\n""#);
    }

    #[test]
    fn renders_nested_block_structure() {
        let doc = Node::Map(vec![
            (
                "groups".into(),
                Node::Seq(vec![Node::Map(vec![
                    ("name".into(), Node::str("g")),
                    (
                        "rules".into(),
                        Node::Seq(vec![Node::Map(vec![
                            ("alert".into(), Node::str("A")),
                            ("for".into(), Node::str("5m")),
                            (
                                "labels".into(),
                                Node::Map(vec![("severity".into(), Node::str("warning"))]),
                            ),
                            ("empty".into(), Node::Map(vec![])),
                        ])]),
                    ),
                ])]),
            ),
            ("num".into(), Node::Raw("0.5".into())),
        ]);
        assert_eq!(
            render(&doc),
            "groups:\n- name: g\n  rules:\n  - alert: A\n    for: 5m\n    labels:\n      severity: warning\n    empty: {}\nnum: 0.5\n"
        );
    }
}
