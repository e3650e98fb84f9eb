//! Input validation: every value is checked before any encoder or template sees it.
//!
//! Identifiers we interpolate into paths, unit files, sudoers lines or shell commands
//! (site id, hostname, user and group names, digests, versions, k3s flags, NTP servers)
//! must match narrow grammars. Free text (file contents, the user's commands) may be
//! anything except NUL, which no target format can carry.

use super::{
    AgentInstall, FileSpec, KubernetesInstall, NtpSpec, RenderError, RenderInput, UserSpec,
};
use siteboot_wire::RegistrationToken;

/// Largest free-text value (a file's content or one command).
pub const MAX_TEXT_BYTES: usize = 256 * 1024;
/// Largest short value (URL, SSH key, k3s argument).
pub const MAX_SHORT_BYTES: usize = 8 * 1024;

/// Validates the whole input; the first problem wins.
pub fn input(input: &RenderInput) -> Result<(), RenderError> {
    dns_label("siteId", &input.site_id)?;
    if let Some(h) = &input.hostname {
        dns_name("hostname", h)?;
    }
    url("registrationUrl", &input.registration_url, &["https"])?;
    super::pem::first_cert_sha256(&input.registration_ca_pem)?;
    if input.token.expose().trim() != input.token.expose()
        || RegistrationToken::parse(input.token.expose()).is_err()
    {
        // Never echo the token itself.
        return Err(RenderError::invalid(
            "token",
            "expected a registration token sbt1.<id>.<secret>",
        ));
    }
    if let AgentInstall::Download { url: u, sha256: s } = &input.agent {
        url("agent.url", u, &["https", "http"])?;
        sha256("agent.sha256", s)?;
    }
    if let Some(k) = &input.kubernetes {
        kubernetes(k)?;
    }
    let mut paths = std::collections::BTreeSet::new();
    for (i, f) in input.files.iter().enumerate() {
        file(&format!("files[{i}]"), f)?;
        if !paths.insert(f.path.as_str()) || super::payload::is_reserved_path(&f.path) {
            return Err(RenderError::invalid(
                format!("files[{i}].path"),
                "path is written twice or reserved by siteboot",
            ));
        }
    }
    for (i, c) in input.pre_commands.iter().enumerate() {
        text(&format!("preCommands[{i}]"), c, MAX_TEXT_BYTES)?;
    }
    for (i, c) in input.post_commands.iter().enumerate() {
        text(&format!("postCommands[{i}]"), c, MAX_TEXT_BYTES)?;
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, u) in input.users.iter().enumerate() {
        user(&format!("users[{i}]"), u)?;
        if !names.insert(u.name.as_str()) {
            return Err(RenderError::invalid(
                format!("users[{i}].name"),
                "duplicate user",
            ));
        }
    }
    if let Some(n) = &input.ntp {
        ntp(n)?;
    }
    Ok(())
}

/// A free-text value: no NUL, bounded size.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), RenderError> {
    if value.contains('\0') {
        return Err(RenderError::invalid(field, "must not contain NUL"));
    }
    if value.len() > max {
        return Err(RenderError::invalid(
            field,
            format!("longer than {max} bytes"),
        ));
    }
    Ok(())
}

/// One line of printable text (no control characters at all).
fn line(field: &str, value: &str) -> Result<(), RenderError> {
    text(field, value, MAX_SHORT_BYTES)?;
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err(RenderError::invalid(
            field,
            "must be one non-empty line without control characters",
        ));
    }
    Ok(())
}

/// RFC 1123 label, lower case: `[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?`.
pub fn dns_label(field: &str, value: &str) -> Result<(), RenderError> {
    let ok = (1..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(RenderError::invalid(
            field,
            "must be a DNS label: 1-63 of a-z, 0-9 and '-', not starting or ending with '-'",
        ))
    }
}

/// RFC 1123 name: dot-separated labels, at most 253 bytes.
pub fn dns_name(field: &str, value: &str) -> Result<(), RenderError> {
    if value.len() > 253 || value.split('.').any(|l| dns_label(field, l).is_err()) {
        return Err(RenderError::invalid(field, "must be a lower-case DNS name"));
    }
    Ok(())
}

/// An absolute URL with one of `schemes`, a host, no credentials and no whitespace.
pub fn url(field: &str, value: &str, schemes: &[&str]) -> Result<(), RenderError> {
    line(field, value)?;
    if value.chars().any(|c| c.is_whitespace() || !c.is_ascii()) {
        return Err(RenderError::invalid(
            field,
            "must not contain whitespace or non-ASCII characters",
        ));
    }
    let parsed = url::Url::parse(value)
        .map_err(|e| RenderError::invalid(field, format!("not a URL: {e}")))?;
    // The url crate forgives `https:///host`; the text we embed must be canonical-looking.
    let authority = value.split_once("://").map(|(_, rest)| rest);
    if authority.is_none_or(|a| a.starts_with('/')) {
        return Err(RenderError::invalid(
            field,
            "must be scheme://host[:port][/path]",
        ));
    }
    if !schemes.contains(&parsed.scheme()) {
        return Err(RenderError::invalid(
            field,
            format!("scheme must be one of {}", schemes.join(", ")),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty)
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(RenderError::invalid(
            field,
            "must name a host and carry no credentials",
        ));
    }
    Ok(())
}

/// Exactly 64 hex digits.
pub fn sha256(field: &str, value: &str) -> Result<(), RenderError> {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(RenderError::invalid(
            field,
            "must be 64 hex digits (a SHA-256 digest)",
        ))
    }
}

