//! The relaxed JSON the manuals print their examples in (the coocenter
//! PBX's pushes: unquoted keys, single-quoted strings, `//` comments,
//! trailing commas), read by `jsonc-parser` when a body is not strict JSON.
//!
//! That parser descends recursively, so nesting is checked first by a
//! linear scan ([`MAX_DEPTH`]): a body of a million `[` must be a refusal,
//! not a stack overflow.

use serde_json::Value;

/// Deepest nesting of arrays and objects accepted. The pushes nest two or
/// three levels; serde_json's own limit for strict JSON is 128.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RelaxedError {
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{0}")]
    Syntax(String),
    #[error("empty body")]
    Empty,
}

/// Parses one value in the relaxed notation.
pub fn parse(text: &str) -> Result<Value, RelaxedError> {
    if measure(text).depth > MAX_DEPTH {
        return Err(RelaxedError::TooDeep);
    }
    let options = jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_loose_object_property_names: true,
        allow_trailing_commas: true,
        allow_single_quoted_strings: true,
        // Not in any manual's examples: a missing comma is a broken push.
        allow_missing_commas: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
    };
    jsonc_parser::parse_to_serde_value::<Option<Value>>(text, &options)
        .map_err(|e| RelaxedError::Syntax(one_line(&e.to_string())))?
        .ok_or(RelaxedError::Empty)
}

/// What a JSON text would become in memory, read in one pass without
/// building anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The deepest nesting of `[`/`{`.
    pub depth: usize,
    /// About how many values it holds (separators and openings + 1): a
    /// parsed value costs tens of bytes, so this bounds the tree's size.
    pub values: usize,
}

/// The shape of `text`, strict or relaxed, counting outside strings and
/// comments. It errs towards more (an unterminated string or comment ends
/// the scan with what was counted), never fewer than a parser will see.
pub fn measure(text: &str) -> Shape {
    let b = text.as_bytes();
    let (mut i, mut depth, mut deepest, mut values) = (0, 0usize, 0usize, 1usize);
    while i < b.len() {
        match b[i] {
            b'[' | b'{' => {
                depth += 1;
                values += 1;
                deepest = deepest.max(depth);
            }
            b',' => values += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    // A backslash escapes the next byte, whatever it is.
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    Shape {
        depth: deepest,
        values,
    }
}

fn one_line(text: &str) -> String {
    let line = text.replace(['\n', '\r'], " ");
    match line.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The coocenter manual's dialbegein example as printed (seeds 002).
    const PRINTED: &str = r#"{
event:"dialbegein",
timestamp:"1534993059.785012",//主叫通道唯一标识
channel:"DAHDI/i1/18782985586-51",//主叫通道
uniqueid:'1534993030.626',//呼叫唯一标识
mac:"68:69:2e:05:0f:9a",//设备MAC地址
}"#;

    #[test]
    fn reads_the_manuals_notation() {
        let v = parse(PRINTED).expect("relaxed");
        assert_eq!(v["event"], "dialbegein");
        assert_eq!(v["uniqueid"], "1534993030.626");
        assert_eq!(v["mac"], "68:69:2e:05:0f:9a");
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let deep = "[".repeat(1_000_000);
        assert_eq!(parse(&deep), Err(RelaxedError::TooDeep));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let text = format!(
            "{{a:'{}', b:\"{}\" // {}\n /* {} */}}",
            "[".repeat(100),
            "{".repeat(100),
            "[".repeat(100),
            "[".repeat(100)
        );
        assert_eq!(
            measure(&text),
            Shape {
                depth: 1,
                values: 3
            }
        );
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn garbage_is_a_syntax_error() {
        assert!(matches!(parse("{event: }"), Err(RelaxedError::Syntax(_))));
        assert_eq!(parse("  // nothing\n"), Err(RelaxedError::Empty));
    }
}
