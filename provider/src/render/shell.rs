//! POSIX shell quoting for values we interpolate into our own commands and scripts.
//!
//! The user's `preCommands`/`postCommands` are the user's shell by definition and are
//! passed through untouched; everything *we* splice into a command line (URLs, digests,
//! paths, versions) goes through [`shell_quote`] after validation.

use std::fmt;

/// Wraps `value` in single quotes, writing an embedded `'` as `'\''`. The result is one
/// shell word whose value is exactly `value` (NUL is rejected earlier by validation).
pub fn shell_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// A string rendered as one single-quoted shell word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellWord(pub String);

impl ShellWord {
    /// Wraps a value for rendering.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
}

impl fmt::Display for ShellWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_quote(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_table() {
        let cases: &[(&str, &str)] = &[
            ("", "''"),
            ("plain", "'plain'"),
            ("it's", r"'it'\''s'"),
            ("$(rm -rf /); `id`", "'$(rm -rf /); `id`'"),
            ("a\nb", "'a\nb'"),
            ("''", r"''\'''\'''"),
        ];
        for (input, want) in cases {
            assert_eq!(&shell_quote(input), want, "input {input:?}");
        }
    }

    /// The quoted word, evaluated by a real shell, is the input byte for byte.
    #[test]
    fn sh_reads_back_the_exact_value() {
        let values = [
            "it's",
            "$(touch /tmp/siteboot-pwned) ; `id` | & > <",
            "tab\tnewline\n\\ \" '' end",
            "unicode \u{202e} 🚀",
        ];
        for v in values {
            let script = format!("printf '%s' {}", shell_quote(v));
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&script)
                .output()
                .expect("run /bin/sh");
            assert!(out.status.success(), "sh failed for {v:?}");
            assert_eq!(String::from_utf8(out.stdout).expect("utf-8"), v);
        }
    }
}