/// A version such as `v1.31.4+k3s1`.
fn version(field: &str, value: &str) -> Result<(), RenderError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+-_".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RenderError::invalid(
            field,
            "must be 1-64 of A-Z, a-z, 0-9, '.', '+', '-', '_'",
        ))
    }
}

fn kubernetes(k: &KubernetesInstall) -> Result<(), RenderError> {
    let KubernetesInstall::K3s {
        version: v,
        url: u,
        sha256: s,
        server_args,
    } = k
    else {
        return Ok(());
    };
    version("kubernetes.version", v)?;
    url("kubernetes.url", u, &["https", "http"])?;
    sha256("kubernetes.sha256", s)?;
    for (i, a) in server_args.iter().enumerate() {
        k3s_flag(&format!("kubernetes.serverArgs[{i}]"), a)?;
    }
    Ok(())
}

/// Splits a k3s server argument `--flag` or `--flag=value` into (flag, value).
pub fn k3s_flag<'a>(field: &str, arg: &'a str) -> Result<(&'a str, Option<&'a str>), RenderError> {
    line(field, arg)?;
    let rest = arg
        .strip_prefix("--")
        .ok_or_else(|| RenderError::invalid(field, "must start with '--'"))?;
    let (flag, value) = match rest.split_once('=') {
        Some((f, v)) => (f, Some(v)),
        None => (rest, None),
    };
    let ok = !flag.is_empty()
        && flag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !flag.starts_with('-');
    if !ok {
        return Err(RenderError::invalid(
            field,
            "flag name must be lower-case letters, digits and '-'",
        ));
    }
    Ok((flag, value))
}

fn file(field: &str, f: &FileSpec) -> Result<(), RenderError> {
    line(&format!("{field}.path"), &f.path)?;
    let normal = f.path.starts_with('/')
        && !f.path.ends_with('/')
        && f.path
            .split('/')
            .skip(1)
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if !normal {
        return Err(RenderError::invalid(
            format!("{field}.path"),
            "must be a normalised absolute file path",
        ));
    }
    text(&format!("{field}.content"), &f.content, MAX_TEXT_BYTES)?;
    if let Some(p) = &f.permissions {
        permissions(&format!("{field}.permissions"), p)?;
    }
    if let Some(o) = &f.owner {
        owner(&format!("{field}.owner"), o)?;
    }
    Ok(())
}

/// Octal mode `0644` / `644` / `1777`; returns the numeric mode.
pub fn permissions(field: &str, value: &str) -> Result<u32, RenderError> {
    let digits = value.strip_prefix("0o").unwrap_or(value);
    if (3..=4).contains(&digits.len()) && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        u32::from_str_radix(digits, 8).map_err(|e| RenderError::invalid(field, e.to_string()))
    } else {
        Err(RenderError::invalid(
            field,
            "must be an octal mode such as 0644",
        ))
    }
}

/// `user` or `user:group`.
pub fn owner(field: &str, value: &str) -> Result<(), RenderError> {
    let mut parts = value.splitn(2, ':');
    let user = parts.next().unwrap_or_default();
    posix_name(field, user)?;
    if let Some(group) = parts.next() {
        posix_name(field, group)?;
    }
    Ok(())
}

/// Portable user/group name: `[a-z_][a-z0-9_-]{0,31}`.
pub fn posix_name(field: &str, value: &str) -> Result<(), RenderError> {
    let mut bytes = value.bytes();
    let ok = (1..=32).contains(&value.len())
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RenderError::invalid(
            field,
            "must be a POSIX name: [a-z_][a-z0-9_-]{0,31}",
        ))
    }
}

fn user(field: &str, u: &UserSpec) -> Result<(), RenderError> {
    posix_name(&format!("{field}.name"), &u.name)?;
    if u.name == "root" {
        return Err(RenderError::invalid(
            format!("{field}.name"),
            "root cannot be managed here",
        ));
    }
    for (i, k) in u.ssh_authorized_keys.iter().enumerate() {
        // One authorized_keys line each: a newline would smuggle in a second key.
        line(&format!("{field}.sshAuthorizedKeys[{i}]"), k)?;
    }
    for (i, g) in u.groups.iter().enumerate() {
        posix_name(&format!("{field}.groups[{i}]"), g)?;
    }
    Ok(())
}

fn ntp(n: &NtpSpec) -> Result<(), RenderError> {
    if n.servers.is_empty() {
        return Err(RenderError::invalid(
            "ntp.servers",
            "must name at least one server",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, s) in n.servers.iter().enumerate() {
        let field = format!("ntp.servers[{i}]");
        let ok = (1..=253).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b))
            && !s.starts_with('-');
        if !ok {
            return Err(RenderError::invalid(
                field,
                "must be a host name or IP address",
            ));
        }
        if !seen.insert(s.as_str()) {
            return Err(RenderError::invalid(field, "duplicate server"));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
