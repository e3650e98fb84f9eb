//! `${name}` substitution from the site's labels.
//!
//! `${name}` is replaced by the label's value; `$${` produces a literal `${`; a `$` not
//! followed by `{` is left alone. A name not among the labels is an error (a typo must
//! not silently render an empty string into a manifest), as is an unterminated `${`.

use siteboot_wire::labels::Labels;

/// Why substitution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstError {
    /// The variable is not a label of this site.
    #[error("unknown variable ${{{name}}} on line {line}: the site has no label {name:?} (write $${{ for a literal ${{)")]
    Unknown {
        /// Variable name.
        name: String,
        /// 1-based line within the document.
        line: usize,
    },
    /// `${` without a closing `}` or with an invalid name.
    #[error("malformed variable on line {line}: expected ${{name}} with a name of letters, digits, '-', '_' or '.'")]
    Malformed {
        /// 1-based line within the document.
        line: usize,
    },
}

/// Substitutes every `${name}` in `text`.
pub fn substitute(text: &str, labels: &Labels) -> Result<String, SubstError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut line = 1;
    while let Some(pos) = rest.find('$') {
        let (before, after) = rest.split_at(pos);
        line += before.matches('\n').count();
        out.push_str(before);
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or(SubstError::Malformed { line })?;
            let name = &tail[..end];
            if !valid_name(name) {
                return Err(SubstError::Malformed { line });
            }
            let value = labels.get(name).ok_or_else(|| SubstError::Unknown {
                name: name.to_string(),
                line,
            })?;
            out.push_str(value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}
