//! The kubeconfig file that points unmodified `kube::Client`s (and kubectl) at the
//! emulator: one cluster, user and context, all named `emulator`, plain HTTP, no
//! credentials.

/// The name of the kubeconfig's cluster, user and context.
pub const NAME: &str = "emulator";

/// Renders the kubeconfig YAML for an emulator at `url` (`http://127.0.0.1:PORT`).
pub fn render(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {NAME}
  cluster:
    server: {url}
users:
- name: {NAME}
  user: {{}}
contexts:
- name: {NAME}
  context:
    cluster: {NAME}
    user: {NAME}
    namespace: default
current-context: {NAME}
preferences: {{}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_names_one_context() {
        let y: serde_json::Value =
            serde_norway::from_str(&render("http://127.0.0.1:1234")).unwrap();
        assert_eq!(y["current-context"], "emulator");
        assert_eq!(
            y["clusters"][0]["cluster"]["server"],
            "http://127.0.0.1:1234"
        );
        assert_eq!(y["contexts"][0]["context"]["user"], "emulator");
    }
}
