//! Reading rendered bootstrap data back: the registration token and the agent config
//! inside a cloud-init or Ignition document.
//!
//! Used by tests and e2e that redeem the token a real node would find, and by anything
//! that must tell which token a stored data Secret carries. It parses the document the
//! way a node would (YAML / JSON, base64 / data URLs), never by string search.

use super::{AGENT_CONFIG_PATH, REGISTRATION_TOKEN_PATH};
use base64::Engine as _;
use serde_json::Value;
use siteboot_wire::SecretString;

/// The content of the file at `path` in a rendered document (cloud-init or Ignition).
pub fn file_content(document: &str, path: &str) -> Option<String> {
    let b64 = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    };
    if document.starts_with("#cloud-config") {
        let doc: Value = serde_norway::from_str(document).ok()?;
        let file = doc["write_files"]
            .as_array()?
            .iter()
            .find(|f| f["path"] == path)?;
        let content = file["content"].as_str()?;
        match file.get("encoding").and_then(Value::as_str) {
            None => Some(content.to_owned()),
            Some("b64") | Some("base64") => b64(content),
            Some(_) => None,
        }
    } else {
        let doc: Value = serde_json::from_str(document).ok()?;
        let file = doc["storage"]["files"]
            .as_array()?
            .iter()
            .find(|f| f["path"] == path)?;
        b64(file["contents"]["source"]
            .as_str()?
            .strip_prefix("data:;base64,")?)
    }
}

/// The one-time registration token a node would read from the document.
pub fn token(document: &str) -> Option<SecretString> {
    file_content(document, REGISTRATION_TOKEN_PATH).map(|t| SecretString::new(t.trim()))
}

/// The agent configuration (`/etc/siteboot/agent.yaml`) as a JSON value.
pub fn agent_config(document: &str) -> Option<Value> {
    serde_norway::from_str(&file_content(document, AGENT_CONFIG_PATH)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{render_cloud_init, render_ignition, AgentInstall, RenderInput};

    fn input() -> RenderInput {
        RenderInput {
            site_id: "store-0142".into(),
            hostname: None,
            registration_url: "https://127.0.0.1:8443".into(),
            // DER 30 03 02 01 00: enough for the pin, never parsed as X.509 here.
            registration_ca_pem:
                "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n".into(),
            token: SecretString::new("sbt1.0000000000.00000000000000000000000000"),
            agent: AgentInstall::Preinstalled,
            kubernetes: None,
            files: vec![],
            pre_commands: vec![],
            post_commands: vec![],
            users: vec![],
            ntp: None,
        }
    }

    #[test]
    fn reads_the_token_and_agent_config_back_from_both_formats() {
        let i = input();
        for doc in [render_cloud_init(&i).unwrap(), render_ignition(&i).unwrap()] {
            assert_eq!(token(&doc), Some(i.token.clone()));
            let cfg = agent_config(&doc).expect("agent config");
            assert_eq!(cfg["siteId"], "store-0142");
            assert_eq!(cfg["registrationUrl"], "https://127.0.0.1:8443");
            assert_eq!(cfg["tokenFile"], REGISTRATION_TOKEN_PATH);
            assert_eq!(file_content(&doc, "/nonexistent"), None);
        }
    }

    #[test]
    fn garbage_reads_as_nothing() {
        for doc in [
            "",
            "#cloud-config\n: :",
            "{}",
            "[1]",
            "#cloud-config\nwrite_files: 3\n",
        ] {
            assert_eq!(token(doc), None, "{doc:?}");
        }
    }
}
