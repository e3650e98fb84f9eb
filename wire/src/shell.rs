//! POSIX shell quoting, shared by the provider (values spliced into bootstrap scripts)
//! and the agent (the repository path of the remote `git-upload-pack` command), so
//! both sides quote by one rule.

/// Wraps `value` in single quotes, writing an embedded `'` as `'\''`. The result is one
/// shell word whose value is exactly `value` (callers reject NUL, which no shell word
/// can carry).
pub fn quote(value: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_table() {
        let cases: &[(&str, &str)] = &[
            ("", "''"),
            ("plain", "'plain'"),
            ("it's", r"'it'\''s'"),
            ("$(rm -rf /); `id`", "'$(rm -rf /); `id`'"),
            ("a\nb", "'a\nb'"),
            ("''", r"''\'''\'''"),
            ("/srv/fleet.git", "'/srv/fleet.git'"),
        ];
        for (input, want) in cases {
            assert_eq!(&quote(input), want, "input {input:?}");
        }
    }
}
