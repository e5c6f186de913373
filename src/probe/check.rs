//! Correctness checks on a completed response: a canary that only measures speed misses an
//! endpoint that answers fast and wrong.

use crate::config::{Checks, ExpectTool};
use crate::probe::clip;
use crate::probe::dialect::ToolCall;

/// What a check looks at.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    /// The answer text (reasoning excluded).
    pub text: &'a str,
    /// Output tokens (usage, else counted).
    pub output_tokens: u64,
    /// Model the server reported, if any.
    pub model: Option<&'a str>,
    /// Tool calls the model made.
    pub tool_calls: &'a [ToolCall],
}

/// Runs every check; returns the first failure as a short message that never echoes more than
/// a few dozen characters of the answer.
pub fn run(checks: &Checks, a: &Answer<'_>) -> Result<(), String> {
    if let Some(min) = checks.min_output_tokens {
        if a.output_tokens < min {
            return Err(format!(
                "output_tokens {} < min_output_tokens {min}",
                a.output_tokens
            ));
        }
    }
    if let Some(max) = checks.max_output_tokens {
        if a.output_tokens > max {
            return Err(format!(
                "output_tokens {} > max_output_tokens {max}",
                a.output_tokens
            ));
        }
    }
    for needle in &checks.must_contain {
        if !a.text.contains(needle.as_str()) {
            return Err(format!("answer does not contain {:?}", clip(needle, 40)));
        }
    }
    if let Some(re) = &checks.regex {
        if !re.is_match(a.text) {
            return Err(format!(
                "answer does not match regex {:?}",
                clip(re.as_str(), 40)
            ));
        }
    }
    if checks.valid_json {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(strip_fence(a.text)) {
            return Err(format!("answer is not valid JSON: {e}"));
        }
    }
    if let Some(want) = &checks.expect_model {
        match a.model {
            Some(got) if got == want => {}
            Some(got) => return Err(format!("response model {got:?} != expected {want:?}")),
            None => return Err(format!("response reported no model (expected {want:?})")),
        }
    }
    if let Some(want) = &checks.expect_tool {
        expect_tool(want, a.tool_calls)?;
    }
    Ok(())
}

/// The response called `want.name` with arguments that are a JSON object valid against the
/// tool's schema. Other calls beside it are allowed (parallel tool calls).
fn expect_tool(want: &ExpectTool, calls: &[ToolCall]) -> Result<(), String> {
    let Some(call) = calls.iter().find(|c| c.name == want.name) else {
        let names: Vec<String> = calls
            .iter()
            .map(|c| format!("{:?}", clip(&c.name, 40)))
            .collect();
        return Err(if names.is_empty() {
            format!("expected a call of tool {:?}, got no tool call", want.name)
        } else {
            format!(
                "expected a call of tool {:?}, got calls of {}",
                want.name,
                names.join(", ")
            )
        });
    };
    // An empty argument string is an empty object to every API that streams arguments.
    let text = if call.arguments.trim().is_empty() {
        "{}"
    } else {
        call.arguments.as_str()
    };
    let args: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("arguments of tool {:?} are not valid JSON: {e}", want.name))?;
    crate::journey::schema::validate(&want.schema, &args).map_err(|e| {
        format!(
            "arguments of tool {:?} do not match its schema: {e}",
            want.name
        )
    })
}

/// Strips surrounding whitespace and a Markdown code fence (```json ... ```), which chat models
/// often wrap structured output in.
fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer<'a>(text: &'a str, tokens: u64, model: Option<&'static str>) -> Answer<'a> {
        Answer {
            text,
            output_tokens: tokens,
            model,
            tool_calls: &[],
        }
    }

    #[test]
    fn empty_checks_pass() {
        assert_eq!(run(&Checks::default(), &answer("", 0, None)), Ok(()));
    }

    #[test]
    fn token_bounds() {
        let c = Checks {
            min_output_tokens: Some(5),
            max_output_tokens: Some(10),
            ..Checks::default()
        };
        assert_eq!(
            run(&c, &answer("x", 4, None)),
            Err("output_tokens 4 < min_output_tokens 5".into())
        );
        assert_eq!(
            run(&c, &answer("x", 11, None)),
            Err("output_tokens 11 > max_output_tokens 10".into())
        );
        assert_eq!(run(&c, &answer("x", 7, None)), Ok(()));
    }

    #[test]
    fn content_regex_json_and_model() {
        let c = Checks {
            must_contain: vec!["Paris".into()],
            regex: Some(regex::Regex::new(r"^\{").unwrap()),
            valid_json: true,
            expect_model: Some("m1".into()),
            ..Checks::default()
        };
        assert_eq!(
            run(&c, &answer("{\"city\": \"Paris\"}", 5, Some("m1"))),
            Ok(())
        );
        assert_eq!(
            run(&c, &answer("{\"city\": \"Rome\"}", 5, Some("m1"))),
            Err("answer does not contain \"Paris\"".into())
        );
        assert!(run(&c, &answer("{\"city\": \"Paris\"", 5, Some("m1")))
            .unwrap_err()
            .starts_with("answer is not valid JSON"));
        assert_eq!(
            run(&c, &answer("{\"city\": \"Paris\"}", 5, Some("m2"))),
            Err("response model \"m2\" != expected \"m1\"".into())
        );
    }

    #[test]
    fn fenced_json_is_accepted() {
        let c = Checks {
            valid_json: true,
            ..Checks::default()
        };
        assert_eq!(
            run(&c, &answer("```json\n{\"a\": 1}\n```", 3, None)),
            Ok(())
        );
        assert_eq!(run(&c, &answer("  [1, 2]  ", 3, None)), Ok(()));
    }
}
