//! POSIX shell quoting for values we interpolate into our own commands and scripts.
//!
//! The user's `preCommands`/`postCommands` are the user's shell by definition and are
//! passed through untouched; everything *we* splice into a command line (URLs, digests,
//! paths, versions) goes through [`shell_quote`] after validation.

use std::fmt;

/// One single-quoted shell word whose value is exactly `value` (the shared rule in
/// [`siteboot_wire::shell::quote`]).
pub use siteboot_wire::shell::quote as shell_quote;

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
