//! Context encoders for values that reach a rendered document.
//!
//! [`YamlStr`] writes a YAML double-quoted scalar that is pure ASCII: every character
//! outside printable ASCII is a `\u`/`\U` escape, so no input can end the scalar, start a
//! comment, anchor, alias or document, or smuggle a character YAML parsers refuse or
//! treat as a line break (NEL, LS, PS). It is also a valid JSON string for BMP input.
//! [`b64`] and [`data_url`] carry file contents byte-exactly.

use base64::Engine as _;
use std::fmt;

/// A string rendered as a YAML double-quoted scalar (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlStr(pub String);

impl YamlStr {
    /// Wraps a value for rendering.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
}

impl fmt::Display for YamlStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&yaml_quote(&self.0))
    }
}

/// Encodes `value` as an ASCII-only YAML double-quoted scalar.
pub fn yaml_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Standard base64 (with padding) of `bytes`.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An RFC 2397 data URL as Ignition expects it: `data:;base64,<payload>`.
pub fn data_url(bytes: &[u8]) -> String {
    format!("data:;base64,{}", b64(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_quote_table() {
        let cases: &[(&str, &str)] = &[
            ("", r#""""#),
            ("store-0142", r#""store-0142""#),
            ("a\"b", r#""a\"b""#),
            ("a\\b", r#""a\\b""#),
            ("l1\nl2", r#""l1\nl2""#),
            ("tab\there", r#""tab\there""#),
            ("&a *a #x {{ % : -", r#""&a *a #x {{ % : -""#),
            ("\u{7f}", r#""\u007F""#),
            ("\u{85}\u{2028}\u{2029}", r#""\u0085\u2028\u2029""#),
            ("é\u{202e}", r#""\u00E9\u202E""#),
            ("🚀", r#""\U0001F680""#),
            ("\u{1}", r#""\u0001""#),
        ];
        for (input, want) in cases {
            assert_eq!(&yaml_quote(input), want, "input {input:?}");
        }
    }

    #[test]
    fn data_url_is_base64() {
        assert_eq!(data_url(b"hi\n"), "data:;base64,aGkK");
    }
}
